#include "api/bulk_export.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include "api/request_audit.h"
#include "common/log.h"
#include "crypto/aead.h"
#include "fhir/resource_types.h"
#include "fhir/time.h"
#include "search/index_values.h"

namespace phivault::api {

// Sealed file layout: a sequence of frames, each
//   u8 last (1 on the final frame, else 0) || u32 big-endian length || sealed
// where `sealed` is the Aead form of up to kFrameBytes of NDJSON and its AAD
// binds the job, the file name, the frame index and the `last` flag, so
// frames cannot be reordered, moved between files or jobs, or cut off.
namespace {

constexpr size_t kFrameBytes = 256 * 1024;
constexpr std::string_view kPoll = "$export-poll";
constexpr std::string_view kFile = "$export-file";

std::string FrameAad(const std::string& job, const std::string& file, uint64_t index, bool last) {
  return "phivault-export|" + job + "|" + file + "|" + std::to_string(index) + (last ? "|end" : "|more");
}

// Writes one sealed file (created 0600, never overwritten).
class SealedWriter {
 public:
  SealedWriter(const crypto::Aead& aead, std::string job, std::string name)
      : aead_(aead), job_(std::move(job)), name_(std::move(name)) {}
  ~SealedWriter() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status Open(const std::string& path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd_ < 0) return Internal("cannot create export file: " + std::string(std::strerror(errno)));
    return Status::Ok();
  }
  Status Append(std::string_view line) {
    buf_.append(line);
    buf_ += '\n';
    if (buf_.size() >= kFrameBytes) return Flush(false);
    return Status::Ok();
  }
  Status Finish() {
    PV_RETURN_IF_ERROR(Flush(true));
    if (::fsync(fd_) != 0) return Internal("cannot sync export file");
    ::close(fd_);
    fd_ = -1;
    return Status::Ok();
  }

 private:
  Status Flush(bool last) {
    std::string sealed = aead_.Seal(buf_, FrameAad(job_, name_, index_++, last));
    std::memset(buf_.data(), 0, buf_.size());  // plaintext does not linger in freed memory
    buf_.clear();
    char header[5];
    header[0] = last ? 1 : 0;
    uint32_t n = static_cast<uint32_t>(sealed.size());
    for (int i = 0; i < 4; ++i) header[1 + i] = static_cast<char>((n >> (24 - 8 * i)) & 0xff);
    std::string out(header, sizeof header);
    out += sealed;
    size_t off = 0;
    while (off < out.size()) {
      ssize_t w = ::write(fd_, out.data() + off, out.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return Internal("cannot write export file: " + std::string(std::strerror(errno)));
      off += static_cast<size_t>(w);
    }
    return Status::Ok();
  }

  const crypto::Aead& aead_;
  std::string job_, name_;
  std::string buf_;
  uint64_t index_ = 0;
  int fd_ = -1;
};

StatusOr<std::string> ReadWhole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound("export file is gone");
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      ::close(fd);
      return Internal("cannot read export file");
    }
    if (r == 0) break;
    data.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return data;
}

// Opens a sealed file; DataLoss if anything was changed, reordered or cut.
StatusOr<std::string> OpenSealed(const crypto::Aead& aead, const std::string& job, const std::string& name,
                                 std::string_view data) {
  std::string out;
  uint64_t index = 0;
  bool ended = false;
  while (!data.empty()) {
    if (ended || data.size() < 5) return DataLoss("export file is damaged");
    bool last = data[0] == 1;
    if (data[0] != 0 && !last) return DataLoss("export file is damaged");
    uint32_t n = 0;
    for (int i = 1; i <= 4; ++i) n = (n << 8) | static_cast<uint8_t>(data[i]);
    data.remove_prefix(5);
    if (n > data.size()) return DataLoss("export file is damaged");
    PV_ASSIGN_OR_RETURN(std::string plain, aead.Open(data.substr(0, n), FrameAad(job, name, index++, last)));
    out += plain;
    data.remove_prefix(n);
    ended = last;
  }
  if (!ended) return DataLoss("export file is damaged");
  return out;
}

