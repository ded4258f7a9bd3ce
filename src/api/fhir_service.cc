#include "api/fhir_service.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <set>

#include <boost/json.hpp>

#include "api/audit_service.h"
#include "api/bulk_export.h"
#include "api/bundle_processor.h"
#include "api/noisy_bound.h"
#include "api/request_audit.h"
#include "api/capability.h"
#include "api/everything.h"
#include "api/patch_request.h"
#include "api/request_context.h"
#include "api/search_handler.h"
#include "common/metrics.h"
#include "fhir/compartment.h"
#include "fhir/resource_types.h"
#include "fhir/time.h"
#include "fhir/validator.h"
#include "common/log.h"

namespace phivault::api {

namespace {

// The entry's data category (ASTM E2147's kind of data): the policy classes
// of the resource types it names, or of the type the URL names when it
// names none (a search that found nothing), e.g. "clinical,demographic".
void SetDataCategory(audit::AuditEntry& e, const AccessControl& access, std::string_view url_type) {
  std::set<std::string_view> classes;
  for (const auto& r : e.resources) {
    if (fhir::IsKnownResourceType(r.type)) classes.insert(access.ResourceClassOf(r.type));
  }
  if (classes.empty() && fhir::IsKnownResourceType(url_type)) classes.insert(access.ResourceClassOf(url_type));
  std::string out;
  for (std::string_view c : classes) {
    if (!out.empty()) out += ',';
    out += c;
  }
  e.data_category = std::move(out);
}

}  // namespace

struct FhirService::Call {
  http::HttpRequest req;
  http::Responder respond;
  RequestAuditor* auditor = nullptr;
  const AccessControl* access = nullptr;
  QueryParams params;
  OutputFormat fmt;
  std::vector<std::string_view> segments;  // path below /fhir
  std::shared_ptr<const Caller> caller;  // null only for /fhir/metadata
  int64_t now_ms = 0;
  // Filled while the request is handled; recorded by Reply.
  audit::AuditEntry entry;

