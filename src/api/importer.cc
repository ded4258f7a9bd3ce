#include "api/importer.h"

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>

#include <boost/json.hpp>

#include "api/access_control.h"
#include "api/bundle_processor.h"
#include "api/request_audit.h"
#include "api/request_context.h"
#include "fhir/time.h"
#include "fhir/compartment.h"
#include "fhir/json_reader.h"
#include "fhir/validator.h"

namespace phivault::api {
namespace {

// Tracks batches in flight at the writer and gathers their outcomes.
class ImportState {
 public:
  explicit ImportState(const ImportOptions& o) : options_(o) {}

  void Reject(const std::string& where, const std::string& reason) {
    std::lock_guard lk(mu_);
    RejectLocked(where, reason);
  }

  // Blocks while too many batches are queued, then commits `ops`.
  void Submit(store::ResourceStore* store, std::vector<store::WriteOp> ops, std::vector<std::string> where,
              bool atomic) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return in_flight_ < options_.max_in_flight; });
      ++in_flight_;
    }
    store::AuditRecordBuilder builder;
    if (options_.auditor) {
      builder = [](const store::CommitOutcome& out, int64_t record_id) {
        audit::AuditEntry e;
        e.time_ms = fhir::NowMillis();
        e.request_id = NewId();
        e.agent.subject = "operator";  // whoever ran `phivault import` with the master key
        e.action = audit::AuditAction::kBatch;
        e.event = "import";
        e.write_record = record_id;
        AddWriteResults(e, out.results);
        FinishEntry(e, 0);
        return audit::Serialize(e);
      };
    }
    store->Commit(std::move(ops), atomic, [this, where = std::move(where), atomic](store::CommitOutcome out) {
      if (options_.auditor && out.audit_record_id != 0) {
        // Counted once the batch's entry is in the log.
        int64_t id = out.audit_record_id;
        std::string record = out.audit_record;
        std::string stored = std::move(out.audit_record);
        options_.auditor->RecordWrite(id, std::move(record), std::move(stored),
                                      [this, out = std::move(out), where, atomic](Status audited) mutable {
                                        if (!audited.ok()) {
                                          std::lock_guard lk(mu_);
                                          if (fatal_.ok()) fatal_ = audited;
                                        }
                                        Finish(std::move(out), where, atomic);
                                      });
        return;
      }
      Finish(std::move(out), where, atomic);
    }, std::move(builder));
  }

  void Finish(store::CommitOutcome out, const std::vector<std::string>& where, bool atomic) {
    {
      std::lock_guard lk(mu_);
      if (!out.status.ok()) {
        if (atomic || out.results.empty()) {
          // A transaction that breaks a rule is one rejected document; a
          // storage failure (disk full, I/O) stops the import.
          StatusCode c = out.status.code();
          bool record_error = c == StatusCode::kInvalidArgument || c == StatusCode::kConflict ||
                              c == StatusCode::kPreconditionFailed || c == StatusCode::kUnsupported;
          if (!record_error && fatal_.ok()) fatal_ = out.status;
          for (const auto& w : where) RejectLocked(w, out.status.message());
        }
      } else {
        for (size_t i = 0; i < out.results.size(); ++i) {
          if (out.results[i].ok()) {
            ++loaded_;
          } else {
            RejectLocked(i < where.size() ? where[i] : "?", out.results[i].status().message());
          }
        }
      }
      processed_ += static_cast<int64_t>(where.size());
      --in_flight_;
      // Under the lock: once in_flight_ reaches 0 and mu_ is released, Drain
      // may return and the importer destroy this object (and cv_) before a
      // notify issued after the unlock would run.
      cv_.notify_all();
    }
  }

  void Drain() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return in_flight_ == 0; });
  }

  int64_t processed() {
    std::lock_guard lk(mu_);
    return processed_ + rejected_direct_;
  }
  Status fatal() {
    std::lock_guard lk(mu_);
    return fatal_;
  }
  ImportSummary Summary() {
    std::lock_guard lk(mu_);
    ImportSummary s;
    s.loaded = loaded_;
    s.rejected = rejected_;
    s.reasons = reasons_;
    return s;
  }
  void CountDirectReject() {
    std::lock_guard lk(mu_);
    ++rejected_direct_;
  }

 private:
  void RejectLocked(const std::string& where, const std::string& reason) {
    ++rejected_;
    if (reasons_.size() < options_.max_reasons) reasons_.push_back(where + ": " + reason);
  }

  const ImportOptions& options_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  int64_t loaded_ = 0, rejected_ = 0, processed_ = 0, rejected_direct_ = 0;
  std::vector<std::string> reasons_;
  Status fatal_;
};

