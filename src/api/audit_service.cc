#include "api/audit_service.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>

#include <boost/json.hpp>

#include "api/request_context.h"
#include "audit/balp.h"
#include "audit/checkpoint.h"
#include "audit/query.h"
#include "common/log.h"
#include "fhir/time.h"

// Inside Handlers: assigns the value of a StatusOr expression, or returns
// the error as an OperationOutcome response.
#define PV_ASSIGN_OR_RETURN_RESPONSE(lhs, expr) PV_ASSIGN_OR_RETURN_RESPONSE_IMPL(PV_CONCAT_RESP(_r, __LINE__), lhs, expr)
#define PV_CONCAT_RESP(a, b) PV_CONCAT_RESP2(a, b)
#define PV_CONCAT_RESP2(a, b) a##b
#define PV_ASSIGN_OR_RETURN_RESPONSE_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                        \
  if (!tmp.ok()) return Error(tmp.status());                \
  lhs = std::move(tmp).value()

namespace phivault::api {
namespace {

namespace json = boost::json;

constexpr std::string_view kAccessReportOp = "$access-report";
// AuditLog::ReadEntries refuses more at once.
constexpr uint64_t kReadChunk = 10000;

// "/fhir/Patient/{id}/$access-report" -> id; nullopt for any other path.
std::optional<std::string_view> AccessReportPatient(std::string_view path) {
  constexpr std::string_view prefix = "/fhir/Patient/";
  if (!path.starts_with(prefix)) return std::nullopt;
  path.remove_prefix(prefix.size());
  const size_t slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0 || path.substr(slash + 1) != kAccessReportOp) return std::nullopt;
  return path.substr(0, slash);
}

// "/fhir/AuditEvent/{id}" -> id (possibly malformed, checked later).
std::optional<std::string_view> AuditEventId(std::string_view path) {
  constexpr std::string_view prefix = "/fhir/AuditEvent/";
  if (!path.starts_with(prefix) || path.size() == prefix.size()) return std::nullopt;
  path.remove_prefix(prefix.size());
  if (path.find('/') != std::string_view::npos) return std::nullopt;
  return path;
}

// FHIR id syntax: [A-Za-z0-9\-\.]{1,64}.
bool IsFhirId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

StatusOr<uint64_t> ParseIndex(std::string_view name, std::string_view v) {
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size()) {
    return InvalidArgument("parameter '" + std::string(name) + "' must be a non-negative integer");
  }
  return n;
}

// A required (or, with `def`, optional) numeric parameter, given at most once.
StatusOr<uint64_t> IndexParam(const QueryParams& params, std::string_view name, std::optional<uint64_t> def) {
  const std::string* found = nullptr;
  for (const auto& [k, v] : params) {
    if (k != name) continue;
    if (found) return InvalidArgument("parameter '" + std::string(name) + "' given more than once");
    found = &v;
  }
  if (!found) {
    if (def) return *def;
    return InvalidArgument("parameter '" + std::string(name) + "' is required");
  }
  return ParseIndex(name, *found);
}

StatusOr<int> PageSize(const QueryParams& params, const AuditServiceOptions& o) {
  const std::string* c = FindParam(params, "_count");
  if (!c) return o.default_page_size;
  PV_ASSIGN_OR_RETURN(uint64_t n, ParseIndex("_count", *c));
  if (n == 0) return InvalidArgument("_count must be a positive integer");
  return static_cast<int>(std::min<uint64_t>(n, static_cast<uint64_t>(o.max_page_size)));
}

// RFC 3986 query component encoding for links we build.
// SMART scopes: does any grant cover AuditEvent with read (r) or search (s)?
bool ScopeAllows(const policy::Principal& p, char what) {
  return std::any_of(p.scopes.begin(), p.scopes.end(), [&](const policy::ScopeGrant& g) {
    if (g.type != "*" && g.type != "AuditEvent") return false;
    return what == 'r' ? g.r : g.s;
  });
}

bool IsPrivacyOfficer(const Caller& c) { return c.principal.role == policy::Role::kPrivacyOfficer; }

// The patient id of a patient caller's fhirUser ("Patient/x" or an absolute
// URL ending in it); "" otherwise.
std::string OwnPatientId(const Caller& c) {
  if (c.principal.role != policy::Role::kPatient) return "";
  std::string_view fu = c.principal.fhir_user;
  const size_t pos = fu.rfind("Patient/");
  if (pos == std::string_view::npos || (pos != 0 && fu[pos - 1] != '/')) return "";
  std::string_view id = fu.substr(pos + 8);
  return IsFhirId(id) ? std::string(id) : "";
}

