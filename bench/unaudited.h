// An auditor that records nothing, for benchmarks only: it is how
// bench/audit_overhead_bench measures what auditing costs, against the same
// requests audited, in the same run. It lives in bench/ and nothing in src/
// can construct it, so the product has no way to switch auditing off.
//
// Thread-safety: stateless apart from the store; safe from any thread.
#ifndef PHIVAULT_BENCH_UNAUDITED_H_
#define PHIVAULT_BENCH_UNAUDITED_H_

#include "api/audit_trail.h"
#include "store/resource_store.h"

namespace phivault::bench {

class UnauditedForBenchmarks final : public api::RequestAuditor {
 public:
  explicit UnauditedForBenchmarks(store::ResourceStore* store) : store_(store) {}
  void Record(const audit::AuditEntry&, Done done) override {
    if (done) done(Status::Ok());
  }
  void RecordWrite(int64_t record_id, std::string, std::string, Done done) override {
    store_->AckAuditRecord(record_id);
    if (done) done(Status::Ok());
  }
  bool Healthy() override { return true; }

 private:
  store::ResourceStore* store_;
};

}  // namespace phivault::bench

#endif  // PHIVAULT_BENCH_UNAUDITED_H_