// A resource stored under its own id (NDJSON lines, collection entries).
StatusOr<store::WriteOp> PutOp(boost::json::object resource) {
  PV_RETURN_IF_ERROR(fhir::ValidateResource(resource));
  const boost::json::value* rt = resource.if_contains("resourceType");
  std::string type(rt->get_string());  // ParseResource guarantees a known type
  std::string op_id;
  auto kind = store::WriteOp::Kind::kPut;
  const boost::json::value* id = resource.if_contains("id");
  if (id) {
    if (!id->is_string() || !fhir::IsValidId(id->get_string())) return InvalidArgument("invalid resource id");
    op_id = std::string(id->get_string());
  } else {
    op_id = NewId();
    kind = store::WriteOp::Kind::kCreate;
    resource["id"] = op_id;
  }
  // Move-constructed, not assigned: assignment would copy a resource that
  // lives in a batch arena into the heap.
  store::WriteOp op{.kind = kind, .type = std::move(type), .id = std::move(op_id), .resource = std::move(resource)};
  op.patients = fhir::PatientCompartment(op.resource);
  return op;
}

class Importer {
 public:
  Importer(store::ResourceStore* store, const ImportOptions& options) : store_(store), options_(options), state_(options) {}
  // Batches still at the writer call back into state_: an import that stops
  // early (an unreadable file, a storage failure) waits for them first.
  ~Importer() { state_.Drain(); }

  Status Run(const std::vector<std::string>& files) {
    for (size_t f = 0; f < files.size(); ++f) {
      files_done_ = f;
      total_files_ = files.size();
      PV_RETURN_IF_ERROR(ImportFile(files[f]));
      Flush();
      PV_RETURN_IF_ERROR(state_.fatal());
    }
    Flush();
    state_.Drain();
    files_done_ = files.size();
    Progress(true);
    return state_.fatal();
  }

  ImportSummary Summary() { return state_.Summary(); }

  Status RunResources(std::vector<boost::json::object> resources) {
    for (size_t i = 0; i < resources.size(); ++i) Add(std::move(resources[i]), "resource " + std::to_string(i));
    Flush();
    state_.Drain();
    return state_.fatal();
  }