  // Records the audit entry and sends `resp` once it is durable (503 if it
  // cannot be written). Every answer below /fhir goes through here, or
  // through ReplyAfterWrite for committed writes.
  void Reply(http::HttpResponse resp, std::string_view route) {
    SetRoute(resp, route);
    resp.headers.emplace_back("X-Request-Id", entry.request_id);
    FinishEntry(entry, resp.status);
    if (access) SetDataCategory(entry, *access, segments.empty() ? std::string_view() : segments[0]);
    auditor->Record(entry, ReleaseWhenAudited(std::move(respond), std::move(resp), fmt, route));
  }
  void Fail(const Status& s, std::string_view route) { Reply(ErrorResponse(s, fmt), route); }
  // Operational endpoints only (no identity, no health data): not audited.
  void Send(http::HttpResponse resp, std::string_view route) {
    SetRoute(resp, route);
    respond(std::move(resp));
  }
};

namespace {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

http::HttpResponse MethodNotAllowed(std::string_view allow, const OutputFormat& fmt) {
  http::HttpResponse r = OutcomeResponse(405, "error", "not-supported", "method not allowed on this URL", fmt);
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

enum class Prefer { kRepresentation, kMinimal, kOutcome };

Prefer PreferReturn(const http::HttpRequest& req) {
  const std::string* p = req.Header("prefer");
  if (!p) return Prefer::kRepresentation;
  if (p->find("return=minimal") != std::string::npos) return Prefer::kMinimal;
  if (p->find("return=OperationOutcome") != std::string::npos) return Prefer::kOutcome;
  return Prefer::kRepresentation;
}

StatusOr<int> PageSize(const QueryParams& params, int def, int max) {
  const std::string* c = FindParam(params, "_count");
  if (!c) return def;
  int n = 0;
  auto [p, ec] = std::from_chars(c->data(), c->data() + c->size(), n);
  if (ec != std::errc() || p != c->data() + c->size() || n < 1) return InvalidArgument("_count must be a positive integer");
  return std::min(n, max);
}

}  // namespace

FhirService::FhirService(store::ResourceStore* store, AccessControl* access, RequestAuditor* auditor,
                         ServiceOptions options, http::Handler* auth_endpoints)
    : store_(store),
      access_(access),
      auditor_(auditor),
      auth_endpoints_(auth_endpoints),
      options_(std::move(options)),
      capability_json_(BuildCapabilityStatement(options_.base_url)),
      cursors_(options_.keyring),
      search_(std::make_shared<SearchHandler>(store, access, options_, &cursors_)) {
  access_->SetBreakGlassListener(
      [this](const Caller& caller, const http::HttpRequest& req, int64_t now_ms,
             const std::vector<std::string>& patients) { RecordBreakGlassGrant(caller, req, now_ms, patients); });
}

FhirService::~FhirService() { access_->SetBreakGlassListener(nullptr); }

void FhirService::Handle(http::HttpRequest request, http::Responder respond) {
  Call call;
  call.req = std::move(request);
  call.respond = std::move(respond);
  call.auditor = auditor_;
  call.access = access_;
  const std::string& path = call.req.path;

  if (path == "/healthz") {
    call.Send(JsonResponse(200, R"({"status":"alive"})", OutputFormat{.plain_json = true}), "/healthz");
    return;
  }
  if (path == "/readyz") {
    // Not ready while either the data or the audit trail cannot be written:
    // a load balancer should send requests elsewhere. (Asking the auditor
    // also probes a failed audit log, so readiness returns on its own.)
    bool audit_ok = auditor_->Healthy();
    bool ready = store_->Healthy() && audit_ok && !draining_.load();
    std::string body = ready ? R"({"status":"ready"})"
                             : std::string(R"({"status":"not ready","store":)") +
                                   (store_->Healthy() ? "true" : "false") + R"(,"audit":)" +
                                   (audit_ok ? "true" : "false") + "}";
    call.Send(JsonResponse(ready ? 200 : 503, std::move(body), OutputFormat{.plain_json = true}), "/readyz");
    return;
  }
  if (path == "/metrics") {
    // Counts of patients and writes are not health data, but they do show an
    // outsider the size and activity of the record: monitoring authenticates
    // (a `system` service token, or a security admin). Scrapes are not
    // audited (every 15 s); refused ones are, like every denial.
    call.now_ms = fhir::NowMillis();
    auto caller = access_->Authenticate(call.req, call.now_ms);
    const bool allowed = caller.ok() && ((*caller)->principal.role == policy::Role::kSystem ||
                                         (*caller)->principal.role == policy::Role::kSecurityAdmin);
    if (!allowed) {
      StartEntry(call.entry, call.req, call.now_ms);
      call.entry.action = audit::AuditAction::kSystem;
      call.entry.event = "metrics";
      call.fmt = OutputFormat{};
      if (!caller.ok()) {
        call.entry.rule = "identity";
        return call.Reply(AuthenticationFailure(caller.status(), call.fmt), "/metrics");
      }
      SetAgent(call.entry, **caller);
      call.entry.rule = "role";
      return call.Reply(OutcomeResponse(403, "error", "forbidden",
                                        "metrics need a system or security-admin identity", call.fmt),
                        "/metrics");
    }
    Metrics(call);
    return;
  }
  if (path == "/.well-known/smart-configuration") {
    SmartConfiguration(call);
    return;
  }
  if (auth_endpoints_ && (path.rfind("/auth/", 0) == 0 || path == "/.well-known/jwks.json")) {
    auth_endpoints_->Handle(std::move(call.req), std::move(call.respond));
    return;
  }
  if (audit_endpoints_ && AuditService::Handles(path)) {
    HandleAuditApi(call);
    return;
  }
  if (path != "/fhir" && path.rfind("/fhir/", 0) != 0) {
    call.Send(OutcomeResponse(404, "error", "not-found", "unknown URL"), "other");
    return;
  }
  call.now_ms = fhir::NowMillis();
  StartEntry(call.entry, call.req, call.now_ms);
  // Whatever is recorded later from this request (a break-glass alert)
  // carries the same request id.
  SetRequestIdHeader(call.req, call.entry.request_id);
  auto params = ParseQuery(call.req.query);
  if (!params.ok()) {
    call.Fail(params.status(), "/fhir");
    return;
  }
  call.params = std::move(*params);
  auto fmt = NegotiateFormat(call.req, call.params);
  if (!fmt.ok() && BulkExporter::IsDownloadPath(path)) fmt = OutputFormat{};  // answered in NDJSON
  if (!fmt.ok()) {
    // 406 for Accept/_format we cannot produce.
    call.Reply(OutcomeResponse(406, "error", "not-supported", fmt.status().message()), "/fhir");
    return;
  }
  call.fmt = *fmt;
  call.segments = SplitPath(std::string_view(path).substr(5));
  bool is_metadata = call.segments.size() == 1 && call.segments[0] == "metadata";
  if (!is_metadata) {
    // Deny by default: nothing below /fhir but the CapabilityStatement is
    // served without an identity.
    auto caller = access_->Authenticate(call.req, call.now_ms);
    if (!caller.ok()) {
      call.entry.rule = "identity";
      call.Reply(AuthenticationFailure(caller.status(), call.fmt), "/fhir");
      return;
    }
    call.caller = std::move(*caller);
    SetAgent(call.entry, *call.caller);
  }
  HandleFhir(call);
}

// The audit API reads the log itself; its requests are audited like any
// other (action audit-query or access-report, with the patient asked about).
void FhirService::HandleAuditApi(Call& call) {
  static constexpr std::string_view kRoute = "/audit";
  call.now_ms = fhir::NowMillis();
  StartEntry(call.entry, call.req, call.now_ms);
  AuditRequestInfo info = AuditService::Describe(call.req);
  call.entry.action = info.action;
  call.entry.patients = std::move(info.patients);
  call.entry.query = std::move(info.query);
  call.fmt = OutputFormat{};
  auto caller = access_->Authenticate(call.req, call.now_ms);
  if (!caller.ok()) {
    call.entry.rule = "identity";
    return call.Reply(AuthenticationFailure(caller.status(), call.fmt), kRoute);
  }
  SetAgent(call.entry, **caller);
  audit_endpoints_->HandleAs(
      **caller, call.req,
      [auditor = auditor_, entry = std::move(call.entry), respond = std::move(call.respond)](
          http::HttpResponse r) mutable {
        SetRoute(r, kRoute);
        r.headers.emplace_back("X-Request-Id", entry.request_id);
        if (r.status == 403) entry.rule = "role";
        FinishEntry(entry, r.status);
        auditor->Record(entry, ReleaseWhenAudited(std::move(respond), std::move(r), OutputFormat{}, kRoute));
      });
}

void FhirService::HandleFhir(Call& call) {
  const auto& seg = call.segments;
  const std::string& method = call.req.method;

  if (seg.empty()) {
    if (method == "POST") return Bundle(call);
    return call.Reply(MethodNotAllowed("POST", call.fmt), "/fhir");
  }
  if (seg.size() == 1 && seg[0] == "metadata") {
    if (method != "GET" && method != "HEAD") return call.Reply(MethodNotAllowed("GET", call.fmt), "/fhir/metadata");
    return Metadata(call);
  }
  if (seg.size() == 1 && seg[0] == "_history") {
    if (method != "GET") return call.Reply(MethodNotAllowed("GET", call.fmt), "/fhir/_history");
    return History(call, "", "");
  }
  if (bulk_ && BulkExporter::Handles(seg)) {
    return call.Reply(bulk_->Handle(call.caller, call.req, call.params, seg, call.fmt, call.entry, call.now_ms),
                      BulkExporter::Route(seg));
  }
  const std::string type(seg[0]);
  if (!fhir::IsKnownResourceType(type)) {
    return call.Reply(OutcomeResponse(404, "error", "not-found", "unknown resource type", call.fmt), "/fhir/{unknown}");
  }
  if (seg.size() == 1) {
    if (method == "POST") return Create(call, type);
    if (method == "GET") {
      call.entry.action = audit::AuditAction::kSearch;
      http::HttpResponse r =
          search_->Search(call.req, *call.caller, type, call.params, false, call.fmt, call.now_ms, &call.entry);
      return call.Reply(std::move(r), "/fhir/{type}");
    }
    if (method == "PUT" || method == "DELETE") {  // conditional update / delete
      auto c = search_->ResolveConditional(call.req, *call.caller, type, call.params, call.now_ms);
      if (!c.ok()) return call.Fail(c.status(), "/fhir/{type}");
      using Action = SearchHandler::Conditional::Action;
      if (c->action == Action::kCreate) return Create(call, type);
      if (c->action == Action::kUpdate) return Update(call, type, c->id);
      if (c->action == Action::kDelete) return Delete(call, type, c->id);
      return call.Reply(OutcomeResponse(200, "information", "informational", "nothing to delete", call.fmt),
                        "/fhir/{type}");
    }
    return call.Reply(MethodNotAllowed("GET, POST, PUT, DELETE", call.fmt), "/fhir/{type}");
  }
  if (seg.size() == 2 && seg[1] == "_history") {
    if (method != "GET") return call.Reply(MethodNotAllowed("GET", call.fmt), "/fhir/{type}/_history");
    return History(call, type, "");
  }
  if (seg.size() == 2 && seg[1] == "_search") {
    if (method != "POST") return call.Reply(MethodNotAllowed("POST", call.fmt), "/fhir/{type}/_search");
    call.entry.action = audit::AuditAction::kSearch;
    http::HttpResponse r =
        search_->Search(call.req, *call.caller, type, call.params, true, call.fmt, call.now_ms, &call.entry);
    return call.Reply(std::move(r), "/fhir/{type}/_search");
  }
  const std::string id(seg[1]);
  if (!fhir::IsValidId(id)) {
    return call.Reply(OutcomeResponse(400, "error", "invalid", "invalid resource id", call.fmt), "/fhir/{type}/{id}");
  }
  if (seg.size() == 2) {
    if (method == "GET" || method == "HEAD") return Read(call, type, id);
    if (method == "PUT") return Update(call, type, id);
    if (method == "DELETE") return Delete(call, type, id);
    if (method == "PATCH") return Patch(call, type, id);
    return call.Reply(MethodNotAllowed("GET, PUT, PATCH, DELETE", call.fmt), "/fhir/{type}/{id}");
  }
  if (seg.size() == 3 && seg[2] == "$everything" && type == "Patient") {
    if (method != "GET") return call.Reply(MethodNotAllowed("GET", call.fmt), "/fhir/Patient/{id}/$everything");
    return Everything(call, id);
  }
  if (seg[2] != "_history" || seg.size() > 4) {
    return call.Reply(OutcomeResponse(404, "error", "not-found", "unknown URL", call.fmt), "other");
  }
  if (method != "GET") {
    return call.Reply(MethodNotAllowed("GET", call.fmt),
                      seg.size() == 3 ? "/fhir/{type}/{id}/_history" : "/fhir/{type}/{id}/_history/{vid}");
  }
  if (seg.size() == 3) return History(call, type, id);
  return VRead(call, type, id, std::string(seg[3]));
}

// The grant is an event of its own (the privacy officer's alert), recorded
// before the request that opened it: the log keeps order, so by the time the
// request's entry is durable, so is this one.
// Every grant, on whichever path opened it (AccessControl calls this through
// its break-glass listener). The request's id is in req (Handle puts it
// there), so the alert and the request's own entry name the same request.
void FhirService::RecordBreakGlassGrant(const Caller& caller, const http::HttpRequest& req, int64_t now_ms,
                                        const std::vector<std::string>& patients) {
  log::Warn("policy.break_glass_granted", {{"subject", caller.principal.subject}});
  metrics::Registry::Default().GetCounter("phivault_break_glass_grants_total", "Break-glass grants", {}).Increment();
  audit::AuditEntry grant;
  StartEntry(grant, req, now_ms);
  SetAgent(grant, caller);
  grant.action = audit::AuditAction::kBreakGlass;
  grant.patients = patients;
  grant.break_glass = true;
  FinishEntry(grant, 0);
  auditor_->Record(grant, {});
}

StatusOr<store::ResourceVersion> FhirService::ReadAuthorized(Call& call, const std::string& type,
                                                             const std::string& id, int64_t version) {
  auto interaction = version ? policy::Interaction::kVRead : policy::Interaction::kRead;
  call.entry.action = version ? audit::AuditAction::kVRead : audit::AuditAction::kRead;
  policy::Decision gate = access_->DecideType(*call.caller, interaction, type);
  if (!gate.allowed) {
    NoteDecision(call.entry, gate);
    AddRequested(call.entry, type, id);
    return policy::DecisionStatus(gate);
  }
  auto v = version ? store_->ReadVersion(type, id, version) : store_->Read(type, id);
  if (!v.ok()) {
    AddRequested(call.entry, type, id);
    // The store says "version not found" for a record that exists: the
    // same answer as a missing or hidden record, or vread would tell them
    // apart (and count versions) for anyone.
    if (v.status().code() == StatusCode::kNotFound) return NotFound("resource not found");
    return v.status();
  }
  // The entry names the record even when it is refused or deleted: the
  // privacy officer must see attempts too.
  AddResource(call.entry, *v);
  policy::Decision d = access_->Decide(*call.caller, interaction, *v, call.req, call.now_ms);
  NoteDecision(call.entry, d);
  if (!d.allowed) return policy::DecisionStatus(d);
  // Only a caller who may see the record learns that it was deleted.
  if (v->deleted) return Status(StatusCode::kGone, "resource was deleted");
  return v;
}

void FhirService::Read(Call& call, const std::string& type, const std::string& id) {
  static constexpr std::string_view kRoute = "/fhir/{type}/{id}";
  auto v = ReadAuthorized(call, type, id, 0);
  if (!v.ok()) return call.Fail(v.status(), kRoute);
  http::HttpResponse r = JsonResponse(200, std::move(v->json), call.fmt);
  AddVersionHeaders(r, v->version, v->last_updated_ms);
  call.Reply(std::move(r), kRoute);
}

void FhirService::VRead(Call& call, const std::string& type, const std::string& id, const std::string& vid) {
  static constexpr std::string_view kRoute = "/fhir/{type}/{id}/_history/{vid}";
  int64_t version = 0;
  auto [p, ec] = std::from_chars(vid.data(), vid.data() + vid.size(), version);
  if (ec != std::errc() || p != vid.data() + vid.size() || version < 1) {
    return call.Reply(OutcomeResponse(400, "error", "invalid", "invalid version id", call.fmt), kRoute);
  }
  auto v = ReadAuthorized(call, type, id, version);
  if (!v.ok()) return call.Fail(v.status(), kRoute);
  http::HttpResponse r = JsonResponse(200, std::move(v->json), call.fmt);
  AddVersionHeaders(r, v->version, v->last_updated_ms);
  call.Reply(std::move(r), kRoute);
}

Status FhirService::AuthorizeWrite(Call& call, store::WriteOp& op, int64_t now_ms) {
  using policy::Interaction;
  if (op.kind == store::WriteOp::Kind::kCreate && op.if_none_exist) {
    // If-None-Exist counts only matches the caller may read, with standing
    // access or an open grant. A match is a search hit, not a named record
    // (instance_level false), so deciding it never opens a grant.
    http::HttpRequest probe = call.req;
    probe.body.clear();  // the decision reads headers only; the writer keeps this copy
    op.if_none_exist->visible = [access = access_, caller = call.caller, probe = std::move(probe),
                                 now_ms](const store::ResourceVersion& v) {
      return access->Decide(*caller, Interaction::kRead, v, probe, now_ms, /*instance_level=*/false).allowed;
    };
  }
  Interaction gate_i = op.kind == store::WriteOp::Kind::kCreate   ? Interaction::kCreate
                       : op.kind == store::WriteOp::Kind::kDelete ? Interaction::kDelete
                                                                  : Interaction::kUpdate;
  policy::Decision gate = access_->DecideType(*call.caller, gate_i, op.type);
  if (!gate.allowed) {
    NoteDecision(call.entry, gate);
    AddRequested(call.entry, op.type, op.id);
    return policy::DecisionStatus(gate);
  }
  if (op.type == "Binary" && op.kind != store::WriteOp::Kind::kDelete && op.patients.empty()) {
    // A Binary belongs to what its securityContext names (docs/DECISIONS.md):
    // storing that resource's link makes the audit trail, $everything and
    // exports see whose it is, and the writer needs that patient's access.
    // Reads follow the context whatever is stored.
    if (auto link = AccessControl::BinaryContextLink(*store_, op.resource)) op.patients = std::move(*link);
  }
  // A refused write is recorded with what it targeted (and whose record it
  // was); an allowed one with what the store reports it wrote.
  auto refused = [&](const policy::Decision& d, const store::ResourceVersion* target) {
    NoteDecision(call.entry, d);
    if (target) {
      AddResource(call.entry, *target);
    } else {
      AddRequested(call.entry, op.type, op.id);
      call.entry.patients.insert(call.entry.patients.end(), op.patients.begin(), op.patients.end());
    }
    return policy::DecisionStatus(d);
  };
  std::string stored_author;
  bool exists = false;
  // What a caller learns from a write must not depend on whether a record it
  // may not see exists (see src/policy/README.md): a delete of a missing
  // record answers like a delete of a hidden one (404), and a PUT onto a
  // hidden record answers like a PUT creating it would, wherever possible.
  auto new_content = [&](Interaction i) {
    return access_->DecideWrite(*call.caller, i, op.type, op.id, op.resource, op.patients, stored_author, call.req,
                                now_ms);
  };
  if (op.kind != store::WriteOp::Kind::kCreate) {
    auto cur = store_->Read(op.type, op.id);
    if (!cur.ok() && cur.status().code() != StatusCode::kNotFound) return cur.status();
    if (!cur.ok() && op.kind == store::WriteOp::Kind::kDelete) {
      AddRequested(call.entry, op.type, op.id);
      return NotFound("resource not found");
    }
    if (!cur.ok() && op.if_match_version) {
      // If-Match names a version of a record that does not exist. Answered
      // as a hidden record is: refused like its create would be if that is
      // refused, else 404; never the store's 412, which would tell a
      // missing id from a hidden one without creating anything.
      policy::Decision as_create = new_content(Interaction::kCreate);
      if (!as_create.allowed) return refused(as_create, nullptr);
      AddRequested(call.entry, op.type, op.id);
      return NotFound("resource not found");
    }
    if (cur.ok()) {
      // Changing a record (or learning it was deleted) needs the right to
      // change it as it is now...
      policy::Decision d = access_->Decide(*call.caller, gate_i, *cur, call.req, now_ms);
      if (!d.allowed) {
        if (d.hide_existence && op.kind == store::WriteOp::Kind::kPut) {
          // A missing record would be created: answer as that create would
          // be answered when it is refused. Only a caller allowed to create
          // such content learns that the id is taken (unavoidable with
          // client-assigned ids).
          policy::Decision as_create = new_content(Interaction::kCreate);
          if (!as_create.allowed) return refused(as_create, &*cur);
        }
        return refused(d, &*cur);
      }
      NoteDecision(call.entry, d);
      exists = !cur->deleted;
      if (exists) stored_author = cur->author;
      // A write that moves a record to another patient (or to none) touches
      // the record of the patient it leaves too: their access report must
      // show it.
      call.entry.patients.insert(call.entry.patients.end(), cur->patients.begin(), cur->patients.end());
    }
  }
  if (op.kind == store::WriteOp::Kind::kDelete) return Status::Ok();
  // ...and the right to write what it becomes (its patients may change).
  policy::Decision d = new_content(exists ? Interaction::kUpdate : Interaction::kCreate);
  if (!d.allowed) return refused(d, nullptr);
  NoteDecision(call.entry, d);
  op.author = AccessControl::AuthorOf(*call.caller);
  return Status::Ok();
}

namespace {

// Parses and checks a request body that must hold a resource of `type`.
StatusOr<boost::json::object> ReadBody(const http::HttpRequest& req, const std::string& type,
                                       const fhir::ParseLimits& limits) {
  PV_RETURN_IF_ERROR(CheckContentType(req));
  PV_ASSIGN_OR_RETURN(boost::json::object resource, fhir::ParseResource(req.body, limits));
  const boost::json::value* rt = resource.if_contains("resourceType");
  if (!rt || !rt->is_string() || rt->get_string() != type) {
    return InvalidArgument("resourceType in the body does not match the URL");
  }
  // Create, update, conditional update and the result of a PATCH all come
  // through here: nothing is stored that is not valid R4.
  PV_RETURN_IF_ERROR(fhir::ValidateResource(resource));
  return resource;
}

// Shapes a write result into the HTTP answer the client asked for.
http::HttpResponse WriteResponse(int status, const store::WriteResult& w, const std::string& base, Prefer prefer,
                                 const OutputFormat& fmt) {
  http::HttpResponse r;
  if (prefer == Prefer::kMinimal) {
    r.status = status;
  } else if (prefer == Prefer::kOutcome) {
    r = OutcomeResponse(status, "information", "informational", status == 201 ? "created" : "updated", fmt);
  } else {
    r = JsonResponse(status, w.json, fmt);
  }
  AddVersionHeaders(r, w.version, w.last_updated_ms);
  std::string loc = base + "/fhir/" + w.type + "/" + w.id + "/_history/" + std::to_string(w.version);
  r.headers.emplace_back("Location", loc);
  r.headers.emplace_back("Content-Location", loc);
  return r;
}

}  // namespace

void FhirService::Create(Call& call, const std::string& type) {
  static constexpr std::string_view kRoute = "/fhir/{type}";
  auto resource = ReadBody(call.req, type, options_.parse_limits);
  if (!resource.ok()) return call.Fail(resource.status(), kRoute);
  store::WriteOp op;
  op.kind = store::WriteOp::Kind::kCreate;
  op.type = type;
  op.id = NewId();  // FHIR: the server ignores any id in a create body
  (*resource)["id"] = op.id;
  op.patients = fhir::PatientCompartment(*resource);
  op.resource = std::move(*resource);
  if (const std::string* ine = call.req.Header("if-none-exist")) {
    auto cond = ParseExistCondition(*ine, type);
    if (!cond.ok()) return call.Fail(cond.status(), kRoute);
    op.if_none_exist = std::move(*cond);
  }
  if (Status a = AuthorizeWrite(call, op, call.now_ms); !a.ok()) return call.Fail(a, kRoute);
  Prefer prefer = PreferReturn(call.req);
  CommitOne(call, std::move(op), kRoute,
            [fmt = call.fmt, base = options_.base_url, prefer](const store::WriteResult& w) {
              // If-None-Exist matched one record the caller may read (the
              // store counts no other): it is the answer.
              return WriteResponse(w.no_op ? 200 : 201, w, base, prefer, fmt);
            });
}

void FhirService::Update(Call& call, const std::string& type, const std::string& id) {
  static constexpr std::string_view kRoute = "/fhir/{type}/{id}";
  auto resource = ReadBody(call.req, type, options_.parse_limits);
  if (!resource.ok()) return call.Fail(resource.status(), kRoute);
  const boost::json::value* body_id = resource->if_contains("id");
  if (!body_id || !body_id->is_string()) {
    return call.Fail(InvalidArgument("the resource in an update must carry its id"), kRoute);
  }
  if (body_id->get_string() != id) {
    return call.Fail(InvalidArgument("the id in the body does not match the URL"), kRoute);
  }
  store::WriteOp op;
  op.kind = store::WriteOp::Kind::kPut;
  op.type = type;
  op.id = id;
  op.patients = fhir::PatientCompartment(*resource);
  op.resource = std::move(*resource);
  if (const std::string* im = call.req.Header("if-match")) {
    auto v = ParseIfMatch(*im);
    if (!v.ok()) return call.Fail(v.status(), kRoute);
    op.if_match_version = *v;
  }
  if (Status a = AuthorizeWrite(call, op, call.now_ms); !a.ok()) return call.Fail(a, kRoute);
  Prefer prefer = PreferReturn(call.req);
  CommitOne(call, std::move(op), kRoute,
            [fmt = call.fmt, base = options_.base_url, prefer](const store::WriteResult& w) {
              return WriteResponse(w.created ? 201 : 200, w, base, prefer, fmt);
            });
}

void FhirService::Delete(Call& call, const std::string& type, const std::string& id) {
  static constexpr std::string_view kRoute = "/fhir/{type}/{id}";
  store::WriteOp op;
  op.kind = store::WriteOp::Kind::kDelete;
  op.type = type;
  op.id = id;
  if (const std::string* im = call.req.Header("if-match")) {
    auto v = ParseIfMatch(*im);
    if (!v.ok()) return call.Fail(v.status(), kRoute);
    op.if_match_version = *v;
  }
  if (Status a = AuthorizeWrite(call, op, call.now_ms); !a.ok()) return call.Fail(a, kRoute);
  op.author = AccessControl::AuthorOf(*call.caller);
  CommitOne(call, std::move(op), kRoute, [fmt = call.fmt](const store::WriteResult& w) {
    http::HttpResponse r =
        OutcomeResponse(200, "information", "informational", w.no_op ? "nothing to delete" : "deleted", fmt);
    if (!w.no_op) r.headers.emplace_back("ETag", ETag(w.version));
    return r;
  });
}

void FhirService::Patch(Call& call, const std::string& type, const std::string& id) {
  Status s = RewritePatchAsUpdate(*store_, *access_, *call.caller, type, id, call.now_ms, options_.parse_limits,
                                  call.req, &call.entry);
  if (!s.ok()) return call.Reply(PatchErrorResponse(s, call.fmt), "/fhir/{type}/{id}");
  Update(call, type, id);
}

void FhirService::Everything(Call& call, const std::string& id) {
  static constexpr std::string_view kRoute = "/fhir/Patient/{id}/$everything";
  EverythingContext ctx{*store_, *access_, *call.caller, call.req, cursors_, call.now_ms, options_.base_url,
                        options_.default_page_size, options_.max_page_size};
  ctx.refill_examined_limit = options_.join_examined_limit;
  call.entry.action = audit::AuditAction::kOperation;
  call.entry.query = QueryShape("Patient/" + id + "/$everything", call.params);
  call.entry.patients.push_back(id);
  auto result = PatientEverything(ctx, call.params, id);
  if (!result.ok()) return call.Fail(result.status(), kRoute);
  if (result->break_glass) call.entry.break_glass = true;
  for (const auto& r : result->returned) {
    call.entry.resources.push_back({r.type, r.id, std::to_string(r.version), ""});
    call.entry.patients.insert(call.entry.patients.end(), r.patients.begin(), r.patients.end());
  }
  call.Reply(JsonResponse(200, std::move(result->bundle), call.fmt), kRoute);
}

void FhirService::CommitOne(Call& call, store::WriteOp op, std::string_view route,
                            std::function<http::HttpResponse(const store::WriteResult&)> render) {
  std::vector<store::WriteOp> ops;
  ops.push_back(std::move(op));
  CommitAudited(call, std::move(ops), true, route,
                [this, render = std::move(render)](const store::CommitOutcome& out, audit::AuditEntry& entry) {
                  const store::WriteResult& w = *out.results[0];
                  access_->OnCommitted(w);
                  http::HttpResponse r = render(w);
                  if (w.no_op && r.status == 200 && !w.json.empty()) {
                    // If-None-Exist matched and the match is shown.
                    entry.resources.push_back({w.type, w.id, std::to_string(w.version), ""});
                    entry.patients.insert(entry.patients.end(), w.patients.begin(), w.patients.end());
                  }
                  return r;
                });
}

// A committed write answers only after its audit entry reaches the log. The
// store keeps the entry (as far as the writes go) in the write's own
// transaction; the entry appended afterwards adds what the answer showed
// (its status, and any resources a bundle returned), so a recovered entry
// describes a write whose answer was never sent.
void FhirService::CommitAudited(Call& call, std::vector<store::WriteOp> ops, bool atomic, std::string_view route,
                                std::function<http::HttpResponse(const store::CommitOutcome&, audit::AuditEntry&)>
                                    render) {
  std::vector<std::pair<std::string, std::string>> targets;
  for (const auto& op : ops) targets.emplace_back(op.type, op.id);
  if (!auditor_->Healthy()) {
    // Refused before anything is stored. Committing and then withholding
    // the answer would leave the client unsure whether its write happened,
    // and its retry of a POST would store the record twice.
    for (const auto& [type, id] : targets) AddRequested(call.entry, type, id);
    call.entry.rule = "audit-unavailable";
    http::HttpResponse r = OutcomeResponse(503, "error", "transient",
                                           "the audit log cannot be written, so nothing was stored; retry later",
                                           call.fmt);
    r.headers.emplace_back("Retry-After", "5");
    SetRoute(r, route);
    r.headers.emplace_back("X-Request-Id", call.entry.request_id);
    FinishEntry(call.entry, r.status);
    SetDataCategory(call.entry, *access_, {});
    // The refusal holds no health data, so it is sent whether or not its
    // entry lands (it will not while the log fails).
    auditor_->Record(call.entry, [respond = std::move(call.respond), r = std::move(r)](Status) mutable {
      respond(std::move(r));
    });
    return;
  }
  auto builder = [entry = call.entry, access = access_](const store::CommitOutcome& out, int64_t record_id) {
    audit::AuditEntry e = entry;
    e.write_record = record_id;
    AddWriteResults(e, out.results);
    FinishEntry(e, 0);
    SetDataCategory(e, *access, {});
    return audit::Serialize(e);
  };
  store_->Commit(
      std::move(ops), atomic,
      [this, respond = std::move(call.respond), fmt = call.fmt, route, entry = std::move(call.entry),
       render = std::move(render), targets = std::move(targets)](store::CommitOutcome out) mutable {
        if (!out.status.ok() || out.audit_record_id == 0) {
          // Nothing was stored: an ordinary entry for a failed request,
          // naming what it tried to write.
          for (const auto& [type, id] : targets) AddRequested(entry, type, id);
          http::HttpResponse r = ErrorResponse(out.status.ok() ? Internal("write not recorded") : out.status, fmt);
          SetRoute(r, route);
          r.headers.emplace_back("X-Request-Id", entry.request_id);
          FinishEntry(entry, r.status);
          SetDataCategory(entry, *access_, {});
          auditor_->Record(entry, ReleaseWhenAudited(std::move(respond), std::move(r), fmt, route));
          return;
        }
        entry.write_record = out.audit_record_id;
        AddWriteResults(entry, out.results);
        http::HttpResponse r = render(out, entry);
        SetRoute(r, route);
        r.headers.emplace_back("X-Request-Id", entry.request_id);
        FinishEntry(entry, r.status);
        SetDataCategory(entry, *access_, {});
        auditor_->RecordWrite(out.audit_record_id, audit::Serialize(entry), std::move(out.audit_record),
                              ReleaseWhenAudited(std::move(respond), std::move(r), fmt, route));
      },
      std::move(builder));
}

void FhirService::History(Call& call, const std::string& type, const std::string& id) {
  std::string_view route = id.empty() ? (type.empty() ? "/fhir/_history" : "/fhir/{type}/_history")
                                      : "/fhir/{type}/{id}/_history";
  call.entry.action = audit::AuditAction::kHistory;
  call.entry.query = (type.empty() ? "" : type + "/") + (id.empty() ? "" : id + "/") + "_history";
  store::HistoryQuery q;
  q.type = type;
  q.id = id;
  auto count = PageSize(call.params, options_.default_page_size, options_.max_page_size);
  if (!count.ok()) return call.Fail(count.status(), route);
  q.count = *count;
  // A cursor pages through this history only, at this page size.
  std::string bound_to = "phivault/history-cursor/v1";
  for (const std::string* part : {&type, &id}) bound_to.append(1, '\0').append(*part);
  bound_to.append(1, '\0').append(std::to_string(q.count));
  if (const std::string* cursor = FindParam(call.params, "_cursor")) {
    auto position = cursors_.Open(*cursor, bound_to);
    if (!position.ok()) return call.Fail(position.status(), route);
    auto [p, ec] = std::from_chars(position->data(), position->data() + position->size(), q.before_seq);
    if (ec != std::errc() || p != position->data() + position->size() || q.before_seq < 1) {
      return call.Fail(InvalidArgument("invalid paging cursor"), route);
    }
  }
  for (const auto& [k, v] : call.params) {
    if (k != "_count" && k != "_cursor" && k != "_format" && k != "_pretty") {
      return call.Fail(Status(StatusCode::kInvalidArgument, "unsupported history parameter: " + k), route);
    }
  }
  if (!type.empty()) {
    policy::Decision gate = access_->DecideType(*call.caller, policy::Interaction::kHistory, type, !id.empty());
    if (!gate.allowed) {
      NoteDecision(call.entry, gate);
      return call.Fail(policy::DecisionStatus(gate), route);
    }
  }
  // Authorization runs on every version the page would show. Pages are
  // refilled from further back so a page holds `count` visible entries
  // whenever that many exist; the cursor points past what was examined, so
  // paging stays consistent however many entries were filtered out.
  // The refill stops at a drawn number of entries examined (hidden ones
  // included; api/noisy_bound.h): with a fixed number, a short page with a
  // next link would tell exactly how many hidden versions came first.
  // Chunks after the first grow, so a small _count stays cheap.
  store::HistoryPage page;
  store::HistoryQuery scan = q;
  int64_t cursor = q.before_seq;
  bool more = true;
  const int64_t limit = NoisyRefillBound(options_.join_examined_limit, q.count);
  int64_t examined = 0;
  for (int chunk_size = q.count; more && static_cast<int>(page.entries.size()) < q.count;
       chunk_size = std::min(chunk_size * 2, 1000)) {
    scan.before_seq = cursor;
    scan.count = std::max(chunk_size, q.count);
    auto chunk = store_->History(scan);
    if (!chunk.ok()) return call.Fail(chunk.status(), route);
    more = chunk->next_cursor != 0;
    bool at_limit = false;
    for (size_t i = 0; i < chunk->entries.size(); ++i) {
      if (examined == limit) {
        at_limit = more = true;  // this entry, at least, was not examined
        break;
      }
      ++examined;
      store::HistoryEntry& e = chunk->entries[i];
      cursor = e.seq;
      bool type_ok =
          !type.empty() ||
          access_->DecideType(*call.caller, policy::Interaction::kHistory, e.version.type, /*instance_level=*/false)
              .allowed;
      if (type_ok) {
        policy::Decision d = access_->Decide(*call.caller, policy::Interaction::kHistory, e.version, call.req,
                                             call.now_ms, /*instance_level=*/!id.empty());
        if (d.allowed) {
          if (d.break_glass) call.entry.break_glass = true;
          page.entries.push_back(std::move(e));
        }
      }
      if (static_cast<int>(page.entries.size()) == q.count) {
        more = more || i + 1 < chunk->entries.size();
        break;
      }
    }
    if (at_limit || chunk->entries.empty()) break;
  }
  page.next_cursor = more ? cursor : 0;
  if (!id.empty() && page.entries.empty() && q.before_seq == 0) {
    // Nothing visible: the same answer whether the record exists or not.
    return call.Fail(NotFound("resource not found"), route);
  }
  std::string self_path = options_.base_url + "/fhir" + (type.empty() ? "" : "/" + type) + (id.empty() ? "" : "/" + id) +
                          "/_history?_count=" + std::to_string(q.count);
  std::string body = R"({"resourceType":"Bundle","type":"history","link":[{"relation":"self","url":)";
  body += JsonString(q.before_seq ? self_path + "&_cursor=" + *FindParam(call.params, "_cursor") : self_path);
  body += '}';
  if (page.next_cursor) {
    body += R"(,{"relation":"next","url":)";
    body += JsonString(self_path + "&_cursor=" + cursors_.Seal(std::to_string(page.next_cursor), bound_to));
    body += '}';
  }
  body += R"(],"entry":[)";
  bool first = true;
  for (const auto& e : page.entries) {
    const store::ResourceVersion& v = e.version;
    AddResource(call.entry, v);
    if (!first) body += ',';
    first = false;
    body += R"({"fullUrl":)";
    body += JsonString(options_.base_url + "/fhir/" + v.type + "/" + v.id);
    if (!v.deleted) {
      body += R"(,"resource":)";
      body += v.json;
    }
    const char* method = v.deleted ? "DELETE" : (v.version == 1 ? "POST" : "PUT");
    std::string url = v.version == 1 && !v.deleted ? v.type : v.type + "/" + v.id;
    body += R"(,"request":{"method":")";
    body += method;
    body += R"(","url":)";
    body += JsonString(url);
    body += R"(},"response":{"status":)";
    body += v.deleted ? R"("204 No Content")" : (v.version == 1 ? R"("201 Created")" : R"("200 OK")");
    body += R"(,"etag":)";
    body += JsonString(ETag(v.version));
    body += R"(,"lastModified":")";
    body += fhir::FormatInstant(v.last_updated_ms);
    body += R"("}})";
  }
  body += "]}";
  call.Reply(JsonResponse(200, std::move(body), call.fmt), route);
}

