#include "common/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "common/log.h"

namespace phivault::metrics {
namespace {

enum Type { kCounter = 0, kGauge = 1, kHistogram = 2 };

std::string SanitizeName(std::string_view in, bool allow_colon) {
  std::string out(in);
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) out[i] = '_';
  }
  if (out.empty()) out.push_back('_');  // (not `= "_"`: GCC 12 -Wrestrict false positive at -O3)
  return out;
}

Labels Normalize(const Labels& labels) {
  Labels out;
  out.reserve(labels.size());
  for (const auto& [k, v] : labels) out.emplace_back(SanitizeName(k, false), v);
  std::sort(out.begin(), out.end());
  return out;
}

void AppendEscaped(std::string& out, std::string_view v, bool quote) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Prefer the shortest representation that round-trips.
  for (int prec = 1; prec <= 17; ++prec) {
    char s[40];
    std::snprintf(s, sizeof s, "%.*g", prec, v);
    if (std::strtod(s, nullptr) == v) return s;
  }
  return buf;
}

void AppendLabels(std::string& out, const Labels& labels, const std::pair<std::string, std::string>* extra) {
  if (labels.empty() && extra == nullptr) return;
  out += '{';
  bool first = true;
  auto add = [&](const std::string& k, const std::string& v) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    AppendEscaped(out, v, true);
    out += '"';
  };
  for (const auto& [k, v] : labels) add(k, v);
  if (extra != nullptr) add(extra->first, extra->second);
  out += '}';
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();  // first bound >= v
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    out[i] = acc;
  }
  return out;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return kBuckets;
}

struct Registry::Family {
  std::string name;
  std::string help;
  int type = kCounter;
  std::vector<double> bounds;  // histograms
  std::map<Labels, std::unique_ptr<Counter>> counters;
  std::map<Labels, std::unique_ptr<Gauge>> gauges;
  std::map<Labels, std::function<double()>> gauge_callbacks;
  std::map<Labels, std::unique_ptr<Histogram>> histograms;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry& Registry::Default() {
  static Registry* r = new Registry();  // never destroyed: usable during static destruction
  return *r;
}

Registry::Family& Registry::FamilyFor(std::string_view name, std::string_view help, int type) {
  std::string n = SanitizeName(name, true);
  for (auto& f : families_) {
    if (f->name == n) {
      if (f->type != type) {
        log::Error("metrics_type_mismatch", {{"metric", n}});
        std::abort();  // programming error, never driven by input
      }
      return *f;
    }
  }
  auto f = std::make_unique<Family>();
  f->name = std::move(n);
  f->help = std::string(help);
  f->type = type;
  families_.push_back(std::move(f));
  return *families_.back();
}

Counter& Registry::GetCounter(std::string_view name, std::string_view help, const Labels& labels) {
  Labels key = Normalize(labels);
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, kCounter).counters[std::move(key)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Gauge& Registry::GetGauge(std::string_view name, std::string_view help, const Labels& labels) {
  Labels key = Normalize(labels);
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, kGauge).gauges[std::move(key)];
  if (!slot) slot = std::make_unique<Gauge>();
  return *slot;
}

void Registry::SetGaugeCallback(std::string_view name, std::string_view help, const Labels& labels,
                                std::function<double()> fn) {
  Labels key = Normalize(labels);
  std::lock_guard lock(mu_);
  FamilyFor(name, help, kGauge).gauge_callbacks[std::move(key)] = std::move(fn);
}

Histogram& Registry::GetHistogram(std::string_view name, std::string_view help, const Labels& labels,
                                  const std::vector<double>& bounds) {
  Labels key = Normalize(labels);
  std::lock_guard lock(mu_);
  Family& f = FamilyFor(name, help, kHistogram);
  if (f.histograms.empty() && f.bounds.empty()) {
    f.bounds = bounds;
    std::sort(f.bounds.begin(), f.bounds.end());
    f.bounds.erase(std::unique(f.bounds.begin(), f.bounds.end()), f.bounds.end());
    f.bounds.erase(std::remove_if(f.bounds.begin(), f.bounds.end(), [](double d) { return !std::isfinite(d); }),
                   f.bounds.end());
  }
  auto& slot = f.histograms[std::move(key)];
  if (!slot) slot = std::make_unique<Histogram>(f.bounds);
  return *slot;
}

std::string Registry::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::vector<const Family*> sorted;
  for (const auto& f : families_) sorted.push_back(f.get());
  std::sort(sorted.begin(), sorted.end(), [](const Family* a, const Family* b) { return a->name < b->name; });
  static constexpr std::string_view kTypeNames[] = {"counter", "gauge", "histogram"};
  std::string out;
  for (const Family* f : sorted) {
    out += "# HELP ";
    out += f->name;
    out += ' ';
    AppendEscaped(out, f->help, false);
    out += "\n# TYPE ";
    out += f->name;
    out += ' ';
    out += kTypeNames[f->type];
    out += '\n';
    switch (f->type) {
      case kCounter:
        for (const auto& [labels, c] : f->counters) {
          out += f->name;
          AppendLabels(out, labels, nullptr);
          out += ' ';
          out += std::to_string(c->Value());
          out += '\n';
        }
        break;
      case kGauge: {
        std::map<Labels, double> values;
        for (const auto& [labels, g] : f->gauges) values[labels] = g->Value();
        for (const auto& [labels, fn] : f->gauge_callbacks) values[labels] = fn ? fn() : 0.0;
        for (const auto& [labels, v] : values) {
          out += f->name;
          AppendLabels(out, labels, nullptr);
          out += ' ';
          out += FormatDouble(v);
          out += '\n';
        }
        break;
      }
      case kHistogram:
        for (const auto& [labels, h] : f->histograms) {
          std::vector<uint64_t> cum = h->CumulativeCounts();
          for (size_t i = 0; i < cum.size(); ++i) {
            std::pair<std::string, std::string> le{"le", i < h->bounds().size() ? FormatDouble(h->bounds()[i]) : "+Inf"};
            out += f->name;
            out += "_bucket";
            AppendLabels(out, labels, &le);
            out += ' ';
            out += std::to_string(cum[i]);
            out += '\n';
          }
          out += f->name;
          out += "_sum";
          AppendLabels(out, labels, nullptr);
          out += ' ';
          out += FormatDouble(h->Sum());
          out += '\n';
          out += f->name;
          out += "_count";
          AppendLabels(out, labels, nullptr);
          out += ' ';
          out += std::to_string(cum.back());
          out += '\n';
        }
        break;
    }
  }
  return out;
}

std::string RenderPrometheus() { return Registry::Default().RenderPrometheus(); }

}  // namespace phivault::metrics