 private:
  Status ImportFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFound("cannot read " + path);
    std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
    // A Bundle or single resource file starts with '{' and spans lines; NDJSON has one object per line.
    bool is_ndjson = path.size() >= 7 && path.compare(path.size() - 7, 7, ".ndjson") == 0;
    if (!is_ndjson) {
      std::stringstream ss;
      ss << in.rdbuf();
      std::string content = ss.str();
      ImportDocument(name, content);
      return Status::Ok();
    }
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.empty() || line == "\r") continue;
      auto parsed = fhir::ParseResource(line, limits_, arena_);
      std::string where = name + ":" + std::to_string(lineno);
      if (!parsed.ok()) {
        state_.Reject(where, parsed.status().message());
        state_.CountDirectReject();
        continue;
      }
      Add(std::move(*parsed), std::move(where));
    }
    return Status::Ok();
  }

  void Add(boost::json::object resource, std::string where) {
    auto op = PutOp(std::move(resource));
    if (!op.ok()) {
      state_.Reject(where, op.status().message());
      state_.CountDirectReject();
      return;
    }
    if (op->type == "Binary" && op->patients.empty()) {
      // Whose document it is, when its securityContext is already stored.
      if (auto link = AccessControl::BinaryContextLink(*store_, op->resource)) op->patients = std::move(*link);
    }
    pending_.push_back(std::move(*op));
    pending_where_.push_back(std::move(where));
    if (pending_.size() >= options_.batch_size) Flush();
  }

  void Flush() {
    if (pending_.empty()) return;
    // The batch's resources keep their arena alive until the store frees
    // them; the next batch parses into a new one.
    arena_ = boost::json::make_shared_resource<boost::json::monotonic_resource>();
    state_.Submit(store_, std::move(pending_), std::move(pending_where_), false);
    pending_.clear();
    pending_where_.clear();
    Progress(false);
  }

  void ImportDocument(const std::string& name, const std::string& content) {
    fhir::ParseLimits doc_limits = limits_;
    doc_limits.max_bytes = std::max<size_t>(doc_limits.max_bytes, 1u << 30);
    auto parsed = fhir::ParseResource(content, doc_limits);
    if (!parsed.ok()) {
      state_.Reject(name, parsed.status().message());
      state_.CountDirectReject();
      return;
    }
    boost::json::object& doc = *parsed;
    // Lookups only: operator[] may rehash the object and invalidate pointers.
    const boost::json::value* rt = doc.if_contains("resourceType");
    const boost::json::value* type = doc.if_contains("type");
    boost::json::value* entries = doc.if_contains("entry");
    bool is_bundle = rt && *rt == "Bundle";
    bool executable = is_bundle && type && type->is_string() &&
                      (type->get_string() == "transaction" || type->get_string() == "batch");
    if (!executable) {
      if (is_bundle && entries && entries->is_array()) {
        size_t i = 0;
        for (auto& e : entries->get_array()) {
          std::string where = name + "#entry" + std::to_string(i++);
          boost::json::object* eo = e.if_object();
          boost::json::value* res = eo ? eo->if_contains("resource") : nullptr;
          if (!res || !res->is_object()) {
            state_.Reject(where, "entry has no resource");
            state_.CountDirectReject();
            continue;
          }
          // Re-validate the nested resource the way a top-level one is.
          auto nested = fhir::ParseResource(boost::json::serialize(*res), limits_);
          if (!nested.ok()) {
            state_.Reject(where, nested.status().message());
            state_.CountDirectReject();
            continue;
          }
          Add(std::move(*nested), std::move(where));
        }
      } else {
        Add(std::move(doc), name);
      }
      return;
    }
    auto plan = PlanBundle(std::move(doc), 1u << 20);
    if (!plan.ok()) {
      state_.Reject(name, plan.status().message());
      state_.CountDirectReject();
      return;
    }
    Flush();
    std::vector<std::string> where;
    for (size_t i = 0; i < plan->items.size(); ++i) {
      if (!plan->items[i].error.ok()) {
        state_.Reject(name + "#entry" + std::to_string(i), plan->items[i].error.message());
        state_.CountDirectReject();
      }
    }
    std::vector<std::string> op_where(plan->ops.size());
    for (size_t i = 0; i < plan->items.size(); ++i) {
      if (plan->items[i].op_index < op_where.size()) op_where[plan->items[i].op_index] = name + "#entry" + std::to_string(i);
    }
    state_.Submit(store_, std::move(plan->ops), std::move(op_where), plan->transaction);
    Progress(false);
  }

  void Progress(bool force) {
    if (!options_.progress) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_progress_ < std::chrono::milliseconds(100)) return;
    last_progress_ = now;
    options_.progress(state_.processed(), files_done_, total_files_);
  }

  store::ResourceStore* store_;
  const ImportOptions& options_;
  ImportState state_;
  fhir::ParseLimits limits_;
  // NDJSON lines of one batch are parsed into one arena, so their many small
  // allocations are freed at once (by the store's reaper thread) instead of
  // one by one.
  boost::json::storage_ptr arena_ = boost::json::make_shared_resource<boost::json::monotonic_resource>();
  std::vector<store::WriteOp> pending_;
  std::vector<std::string> pending_where_;
  size_t files_done_ = 0, total_files_ = 0;
  std::chrono::steady_clock::time_point last_progress_{};
};

}  // namespace

bool BulkLoadPays(uint64_t input_bytes, uint64_t store_bytes) {
  constexpr uint64_t kMinInput = 8u << 20;
  return input_bytes >= kMinInput && input_bytes >= store_bytes / 4;
}

StatusOr<ImportSummary> ImportResources(store::ResourceStore* store, std::vector<boost::json::object> resources,
                                        const ImportOptions& options) {
  Importer importer(store, options);
  PV_RETURN_IF_ERROR(importer.RunResources(std::move(resources)));
  return importer.Summary();
}

StatusOr<ImportSummary> ImportFiles(store::ResourceStore* store, const std::vector<std::string>& files,
                                    const ImportOptions& options) {
  auto start = std::chrono::steady_clock::now();
  if (options.bulk_load) PV_RETURN_IF_ERROR(store->BeginBulkLoad());
  ImportSummary summary;
  Status s;
  {
    Importer importer(store, options);
    s = importer.Run(files);
    summary = importer.Summary();
  }  // every batch is back from the writer
  if (options.bulk_load) {
    // Also after a failure: the vault stays fully indexed for what it holds.
    Status end = store->EndBulkLoad();
    if (s.ok()) s = end;
  }
  if (!s.ok()) return s;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace phivault::api
