// phivault::metrics: a small in-process metrics registry rendered in the
// Prometheus text exposition format (version 0.0.4).
//
// A Registry holds metric families (counter, gauge, histogram), each keyed by
// name; every family holds series keyed by their label set. Get* returns a
// reference to the series, creating it on first use. Label values must be of
// LOW cardinality and must never carry health data: use route templates,
// methods and status codes, never ids, names or query values.
//
// Thread-safety: every method of Registry, Counter, Gauge and Histogram may be
// called concurrently from any thread. Updates to a series are lock-free
// atomics; Get* and RenderPrometheus take the registry mutex.
//
// Lifetime: series are never removed, so a reference returned by Get* stays
// valid for the lifetime of its Registry. Registry::Default() lives for the
// whole process.
#ifndef PHIVAULT_COMMON_METRICS_H_
#define PHIVAULT_COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phivault::metrics {

// Ordered label pairs; the registry sorts them by name, so order is free.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Monotonic counter.
class Counter {
 public:
  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Gauge: a value that goes up and down, or is read from a callback at render
// time (see Registry::SetGaugeCallback).
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Histogram with fixed upper bounds (the +Inf bucket is implicit).
class Histogram {
 public:
  // REQUIRES: `bounds` strictly increasing and finite.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative count for each bound, then the +Inf bucket (== Count()).
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Default buckets for request latency in seconds: 0.0005 .. 10.
const std::vector<double>& LatencyBuckets();

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry.
  static Registry& Default();

  // REQUIRES: `name` matches [a-zA-Z_:][a-zA-Z0-9_:]* and label names match
  // [a-zA-Z_][a-zA-Z0-9_]* (invalid characters are replaced by '_'). A name
  // is bound to one type: asking for it as another type is a programming
  // error and aborts. `help` of the first call wins.
  Counter& GetCounter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& GetGauge(std::string_view name, std::string_view help, const Labels& labels = {});
  // `bounds` of the first call for a name wins for the whole family.
  Histogram& GetHistogram(std::string_view name, std::string_view help, const Labels& labels = {},
                          const std::vector<double>& bounds = LatencyBuckets());
  // Makes the gauge series report fn() at render time.
  // REQUIRES: fn is thread-safe, fast, and does not call into this registry
  // (it runs with the registry mutex held). Whatever fn captures must outlive
  // the registry or be replaced via another SetGaugeCallback call.
  void SetGaugeCallback(std::string_view name, std::string_view help, const Labels& labels,
                        std::function<double()> fn);

  // Text exposition format 0.0.4: families sorted by name, each with HELP and
  // TYPE lines, series sorted by labels.
  std::string RenderPrometheus() const;

 private:
  struct Family;
  Family& FamilyFor(std::string_view name, std::string_view help, int type);
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;  // guarded by mu_
};

// Registry::Default().RenderPrometheus().
std::string RenderPrometheus();

}  // namespace phivault::metrics

#endif  // PHIVAULT_COMMON_METRICS_H_