void FhirService::Bundle(Call& call) {
  static constexpr std::string_view kRoute = "/fhir";
  Status ct = CheckContentType(call.req);
  if (!ct.ok()) return call.Fail(ct, kRoute);
  auto parsed = fhir::ParseResource(call.req.body, options_.parse_limits);
  if (!parsed.ok()) return call.Fail(parsed.status(), kRoute);
  auto plan = PlanBundle(std::move(*parsed), options_.max_bundle_entries);
  if (!plan.ok()) return call.Fail(plan.status(), kRoute);
  call.entry.action = plan->transaction ? audit::AuditAction::kTransaction : audit::AuditAction::kBatch;
  // Every write entry is authorized before anything is committed; a
  // transaction with one denied entry stores nothing.
  std::vector<store::WriteOp> kept;
  std::vector<size_t> remap(plan->ops.size(), std::numeric_limits<size_t>::max());
  for (size_t i = 0; i < plan->ops.size(); ++i) {
    Status a = AuthorizeWrite(call, plan->ops[i], call.now_ms);
    if (!a.ok()) {
      if (plan->transaction) return call.Fail(a, kRoute);
      for (auto& item : plan->items) {
        if (item.op_index == i) item.error = a;
      }
      continue;
    }
    remap[i] = kept.size();
    kept.push_back(std::move(plan->ops[i]));
  }
  for (auto& item : plan->items) {
    if (item.op_index < remap.size()) item.op_index = remap[item.op_index];
  }
  plan->ops.clear();
  auto shared_plan = std::make_shared<BundlePlan>(std::move(*plan));
  bool atomic = shared_plan->transaction;
  CommitAudited(call, std::move(kept), atomic, kRoute,
                [this, fmt = call.fmt, shared_plan, caller = call.caller, req = call.req, now = call.now_ms](
                    const store::CommitOutcome& out, audit::AuditEntry& entry) {
                  for (const auto& w : out.results) {
                    if (w.ok()) access_->OnCommitted(*w);
                  }
                  // Reads in the bundle are authorized one by one (the type
                  // gate before the store is asked), and what they return
                  // joins the entry.
                  auto authorize_type = [&](const std::string& type, bool vread) -> Status {
                    auto i = vread ? policy::Interaction::kVRead : policy::Interaction::kRead;
                    return policy::DecisionStatus(access_->DecideType(*caller, i, type));
                  };
                  // What the reads may add to the entry: the entry so far
                  // (with the writes) plus room for the answer's fields must
                  // stay within what the log accepts.
                  size_t entry_bytes = audit::Serialize(entry).size() + kAnswerFieldsBytes;
                  auto authorize_read = [&](const store::ResourceVersion& v, bool vread) -> Status {
                    policy::Decision d = access_->Decide(
                        *caller, vread ? policy::Interaction::kVRead : policy::Interaction::kRead, v, req, now);
                    if (d.allowed) {
                      size_t cost = AddedResourceBytes(v);
                      if (entry_bytes + cost > options_.max_audit_entry_bytes) {
                        return Status(StatusCode::kTooLarge,
                                      "this batch reads more than one audit entry can record; split it into "
                                      "smaller batches");
                      }
                      entry_bytes += cost;
                      AddResource(entry, v);
                      if (d.break_glass) entry.break_glass = true;
                    }
                    return policy::DecisionStatus(d);
                  };
                  return JsonResponse(
                      200, RenderBundleResponse(*shared_plan, out, store_, options_.base_url, authorize_type,
                                                authorize_read),
                      fmt);
                });
}