// One account: the same subject vouched for by the same issuer.
bool SameAccount(const Caller& a, const Caller& b) {
  return a.principal.subject == b.principal.subject && a.issuer == b.issuer;
}

bool HasExportScope(const Caller& caller) {
  for (const policy::ScopeGrant& g : caller.principal.scopes) {
    if (g.context == policy::ScopeGrant::kSystem && g.type == "*" && g.r && g.s) return true;
  }
  return false;
}

bool IsJobId(std::string_view s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string NewJobId() {
  SecureBytes r = SecureBytes::Random(16);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (char c : r.view()) {
    id += kHex[(static_cast<uint8_t>(c) >> 4) & 0xf];
    id += kHex[static_cast<uint8_t>(c) & 0xf];
  }
  return id;
}

}  // namespace

struct BulkExporter::File {
  std::string type;
  std::string name;  // within the job directory
  int64_t count = 0;
  std::vector<std::string> patients;  // sorted, unique: for the download's audit entry
};

struct BulkExporter::Job {
  enum class State { kQueued, kRunning, kDone, kFailed };
  std::string id;
  std::string dir;
  std::shared_ptr<const Caller> caller;
  http::HttpRequest request;  // the kick-off, for decisions that look at it (purpose of use)
  std::string request_url;
  int64_t transaction_ms = 0;
  std::vector<std::string> types;
  int64_t since_ms = -1;                 // -1: no _since
  bool patients_only = false;            // Patient and Group level
  std::optional<std::set<std::string>> members;  // Group level
  audit::AuditEntry entry;               // the kick-off's entry, the base of the export record
  std::unique_ptr<crypto::Aead> aead;
  std::atomic<bool> cancelled{false};
  std::atomic<int64_t> exported{0};
  std::atomic<size_t> types_done{0};
  // Guarded by the exporter's mu_.
  State state = State::kQueued;
  std::string error;
  int64_t finished_ms = 0;
  std::vector<File> files;
  std::set<std::string> patients;
};

BulkExporter::BulkExporter(store::ResourceStore* store, AccessControl* access, RequestAuditor* auditor,
                           BulkExportOptions options)
    : store_(store), access_(access), auditor_(auditor), options_(std::move(options)) {}

StatusOr<std::unique_ptr<BulkExporter>> BulkExporter::Create(store::ResourceStore* store, AccessControl* access,
                                                            RequestAuditor* auditor, const crypto::Keyring& keyring,
                                                            BulkExportOptions options) {
  if (options.dir.empty()) return InvalidArgument("bulk export directory not set");
  if (options.resources_per_file == 0) options.resources_per_file = 1;
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return Internal("cannot create the export directory " + options.dir + ": " + ec.message());
  ::chmod(options.dir.c_str(), 0700);
  // Jobs live in memory only: what an earlier process left cannot be served.
  for (const auto& e : std::filesystem::directory_iterator(options.dir, ec)) {
    if (IsJobId(e.path().filename().string())) std::filesystem::remove_all(e.path(), ec);
  }
  std::unique_ptr<BulkExporter> x(new BulkExporter(store, access, auditor, std::move(options)));
  x->export_key_ = keyring.Key(crypto::KeyPurpose::kBulkExport).Clone();
  x->worker_ = std::thread([p = x.get()] { p->WorkerLoop(); });
  return x;
}

BulkExporter::~BulkExporter() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& [id, job] : jobs_) job->cancelled = true;
  }
  cv_.notify_all();
  worker_.join();
  std::unique_lock lk(mu_);
  // An export's audit record may still be on its way; its callback uses us.
  idle_cv_.wait(lk, [&] { return in_flight_ == 0; });
  for (auto& [id, job] : jobs_) RemoveFiles(*job);
}