http::HttpResponse Forbidden(std::string_view why, const OutputFormat& fmt) {
  return OutcomeResponse(403, "error", "forbidden", why, fmt);
}

http::HttpResponse MethodNotAllowed(const OutputFormat& fmt) {
  http::HttpResponse r = OutcomeResponse(405, "error", "not-supported", "method not allowed on this URL", fmt);
  r.headers.emplace_back("Allow", "GET");
  return r;
}

json::array Base64List(const std::vector<std::string>& hashes) {
  json::array a;
  for (const auto& h : hashes) a.emplace_back(audit::Base64Encode(h));
  return a;
}

// Reads [start, end) in chunks, parses each entry and hands it to `fn`
// until it returns false. Returns the index after the last one examined.
// An entry that does not parse is skipped: audit/verify is the tool for a
// damaged log, and one bad record must not hide every other one.
template <typename Fn>
StatusOr<uint64_t> Scan(const audit::AuditLog& log, uint64_t start, uint64_t end, Fn fn) {
  uint64_t i = start;
  while (i < end) {
    const uint64_t chunk_end = std::min(end, i + kReadChunk);
    PV_ASSIGN_OR_RETURN(std::vector<std::string> raw, log.ReadEntries(i, chunk_end));
    if (raw.size() != chunk_end - i) return DataLoss("audit log returned fewer entries than asked for");
    for (size_t k = 0; k < raw.size(); ++k, ++i) {
      auto entry = audit::ParseEntry(raw[k]);
      if (!entry.ok()) continue;
      if (!fn(audit::IndexedEntry{i, std::move(*entry)})) return i + 1;
    }
  }
  return i;
}

// Reads the entries at `ids` (ascending), parses each and hands it to `fn`
// until it returns false. Entries that do not parse are skipped, as in Scan.
template <typename Fn>
Status ReadListed(const audit::AuditLog& log, const std::vector<uint64_t>& ids, Fn fn) {
  for (size_t k = 0; k < ids.size(); k += kReadChunk) {
    const std::vector<uint64_t> chunk(ids.begin() + static_cast<ptrdiff_t>(k),
                                      ids.begin() + static_cast<ptrdiff_t>(std::min(ids.size(), k + kReadChunk)));
    PV_ASSIGN_OR_RETURN(std::vector<std::string> raw, log.ReadSelected(chunk));
    if (raw.size() != chunk.size()) return DataLoss("audit log returned fewer entries than asked for");
    for (size_t j = 0; j < raw.size(); ++j) {
      auto entry = audit::ParseEntry(raw[j]);
      if (!entry.ok()) continue;
      if (!fn(audit::IndexedEntry{chunk[j], std::move(*entry)})) return Status::Ok();
    }
  }
  return Status::Ok();
}

struct Ctx {
  const http::HttpRequest& req;
  QueryParams params;
  OutputFormat fmt;
};

}  // namespace

AuditService::AuditService(audit::AuditLog* log, AccessControl* access, AuditServiceOptions options,
                           AuditIndexer* indexer)
    : log_(log), access_(access), options_(std::move(options)), indexer_(indexer) {}

bool AuditService::Handles(std::string_view path) {
  if (path == "/audit" || path.starts_with("/audit/")) return true;
  if (path == "/fhir/AuditEvent" || AuditEventId(path)) return true;
  return AccessReportPatient(path).has_value();
}