void FhirService::SmartConfiguration(Call& call) {
  std::string base = options_.base_url;
  std::string body = R"({"issuer":)" + JsonString(base) + R"(,"jwks_uri":)" + JsonString(base + "/.well-known/jwks.json") +
                     R"(,"token_endpoint":)" + JsonString(base + "/auth/token") +
                     R"(,"grant_types_supported":["password","refresh_token"])"
                     R"(,"token_endpoint_auth_methods_supported":["none"])"
                     R"(,"scopes_supported":["openid","fhirUser","user/*.cruds","patient/*.rs","system/*.cruds"])"
                     R"(,"capabilities":["permission-v1","permission-v2","permission-user","permission-patient"]})";
  call.Send(JsonResponse(200, std::move(body), OutputFormat{.plain_json = true}), "/.well-known/smart-configuration");
}

void FhirService::Metadata(Call& call) {
  call.entry.action = audit::AuditAction::kOperation;
  call.entry.query = "metadata";
  call.Reply(JsonResponse(200, capability_json_, call.fmt), "/fhir/metadata");
}

void FhirService::Metrics(Call& call) {
  std::string text = metrics::RenderPrometheus();
  store::StoreStats s = store_->Stats();
  text += "# HELP phivault_store_versions Resource versions stored (including tombstones).\n";
  text += "# TYPE phivault_store_versions gauge\nphivault_store_versions " + std::to_string(s.versions) + "\n";
  text += "# HELP phivault_store_patient_keys Patients with a data key.\n";
  text += "# TYPE phivault_store_patient_keys gauge\nphivault_store_patient_keys " +
          std::to_string(s.patients_with_keys) + "\n";
  text += "# HELP phivault_store_cached_patient_keys Patient data keys unwrapped in memory.\n";
  text += "# TYPE phivault_store_cached_patient_keys gauge\nphivault_store_cached_patient_keys " +
          std::to_string(s.cached_patient_keys) + "\n";
  text += "# HELP phivault_store_file_bytes Size of the database and WAL files.\n";
  text += "# TYPE phivault_store_file_bytes gauge\nphivault_store_file_bytes " + std::to_string(s.file_bytes) + "\n";
  text += "# HELP phivault_store_group_commits_total Write transactions (one fsync each) since start.\n";
  text += "# TYPE phivault_store_group_commits_total counter\nphivault_store_group_commits_total " +
          std::to_string(s.group_commits) + "\n";
  text += "# HELP phivault_store_committed_writes_total Writes made durable since start.\n";
  text += "# TYPE phivault_store_committed_writes_total counter\nphivault_store_committed_writes_total " +
          std::to_string(s.committed_ops) + "\n";
  text += "# HELP phivault_keys_unlocked Whether the vault keys are unlocked (1) or not (0).\n";
  text += "# TYPE phivault_keys_unlocked gauge\nphivault_keys_unlocked 1\n";
  text += "# HELP phivault_store_healthy Whether the store can serve requests.\n";
  text += "# TYPE phivault_store_healthy gauge\nphivault_store_healthy " + std::string(store_->Healthy() ? "1" : "0") +
          "\n";
  http::HttpResponse r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  r.body = std::move(text);
  call.Send(std::move(r), "/metrics");
}

}  // namespace phivault::api