bool BulkExporter::Handles(const std::vector<std::string_view>& s) {
  if (s.size() == 1 && s[0] == "$export") return true;
  if (s.size() == 2 && s[0] == "Patient" && s[1] == "$export") return true;
  if (s.size() == 3 && s[0] == "Group" && s[2] == "$export") return true;
  if (s.size() == 2 && s[0] == kPoll) return true;
  return s.size() == 3 && s[0] == kFile;
}

bool BulkExporter::IsDownloadPath(std::string_view path) {
  return path.rfind("/fhir/" + std::string(kFile) + "/", 0) == 0;
}

std::string_view BulkExporter::Route(const std::vector<std::string_view>& s) {
  if (s[0] == kPoll) return "/fhir/$export-poll/{job}";
  if (s[0] == kFile) return "/fhir/$export-file/{job}/{n}";
  if (s[0] == "Group") return "/fhir/Group/{id}/$export";
  if (s[0] == "Patient") return "/fhir/Patient/$export";
  return "/fhir/$export";
}

http::HttpResponse BulkExporter::Handle(const std::shared_ptr<const Caller>& caller, const http::HttpRequest& req,
                                        const QueryParams& params, const std::vector<std::string_view>& segments,
                                        const OutputFormat& fmt, audit::AuditEntry& entry, int64_t now_ms) {
  entry.action = audit::AuditAction::kOperation;
  const std::string& method = req.method;
  if (segments[0] == kPoll) {
    entry.query = method == "DELETE" ? "$export-cancel" : "$export-poll";
    if (method != "GET" && method != "DELETE") {
      http::HttpResponse r = OutcomeResponse(405, "error", "not-supported", "method not allowed on this URL", fmt);
      r.headers.emplace_back("Allow", "GET, DELETE");
      return r;
    }
    return Poll(*caller, std::string(segments[1]), method == "DELETE", fmt);
  }
  if (segments[0] == kFile) {
    entry.query = "$export-file";
    if (method != "GET") {
      http::HttpResponse r = OutcomeResponse(405, "error", "not-supported", "method not allowed on this URL", fmt);
      r.headers.emplace_back("Allow", "GET");
      return r;
    }
    return Download(*caller, std::string(segments[1]), segments[2], fmt, entry);
  }
  if (method != "GET") {
    http::HttpResponse r = OutcomeResponse(405, "error", "not-supported", "method not allowed on this URL", fmt);
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  return Kickoff(caller, req, params, segments, fmt, entry, now_ms);
}

http::HttpResponse BulkExporter::Kickoff(const std::shared_ptr<const Caller>& caller, const http::HttpRequest& req,
                                         const QueryParams& params, const std::vector<std::string_view>& segments,
                                         const OutputFormat& fmt, audit::AuditEntry& entry, int64_t now_ms) {
  std::string path;
  for (auto s : segments) path += std::string(path.empty() ? "" : "/") + std::string(s);
  entry.query = QueryShape(segments[0] == "Group" ? "Group/$export" : path, params);
  const std::string* prefer = req.Header("prefer");
  if (!prefer || prefer->find("respond-async") == std::string::npos) {
    return OutcomeResponse(400, "error", "invalid", "bulk export requires the header Prefer: respond-async", fmt);
  }
  bool lenient = PreferLenient(req);
  if (!HasExportScope(*caller)) {
    entry.rule = "scope";
    return OutcomeResponse(403, "error", "forbidden", "bulk export requires the scope system/*.read or system/*.rs",
                           fmt);
  }
  auto job = std::make_shared<Job>();
  for (const auto& [name, value] : params) {
    if (name == "_type") {
      size_t pos = 0;
      while (pos <= value.size()) {
        size_t comma = value.find(',', pos);
        std::string t = value.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        pos = comma == std::string::npos ? value.size() + 1 : comma + 1;
        if (t.empty()) continue;
        if (!fhir::IsKnownResourceType(t)) {
          if (lenient) continue;
          return OutcomeResponse(400, "error", "invalid", "_type names an unknown resource type", fmt);
        }
        if (std::find(job->types.begin(), job->types.end(), t) == job->types.end()) job->types.push_back(t);
      }
      if (job->types.empty()) {
        return OutcomeResponse(400, "error", "invalid", "_type names no known resource type", fmt);
      }
    } else if (name == "_since") {
      auto range = search::ParseDateRange(value);
      if (!range) return OutcomeResponse(400, "error", "invalid", "_since is not a FHIR instant", fmt);
      job->since_ms = range->low_ms;
    } else if (name == "_outputFormat") {
      if (value != "application/fhir+ndjson" && value != "application/ndjson" && value != "ndjson") {
        return OutcomeResponse(400, "error", "not-supported", "_outputFormat must be application/fhir+ndjson", fmt);
      }
    } else if (name == "_format" || name == "_pretty") {
      // The kick-off's own (OperationOutcome) answer.
    } else if (!lenient) {
      return OutcomeResponse(400, "error", "not-supported", "unsupported $export parameter: " + name, fmt);
    }
  }
  if (job->types.empty()) {
    for (std::string_view t : fhir::AllResourceTypes()) job->types.emplace_back(t);
  }
  if (segments[0] == "Patient") {
    job->patients_only = true;
  } else if (segments[0] == "Group") {
    job->patients_only = true;
    std::string gid(segments[1]);
    auto g = store_->Read("Group", gid);
    if (!g.ok() && g.status().code() != StatusCode::kNotFound) return ErrorResponse(g.status(), fmt);
    // A Group the caller may not read answers like a missing one.
    if (!g.ok() || g->deleted) {
      AddRequested(entry, "Group", gid);
      return OutcomeResponse(404, "error", "not-found", "Group not found", fmt);
    }
    // Export never breaks glass: not for the Group, not for what it exports.
    policy::Decision d = access_->Decide(*caller, policy::Interaction::kRead, *g, req, now_ms, /*instance_level=*/false);
    AddResource(entry, *g);
    if (!d.allowed || d.break_glass) {
      NoteDecision(entry, d);
      return OutcomeResponse(404, "error", "not-found", "Group not found", fmt);
    }
    // The members are the Group's patient link (Group.member.entity, from
    // the compartment definition), recorded when it was written.
    job->members.emplace(g->patients.begin(), g->patients.end());
  }
  job->id = NewJobId();
  job->dir = options_.dir + "/" + job->id;
  job->caller = caller;
  job->request = req;
  job->request.body.clear();
  // Kept for the decisions (purpose of use); the credential is not needed.
  std::erase_if(job->request.headers, [](const auto& h) { return h.first == "authorization"; });
  job->request_url = options_.base_url + req.target;
  job->transaction_ms = now_ms;
  job->entry = entry;
  auto aead = crypto::Aead::New(crypto::DeriveKey(export_key_, "phivault bulk export file key " + job->id));
  if (!aead.ok()) return ErrorResponse(aead.status(), fmt);
  job->aead = std::move(*aead);
  {
    std::lock_guard lk(mu_);
    size_t mine = std::count_if(jobs_.begin(), jobs_.end(),
                                [&](const auto& j) { return SameAccount(*j.second->caller, *caller); });
    if (jobs_.size() >= options_.max_jobs || mine >= options_.max_jobs_per_caller) {
      http::HttpResponse r =
          OutcomeResponse(429, "error", "throttled", "too many bulk exports in progress; retry later", fmt);
      r.headers.emplace_back("Retry-After", "60");
      return r;
    }
    jobs_[job->id] = job;
    queue_.push_back(job);
  }
  cv_.notify_all();
  log::Info("export.queued", {{"job", job->id}, {"subject", caller->principal.subject},
                              {"types", std::to_string(job->types.size())}});
  http::HttpResponse r = OutcomeResponse(202, "information", "informational", "bulk export started", fmt);
  r.headers.emplace_back("Content-Location", options_.base_url + "/fhir/" + std::string(kPoll) + "/" + job->id);
  return r;
}

std::shared_ptr<BulkExporter::Job> BulkExporter::FindLocked(const Caller& caller, const std::string& job_id) {
  auto it = jobs_.find(job_id);
  // Only the account that started the job, and only while it still holds
  // the export scope: another issuer's account of the same `sub`, or the
  // same account with a token that lost the scope, finds nothing.
  if (it == jobs_.end() || !SameAccount(*it->second->caller, caller) || !HasExportScope(caller)) return nullptr;
  return it->second;
}

http::HttpResponse BulkExporter::Poll(const Caller& caller, const std::string& job_id, bool cancel,
                                      const OutputFormat& fmt) {
  std::unique_lock lk(mu_);
  std::shared_ptr<Job> job = FindLocked(caller, job_id);
  if (!job) return OutcomeResponse(404, "error", "not-found", "no such export", fmt);
  if (cancel) {
    job->cancelled = true;
    jobs_.erase(job_id);
    std::erase(queue_, job);
    // A running job's worker removes what it wrote when it sees the flag;
    // anything else has no writer left.
    if (job->state != Job::State::kRunning) RemoveFiles(*job);
    lk.unlock();
    log::Info("export.cancelled", {{"job", job_id}});
    return OutcomeResponse(202, "information", "informational", "bulk export cancelled", fmt);
  }
  if (job->state == Job::State::kQueued || job->state == Job::State::kRunning) {
    http::HttpResponse r;
    r.status = 202;
    std::string progress = job->state == Job::State::kQueued
                               ? "queued"
                               : std::to_string(job->types_done.load()) + "/" + std::to_string(job->types.size()) +
                                     " types, " + std::to_string(job->exported.load()) + " resources";
    r.headers.emplace_back("X-Progress", progress);
    r.headers.emplace_back("Retry-After", "2");
    return r;
  }
  if (job->state == Job::State::kFailed) {
    return OutcomeResponse(500, "error", "exception", "bulk export failed: " + job->error, fmt);
  }
  std::string body = R"({"transactionTime":")" + fhir::FormatInstant(job->transaction_ms) + R"(","request":)" +
                     JsonString(job->request_url) + R"(,"requiresAccessToken":true,"output":[)";
  for (size_t i = 0; i < job->files.size(); ++i) {
    const File& f = job->files[i];
    if (i) body += ',';
    body += R"({"type":)" + JsonString(f.type) + R"(,"url":)" +
            JsonString(options_.base_url + "/fhir/" + std::string(kFile) + "/" + job->id + "/" + std::to_string(i)) +
            R"(,"count":)" + std::to_string(f.count) + "}";
  }
  body += R"(],"error":[]})";
  http::HttpResponse r = JsonResponse(200, std::move(body), OutputFormat{.plain_json = true});
  r.headers.emplace_back("Expires", fhir::FormatHttpDate(job->finished_ms + options_.retention_ms));
  return r;
}

http::HttpResponse BulkExporter::Download(const Caller& caller, const std::string& job_id,
                                          std::string_view file_index, const OutputFormat& fmt,
                                          audit::AuditEntry& entry) {
  std::string path, name, type;
  const crypto::Aead* aead = nullptr;
  std::shared_ptr<Job> job;
  {
    std::lock_guard lk(mu_);
    job = FindLocked(caller, job_id);
    size_t index = 0;
    bool index_ok = !file_index.empty() && file_index.size() < 9 &&
                    std::all_of(file_index.begin(), file_index.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (index_ok) index = std::stoul(std::string(file_index));
    if (!job || job->state != Job::State::kDone || !index_ok || index >= job->files.size()) {
      return OutcomeResponse(404, "error", "not-found", "no such export file", fmt);
    }
    const File& f = job->files[index];
    path = job->dir + "/" + f.name;
    name = f.name;
    type = f.type;
    aead = job->aead.get();
    entry.patients.insert(entry.patients.end(), f.patients.begin(), f.patients.end());
    entry.query = "$export-file?type=" + type;
  }
  // `job` keeps the key alive; a concurrent cancel or expiry may remove the
  // file, which reads as gone.
  auto sealed = ReadWhole(path);
  if (!sealed.ok()) return ErrorResponse(sealed.status(), fmt);
  auto plain = OpenSealed(*aead, job_id, name, *sealed);
  if (!plain.ok()) {
    log::Error("export.file_damaged", {{"job", job_id}, {"file", name}});
    return ErrorResponse(plain.status(), fmt);
  }
  http::HttpResponse r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "application/fhir+ndjson");
  r.body = std::move(*plain);
  return r;
}

void BulkExporter::RemoveFiles(const Job& job) {
  std::error_code ec;
  std::filesystem::remove_all(job.dir, ec);
  if (ec) log::Error("export.files_not_removed", {{"job", job.id}, {"error", ec.message()}});
}

void BulkExporter::SweepExpired(int64_t now_ms) {
  std::lock_guard lk(mu_);
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    Job& j = *it->second;
    bool finished = j.state == Job::State::kDone || j.state == Job::State::kFailed;
    if (finished && j.finished_ms + options_.retention_ms <= now_ms) {
      RemoveFiles(j);
      log::Info("export.expired", {{"job", j.id}});
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

void BulkExporter::WaitIdle() {
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [&] { return queue_.empty() && in_flight_ == 0; });
}

void BulkExporter::WorkerLoop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    if (queue_.empty()) {
      cv_.wait_for(lk, std::chrono::milliseconds(options_.sweep_interval_ms),
                   [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      if (queue_.empty()) {
        lk.unlock();
        SweepExpired(fhir::NowMillis());
        lk.lock();
        continue;
      }
    }
    std::shared_ptr<Job> job = queue_.front();
    queue_.pop_front();
    job->state = Job::State::kRunning;
    ++in_flight_;  // until its audit record is answered
    lk.unlock();
    if (options_.before_job) options_.before_job();
    auto started = std::chrono::steady_clock::now();
    Status s = Run(*job);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (job->cancelled || !s.ok()) {
      RemoveFiles(*job);
      lk.lock();
      if (!job->cancelled) {
        log::Error("export.failed", {{"job", job->id}, {"error", s.message()}});
        job->state = Job::State::kFailed;
        job->error = s.message();
        job->finished_ms = fhir::NowMillis();
      }
      --in_flight_;
      idle_cv_.notify_all();
      continue;
    }
    log::Info("export.written", {{"job", job->id},
                                 {"resources", std::to_string(job->exported.load())},
                                 {"seconds", std::to_string(secs)}});
    Complete(job);
    lk.lock();
  }
}

Status BulkExporter::Run(Job& job) {
  if (::mkdir(job.dir.c_str(), 0700) != 0) return Internal("cannot create the job directory");
  const Caller& caller = *job.caller;
  std::vector<File> files;
  std::set<std::string> all_patients;
  for (const std::string& type : job.types) {
    if (job.cancelled) return Unavailable("export cancelled");
    job.types_done++;
    if (!access_->DecideType(caller, policy::Interaction::kSearch, type).allowed) continue;
    std::unique_ptr<SealedWriter> writer;
    File current;
    std::set<std::string> file_patients;
    auto finish = [&]() -> Status {
      if (!writer) return Status::Ok();
      PV_RETURN_IF_ERROR(writer->Finish());
      writer.reset();
      current.patients.assign(file_patients.begin(), file_patients.end());
      file_patients.clear();
      files.push_back(std::move(current));
      current = File{};
      return Status::Ok();
    };
    const int64_t now_ms = fhir::NowMillis();
    Status s = store_->ForEachCurrent({type}, [&](const store::ResourceVersion& v) -> Status {
      if (job.cancelled) return Unavailable("export cancelled");
      if (job.since_ms >= 0 && v.last_updated_ms < job.since_ms) return Status::Ok();
      if (job.patients_only) {
        if (v.patients.empty()) return Status::Ok();
        if (job.members && std::none_of(v.patients.begin(), v.patients.end(),
                                        [&](const std::string& p) { return job.members->count(p) > 0; })) {
          return Status::Ok();
        }
      }
      policy::Decision d =
          access_->Decide(caller, policy::Interaction::kRead, v, job.request, now_ms, /*instance_level=*/false);
      if (!d.allowed || d.break_glass) return Status::Ok();
      if (!writer) {
        current.type = type;
        current.name = type + "." + std::to_string(files.size()) + ".ndjson.sealed";
        writer = std::make_unique<SealedWriter>(*job.aead, job.id, current.name);
        PV_RETURN_IF_ERROR(writer->Open(job.dir + "/" + current.name));
      }
      PV_RETURN_IF_ERROR(writer->Append(v.json));
      ++current.count;
      ++job.exported;
      file_patients.insert(v.patients.begin(), v.patients.end());
      all_patients.insert(v.patients.begin(), v.patients.end());
      if (static_cast<size_t>(current.count) >= options_.resources_per_file) return finish();
      return Status::Ok();
    });
    PV_RETURN_IF_ERROR(s);
    PV_RETURN_IF_ERROR(finish());
  }
  std::lock_guard lk(mu_);
  job.files = std::move(files);
  job.patients = std::move(all_patients);
  return Status::Ok();
}

// The export's own audit record: every patient exported and the count per
// type. Entries are bounded in size, so a large export is recorded in parts
// (each names its part in `query`); the manifest waits for all of them.
void BulkExporter::Complete(const std::shared_ptr<Job>& job) {
  constexpr size_t kPatientsPerEntry = 5000;
  std::map<std::string, int64_t> per_type;
  std::vector<std::string> patients;
  {
    std::lock_guard lk(mu_);
    for (const File& f : job->files) per_type[f.type] += f.count;
    patients.assign(job->patients.begin(), job->patients.end());
  }
  std::string counts;
  for (const auto& [type, n] : per_type) counts += (counts.empty() ? "" : ",") + type + ":" + std::to_string(n);
  size_t parts = std::max<size_t>(1, (patients.size() + kPatientsPerEntry - 1) / kPatientsPerEntry);
  struct Pending {
    std::mutex mu;
    size_t left;
    bool failed = false;
  };
  auto pending = std::make_shared<Pending>();
  pending->left = parts;
  for (size_t part = 0; part < parts; ++part) {
    audit::AuditEntry e = job->entry;
    e.action = audit::AuditAction::kExport;
    e.time_ms = fhir::NowMillis();
    e.resources.clear();
    e.query = job->entry.query + " job=" + job->id + " counts=" + counts;
    if (parts > 1) e.query += " part=" + std::to_string(part + 1) + "/" + std::to_string(parts);
    size_t from = part * kPatientsPerEntry;
    size_t to = std::min(patients.size(), from + kPatientsPerEntry);
    e.patients.assign(patients.begin() + static_cast<std::ptrdiff_t>(from),
                      patients.begin() + static_cast<std::ptrdiff_t>(to));
    e.rule = "allow";
    FinishEntry(e, 200);
    auditor_->Record(e, [this, job, pending](Status s) {
      bool last = false, failed = false;
      {
        std::lock_guard plk(pending->mu);
        if (!s.ok()) pending->failed = true;
        last = --pending->left == 0;
        failed = pending->failed;
      }
      if (!last) return;
      std::lock_guard lk(mu_);
      job->finished_ms = fhir::NowMillis();
      if (job->cancelled) {
        RemoveFiles(*job);  // cancelled while its record was written: the record stands, the files go
      } else if (failed) {
        // Without its record the export must not be handed out.
        log::Error("export.not_audited", {{"job", job->id}});
        job->state = Job::State::kFailed;
        job->error = "the export could not be audited";
        RemoveFiles(*job);
        job->files.clear();
      } else {
        job->state = Job::State::kDone;
      }
      --in_flight_;
      idle_cv_.notify_all();
    });
  }
}

}  // namespace phivault::api