AuditRequestInfo AuditService::Describe(const http::HttpRequest& request) {
  AuditRequestInfo info;
  auto params = ParseQuery(request.query);
  std::string names;
  if (params.ok()) {
    std::vector<std::string> sorted;
    // Names are the client's text too: anything but a plausible parameter
    // name is recorded as "?" so free text cannot ride into the audit trail.
    for (const auto& [k, v] : *params) {
      const bool plain = !k.empty() && k.size() <= 64 && std::all_of(k.begin(), k.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':' || c == '.';
      });
      sorted.push_back(plain ? k : "?");
    }
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    for (const auto& k : sorted) names += (names.empty() ? "" : "&") + k;
  }
  if (auto id = AccessReportPatient(request.path)) {
    info.action = audit::AuditAction::kAccessReport;
    if (IsFhirId(*id)) info.patients.emplace_back(*id);
    info.query = "Patient/$access-report" + (names.empty() ? "" : "?" + names);
    return info;
  }
  info.action = audit::AuditAction::kAuditQuery;
  if (request.path.starts_with("/fhir/AuditEvent")) {
    info.query = "AuditEvent" + (names.empty() ? "" : "?" + names);
    if (params.ok()) {
      for (const auto& [k, v] : *params) {
        if (k != "patient") continue;
        std::string_view rest = v;
        while (!rest.empty()) {
          const size_t comma = rest.find(',');
          std::string_view one = rest.substr(0, comma);
          if (one.starts_with("Patient/")) one.remove_prefix(8);
          if (IsFhirId(one)) info.patients.emplace_back(one);
          rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        }
      }
    }
  } else {
    info.query = request.path + (names.empty() ? "" : "?" + names);
  }
  return info;
}

void AuditService::Handle(http::HttpRequest request, http::Responder respond) {
  if (access_ == nullptr) {
    respond(OutcomeResponse(500, "fatal", "exception", "audit service has no access control"));
    return;
  }
  auto caller = access_->Authenticate(request, fhir::NowMillis());
  if (!caller.ok()) {
    http::HttpResponse r = AuthenticationFailure(caller.status());
    SetRoute(r, "/audit");
    respond(std::move(r));
    return;
  }
  HandleAs(**caller, request, std::move(respond));
}

namespace {

class Handlers {
 public:
  Handlers(audit::AuditLog& log, AuditIndexer* indexer, const AuditServiceOptions& o, Ctx& ctx)
      : log_(log), indexer_(indexer), o_(o), c_(ctx) {}

  http::HttpResponse Checkpoint() {
    PV_ASSIGN_OR_RETURN_RESPONSE(std::string note, log_.Checkpoint());
    http::HttpResponse r;
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    r.headers.emplace_back("Cache-Control", "no-store");
    r.body = std::move(note);
    return r;
  }

  http::HttpResponse Inclusion() {
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t index, IndexParam(c_.params, "index", std::nullopt));
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t size, IndexParam(c_.params, "size", std::nullopt));
    const uint64_t have = log_.size();
    if (index >= size) return Error(InvalidArgument("index must be less than size"));
    if (size > have) return Error(InvalidArgument("size exceeds the log's " + std::to_string(have) + " entries"));
    PV_ASSIGN_OR_RETURN_RESPONSE(std::vector<std::string> proof, log_.InclusionProof(index, size));
    PV_ASSIGN_OR_RETURN_RESPONSE(std::string leaf, log_.LeafHash(index));
    PV_ASSIGN_OR_RETURN_RESPONSE(std::string root, log_.Root(size));
    json::object o{{"index", index},
                   {"size", size},
                   {"leafHash", audit::Base64Encode(leaf)},
                   {"rootHash", audit::Base64Encode(root)},
                   {"proof", Base64List(proof)}};
    return Json(o);
  }

  http::HttpResponse Consistency() {
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t from, IndexParam(c_.params, "from", std::nullopt));
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t to, IndexParam(c_.params, "to", std::nullopt));
    const uint64_t have = log_.size();
    if (from == 0 || from > to) return Error(InvalidArgument("need 0 < from <= to"));
    if (to > have) return Error(InvalidArgument("to exceeds the log's " + std::to_string(have) + " entries"));
    PV_ASSIGN_OR_RETURN_RESPONSE(std::vector<std::string> proof, log_.ConsistencyProof(from, to));
    PV_ASSIGN_OR_RETURN_RESPONSE(std::string r1, log_.Root(from));
    PV_ASSIGN_OR_RETURN_RESPONSE(std::string r2, log_.Root(to));
    json::object o{{"from", from},
                   {"to", to},
                   {"fromRoot", audit::Base64Encode(r1)},
                   {"toRoot", audit::Base64Encode(r2)},
                   {"proof", Base64List(proof)}};
    return Json(o);
  }

  http::HttpResponse Entries() {
    const uint64_t have = log_.size();
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t start, IndexParam(c_.params, "start", 0));
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t end, IndexParam(c_.params, "end", have));
    PV_ASSIGN_OR_RETURN_RESPONSE(int count, PageSize(c_.params, o_));
    if (start > end) return Error(InvalidArgument("start must not exceed end"));
    if (end > have) return Error(InvalidArgument("end exceeds the log's " + std::to_string(have) + " entries"));
    const uint64_t page_end = std::min(end, start + static_cast<uint64_t>(count));
    std::vector<std::string> raw;
    if (page_end > start) {
      PV_ASSIGN_OR_RETURN_RESPONSE(raw, log_.ReadEntries(start, page_end));
    }
    json::array entries;
    for (size_t k = 0; k < raw.size(); ++k) {
      json::object e{{"index", start + k}};
      boost::system::error_code ec;
      json::value v = json::parse(raw[k], ec);
      if (!ec && v.is_object()) {
        e["entry"] = std::move(v);
      } else {
        // Not an entry this version can read; still shown, never dropped.
        e["raw"] = audit::Base64Encode(raw[k]);
      }
      entries.push_back(std::move(e));
    }
    auto link = [&](uint64_t s) {
      return o_.base_url + "/audit/entries?start=" + std::to_string(s) + "&end=" + std::to_string(end) +
             "&_count=" + std::to_string(count);
    };
    json::object o{{"start", start}, {"end", end}, {"logSize", have}, {"self", link(start)}, {"entries", entries}};
    if (page_end < end) o["next"] = link(page_end);
    return Json(o);
  }

  http::HttpResponse SearchAuditEvents() {
    // Paging and format parameters we understand; any other '_' parameter
    // (and any unknown name, via ParseAuditQuery) is unsupported.
    static constexpr std::string_view kOwn[] = {"_count", "_cursor", "_format", "_pretty"};
    QueryParams used, filters;
    std::vector<std::string> unknown;
    for (const auto& kv : c_.params) {
      const bool own = std::find(std::begin(kOwn), std::end(kOwn), kv.first) != std::end(kOwn);
      if (kv.first.starts_with("_") && !own) {
        unknown.push_back(kv.first);
      } else if (!own) {
        filters.push_back(kv);
      }
    }
    PV_ASSIGN_OR_RETURN_RESPONSE(audit::AuditQuery q, audit::ParseAuditQuery(filters));
    unknown.insert(unknown.end(), q.unknown_params.begin(), q.unknown_params.end());
    if (!unknown.empty() && !PreferLenient(c_.req)) {
      return Error(InvalidArgument("unknown or unsupported search parameter '" + unknown.front() +
                                   "' (send Prefer: handling=lenient to ignore it)"));
    }
    for (const auto& kv : filters) {
      if (std::find(q.unknown_params.begin(), q.unknown_params.end(), kv.first) == q.unknown_params.end()) {
        used.push_back(kv);
      }
    }
    PV_ASSIGN_OR_RETURN_RESPONSE(int count, PageSize(c_.params, o_));
    uint64_t cursor = 0;
    if (const std::string* cur = FindParam(c_.params, "_cursor")) {
      PV_ASSIGN_OR_RETURN_RESPONSE(cursor, ParseIndex("_cursor", *cur));
    }
    const uint64_t have = log_.size();
    if (cursor > have) return Error(InvalidArgument("invalid paging cursor"));
    const uint64_t budget = std::max<uint64_t>(o_.max_scan_entries, 1);
    std::vector<audit::IndexedEntry> hits;
    auto collect = [&](audit::IndexedEntry e) {
      if (audit::Matches(q, e.entry)) hits.push_back(std::move(e));
      return static_cast<int>(hits.size()) < count;
    };
    // `next`: the first index not yet examined. With a patient or agent
    // filter, the index's candidates stand for the prefix it covers. Both
    // filters must hold, so one list is enough; a patient's is usually the
    // shorter.
    uint64_t next = cursor;
    if (indexer_ != nullptr && !q.patient.empty()) {
      PV_ASSIGN_OR_RETURN_RESPONSE(next, ExamineListed(store::AuditKey::kPatient, q.patient, cursor, have, budget,
                                                       collect));
    } else if (indexer_ != nullptr && !q.agent.empty()) {
      PV_ASSIGN_OR_RETURN_RESPONSE(next, ExamineListed(store::AuditKey::kAgent, q.agent, cursor, have, budget,
                                                       collect));
    }
    if (static_cast<int>(hits.size()) < count && next < have) {
      const uint64_t scan_end = std::min(have, next + budget);
      PV_ASSIGN_OR_RETURN_RESPONSE(next, Scan(log_, next, scan_end, collect));
    }
    const std::string fhir_base = o_.base_url + "/fhir";
    auto link = [&](uint64_t cur) {
      QueryParams p = used;
      p.emplace_back("_count", std::to_string(count));
      if (cur) p.emplace_back("_cursor", std::to_string(cur));
      return fhir_base + "/AuditEvent?" + EncodeQuery(p);
    };
    json::array links{json::object{{"relation", "self"}, {"url", link(cursor)}}};
    if (next < have) links.push_back(json::object{{"relation", "next"}, {"url", link(next)}});
    json::array entries;
    for (const auto& h : hits) {
      entries.push_back(json::object{{"fullUrl", fhir_base + "/AuditEvent/" + std::to_string(h.index)},
                                     {"resource", audit::ToAuditEvent(h.entry, h.index, fhir_base)},
                                     {"search", json::object{{"mode", "match"}}}});
    }
    json::object bundle{{"resourceType", "Bundle"}, {"type", "searchset"}, {"link", links}};
    if (!entries.empty()) bundle["entry"] = std::move(entries);
    return Json(bundle);
  }

  http::HttpResponse ReadAuditEvent(std::string_view id) {
    auto index = ParseIndex("id", id);
    if (!index.ok() || *index >= log_.size()) {
      return OutcomeResponse(404, "error", "not-found", "no such AuditEvent", c_.fmt);
    }
    PV_ASSIGN_OR_RETURN_RESPONSE(std::vector<std::string> raw, log_.ReadEntries(*index, *index + 1));
    if (raw.size() != 1) return OutcomeResponse(404, "error", "not-found", "no such AuditEvent", c_.fmt);
    auto entry = audit::ParseEntry(raw[0]);
    if (!entry.ok()) {
      return OutcomeResponse(500, "error", "exception", "audit entry " + std::string(id) + " cannot be decoded",
                             c_.fmt);
    }
    return Json(audit::ToAuditEvent(*entry, *index, o_.base_url + "/fhir"));
  }

  http::HttpResponse AccessReport(const std::string& patient_id) {
    std::optional<int64_t> start_ms, end_ms;
    std::vector<audit::ReportSortKey> sort;
    for (const auto& [k, v] : c_.params) {
      if (k == "start" || k == "end") {
        auto range = audit::ParseDateRange(v);
        if (!range.ok()) return Error(InvalidArgument("parameter '" + k + "': " + range.status().message()));
        (k == "start" ? start_ms : end_ms) = k == "start" ? range->first : range->second;
      } else if (k == "_sort") {
        PV_ASSIGN_OR_RETURN_RESPONSE(sort, audit::ParseReportSort(v));
      } else if (k != "_count" && k != "_offset" && k != "_snapshot" && k != "_format" && k != "_pretty" &&
                 !PreferLenient(c_.req)) {
        return Error(InvalidArgument("unknown parameter '" + k + "' (send Prefer: handling=lenient to ignore it)"));
      }
    }
    PV_ASSIGN_OR_RETURN_RESPONSE(int count, PageSize(c_.params, o_));
    const uint64_t have = log_.size();
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t snapshot, IndexParam(c_.params, "_snapshot", have));
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t offset, IndexParam(c_.params, "_offset", 0));
    if (snapshot > have) return Error(InvalidArgument("invalid paging cursor"));

    std::vector<audit::AccessReportRow> rows;
    std::vector<audit::IndexedEntry> batch;
    auto flush = [&] {
      auto part = audit::BuildAccessReport(batch, patient_id, start_ms, end_ms);
      rows.insert(rows.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
      batch.clear();
    };
    auto add = [&](audit::IndexedEntry e) {
      batch.push_back(std::move(e));
      if (batch.size() >= kReadChunk) flush();
      return true;
    };
    // The index lists this patient's entries in the prefix it covers; the
    // rest of the snapshot is scanned.
    uint64_t scan_from = 0;
    if (indexer_ != nullptr) {
      const uint64_t covered = std::min(indexer_->covered(), snapshot);
      auto ids = indexer_->EntriesFor(patient_id, 0, covered, SIZE_MAX);
      if (ids.ok()) {
        if (Status s = ReadListed(log_, *ids, add); !s.ok()) return Error(s);
        scan_from = covered;
      } else {
        log::Warn("audit.index_lookup_failed", {{"error", ids.status().message()}, {"fallback", "scan"}});
      }
    }
    PV_ASSIGN_OR_RETURN_RESPONSE(uint64_t scanned, Scan(log_, scan_from, snapshot, add));
    (void)scanned;
    flush();
    audit::SortAccessReport(rows, sort);

    auto link = [&](uint64_t off) {
      QueryParams p;
      for (const auto& kv : c_.params) {
        if (kv.first != "_offset" && kv.first != "_snapshot" && kv.first != "_count") p.push_back(kv);
      }
      p.emplace_back("_count", std::to_string(count));
      p.emplace_back("_snapshot", std::to_string(snapshot));
      p.emplace_back("_offset", std::to_string(off));
      return o_.base_url + "/fhir/Patient/" + patient_id + "/" + std::string(kAccessReportOp) + "?" + EncodeQuery(p);
    };
    json::array parameter;
    parameter.push_back(json::object{{"name", "patient"},
                                     {"valueReference", json::object{{"reference", "Patient/" + patient_id}}}});
    if (start_ms) parameter.push_back(json::object{{"name", "start"}, {"valueInstant", fhir::FormatInstant(*start_ms)}});
    if (end_ms) parameter.push_back(json::object{{"name", "end"}, {"valueInstant", fhir::FormatInstant(*end_ms)}});
    parameter.push_back(json::object{{"name", "total"}, {"valueUnsignedInt", rows.size()}});
    parameter.push_back(json::object{{"name", "self"}, {"valueUri", link(offset)}});
    const uint64_t first = std::min<uint64_t>(offset, rows.size());
    const uint64_t last = std::min<uint64_t>(rows.size(), first + static_cast<uint64_t>(count));
    if (last < rows.size()) parameter.push_back(json::object{{"name", "next"}, {"valueUri", link(last)}});
    for (uint64_t i = first; i < last; ++i) parameter.push_back(RowParameter(rows[i]));
    return Json(json::object{{"resourceType", "Parameters"}, {"parameter", std::move(parameter)}});
  }

 private:
  // Hands `fn` the entries the index lists under any of `values` (of
  // `kind`) in [cursor, covered), at most `budget` per value, in index
  // order, until `fn` returns false. Returns the first index not yet
  // accounted for: after the entry `fn` stopped at, else where a value's
  // list was cut by the budget, else the end of the covered prefix. Falls
  // back to `cursor` (the caller scans) if the index cannot answer.
  template <typename Fn>
  StatusOr<uint64_t> ExamineListed(store::AuditKey kind, const std::vector<std::string>& values, uint64_t cursor,
                                   uint64_t have, uint64_t budget, Fn fn) {
    const uint64_t covered = std::min(indexer_->covered(), have);
    if (cursor >= covered) return cursor;
    uint64_t until = covered;
    std::vector<uint64_t> ids;
    for (const std::string& v : values) {
      auto listed = indexer_->EntriesFor(kind, v, cursor, covered, budget);
      if (!listed.ok()) {
        log::Warn("audit.index_lookup_failed", {{"error", listed.status().message()}, {"fallback", "scan"}});
        return cursor;
      }
      // A list cut by the budget says nothing past its last entry.
      if (listed->size() >= budget) until = std::min(until, listed->back() + 1);
      ids.insert(ids.end(), listed->begin(), listed->end());
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    ids.erase(std::lower_bound(ids.begin(), ids.end(), until), ids.end());
    uint64_t last = cursor;
    bool stopped = false;
    PV_RETURN_IF_ERROR(ReadListed(log_, ids, [&](audit::IndexedEntry e) {
      last = e.index;
      stopped = !fn(std::move(e));
      return !stopped;
    }));
    return stopped ? last + 1 : until;
  }

  json::object RowParameter(const audit::AccessReportRow& r) const {
    json::array part;
    auto add = [&](std::string_view name, std::string_view type, json::value v) {
      part.push_back(json::object{{"name", name}, {std::string("value") + std::string(type), std::move(v)}});
    };
    add("event", "Reference", json::object{{"reference", "AuditEvent/" + std::to_string(r.index)}});
    add("when", "Instant", json::value(fhir::FormatInstant(r.when_ms)));
    if (!r.who.empty()) add("who", "String", json::value(r.who));
    if (!r.who_fhir_user.empty()) add("whoFhirUser", "String", json::value(r.who_fhir_user));
    if (!r.role.empty()) add("role", "Code", json::value(r.role));
    add("action", "Code", json::value(r.action));
    if (!r.resource.empty()) add("resource", "String", json::value(r.resource));
    if (!r.purpose.empty()) {
      add("purpose", "Coding",
          json::object{{"system", "http://terminology.hl7.org/CodeSystem/v3-ActReason"}, {"code", r.purpose}});
    }
    add("breakGlass", "Boolean", json::value(r.break_glass));
    if (!r.break_glass_reason.empty()) add("breakGlassReason", "String", json::value(r.break_glass_reason));
    add("outcome", "Code", json::value(r.outcome));
    return json::object{{"name", "row"}, {"part", std::move(part)}};
  }

  http::HttpResponse Error(const Status& s) const { return ErrorResponse(s, c_.fmt); }
  http::HttpResponse Json(const json::object& o) const { return JsonResponse(200, json::serialize(o), c_.fmt); }

  audit::AuditLog& log_;
  AuditIndexer* const indexer_;
  const AuditServiceOptions& o_;
  Ctx& c_;
};

}  // namespace

void AuditService::HandleAs(const Caller& caller, const http::HttpRequest& request, http::Responder respond) {
  const std::string& path = request.path;
  auto reply = [&](http::HttpResponse r, std::string_view route) {
    SetRoute(r, route);
    respond(std::move(r));
  };
  auto params = ParseQuery(request.query);
  if (!params.ok()) return reply(ErrorResponse(params.status()), "/audit");
  auto fmt = NegotiateFormat(request, *params);
  if (!fmt.ok()) return reply(OutcomeResponse(406, "error", "not-supported", fmt.status().message()), "/audit");
  Ctx ctx{request, std::move(*params), *fmt};
  Handlers h(*log_, indexer_, options_, ctx);

  if (auto patient = AccessReportPatient(path)) {
    constexpr std::string_view route = "/fhir/Patient/{id}/$access-report";
    if (request.method != "GET") return reply(MethodNotAllowed(ctx.fmt), route);
    if (!IsFhirId(*patient)) return reply(OutcomeResponse(400, "error", "invalid", "invalid patient id", ctx.fmt), route);
    const bool own = !OwnPatientId(caller).empty() && OwnPatientId(caller) == *patient;
    if (!IsPrivacyOfficer(caller) && !own) {
      return reply(Forbidden("the access report is for privacy officers and for the patient themself", ctx.fmt),
                   route);
    }
    if (!ScopeAllows(caller.principal, 'r')) {
      return reply(Forbidden("the token's scopes do not grant reading AuditEvent", ctx.fmt), route);
    }
    return reply(h.AccessReport(std::string(*patient)), route);
  }

  if (!IsPrivacyOfficer(caller)) {
    return reply(Forbidden("the audit log is for the privacy-officer role", ctx.fmt), "/audit");
  }
  if (path == "/fhir/AuditEvent") {
    constexpr std::string_view route = "/fhir/AuditEvent";
    if (request.method != "GET") return reply(MethodNotAllowed(ctx.fmt), route);
    if (!ScopeAllows(caller.principal, 's')) {
      return reply(Forbidden("the token's scopes do not grant searching AuditEvent", ctx.fmt), route);
    }
    return reply(h.SearchAuditEvents(), route);
  }
  if (auto id = AuditEventId(path)) {
    constexpr std::string_view route = "/fhir/AuditEvent/{id}";
    if (request.method != "GET") return reply(MethodNotAllowed(ctx.fmt), route);
    if (!ScopeAllows(caller.principal, 'r')) {
      return reply(Forbidden("the token's scopes do not grant reading AuditEvent", ctx.fmt), route);
    }
    return reply(h.ReadAuditEvent(*id), route);
  }
  if (request.method != "GET") return reply(MethodNotAllowed(ctx.fmt), "/audit");
  if (path == "/audit/checkpoint") return reply(h.Checkpoint(), "/audit/checkpoint");
  if (path == "/audit/proof/inclusion") return reply(h.Inclusion(), "/audit/proof/inclusion");
  if (path == "/audit/proof/consistency") return reply(h.Consistency(), "/audit/proof/consistency");
  if (path == "/audit/entries") return reply(h.Entries(), "/audit/entries");
  reply(OutcomeResponse(404, "error", "not-found", "unknown URL", ctx.fmt), "/audit");
}

}  // namespace phivault::api
