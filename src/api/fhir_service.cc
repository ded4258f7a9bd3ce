#include "api/fhir_service.h"

#include <charconv>

#include <boost/json.hpp>

#include "api/bundle_processor.h"
#include "api/capability.h"
#include "api/request_context.h"
#include "common/metrics.h"
#include "fhir/compartment.h"
#include "fhir/resource_types.h"
#include "fhir/time.h"

namespace phivault::api {

struct FhirService::Call {
  http::HttpRequest req;
  http::Responder respond;
  QueryParams params;
  OutputFormat fmt;
  std::vector<std::string_view> segments;  // path below /fhir

  void Reply(http::HttpResponse resp, std::string_view route) {
    SetRoute(resp, route);
    respond(std::move(resp));
  }
  void Fail(const Status& s, std::string_view route) { Reply(ErrorResponse(s, fmt), route); }
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

FhirService::FhirService(store::ResourceStore* store, ServiceOptions options)
    : store_(store), options_(std::move(options)), capability_json_(BuildCapabilityStatement(options_.base_url)) {}

void FhirService::Handle(http::HttpRequest request, http::Responder respond) {
  Call call{std::move(request), std::move(respond), {}, {}, {}};
  const std::string& path = call.req.path;

  if (path == "/healthz") {
    call.Reply(JsonResponse(200, R"({"status":"alive"})", OutputFormat{.plain_json = true}), "/healthz");
    return;
  }
  if (path == "/readyz") {
    bool ready = store_->Healthy() && !draining_.load();
    call.Reply(JsonResponse(ready ? 200 : 503, ready ? R"({"status":"ready"})" : R"({"status":"not ready"})", OutputFormat{.plain_json = true}),
               "/readyz");
    return;
  }
  if (path == "/metrics") {
    Metrics(call);
    return;
  }
  if (path != "/fhir" && path.rfind("/fhir/", 0) != 0) {
    call.Reply(OutcomeResponse(404, "error", "not-found", "unknown URL"), "other");
    return;
  }
  auto params = ParseQuery(call.req.query);
  if (!params.ok()) {
    call.Fail(params.status(), "/fhir");
    return;
  }
  call.params = std::move(*params);
  auto fmt = NegotiateFormat(call.req, call.params);
  if (!fmt.ok()) {
    // 406 for Accept/_format we cannot produce.
    call.Reply(OutcomeResponse(406, "error", "not-supported", fmt.status().message()), "/fhir");
    return;
  }
  call.fmt = *fmt;
  call.segments = SplitPath(std::string_view(path).substr(5));
  HandleFhir(call);
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
  const std::string type(seg[0]);
  if (!fhir::IsKnownResourceType(type)) {
    return call.Reply(OutcomeResponse(404, "error", "not-found", "unknown resource type", call.fmt), "/fhir/{unknown}");
  }
  if (seg.size() == 1) {
    if (method == "POST") return Create(call, type);
    if (method == "GET") {
      return call.Reply(OutcomeResponse(501, "error", "not-supported",
                                        "search is not implemented yet; see the CapabilityStatement", call.fmt),
                        "/fhir/{type}");
    }
    return call.Reply(MethodNotAllowed("GET, POST", call.fmt), "/fhir/{type}");
  }
  if (seg.size() == 2 && seg[1] == "_history") {
    if (method != "GET") return call.Reply(MethodNotAllowed("GET", call.fmt), "/fhir/{type}/_history");
    return History(call, type, "");
  }
  const std::string id(seg[1]);
  if (!fhir::IsValidId(id)) {
    return call.Reply(OutcomeResponse(400, "error", "invalid", "invalid resource id", call.fmt), "/fhir/{type}/{id}");
  }
  if (seg.size() == 2) {
    if (method == "GET" || method == "HEAD") return Read(call, type, id);
    if (method == "PUT") return Update(call, type, id);
    if (method == "DELETE") return Delete(call, type, id);
    return call.Reply(MethodNotAllowed("GET, PUT, DELETE", call.fmt), "/fhir/{type}/{id}");
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

void FhirService::Read(Call& call, const std::string& type, const std::string& id) {
  static constexpr std::string_view kRoute = "/fhir/{type}/{id}";
  auto v = store_->Read(type, id);
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
  auto v = store_->ReadVersion(type, id, version);
  if (!v.ok()) return call.Fail(v.status(), kRoute);
  http::HttpResponse r = JsonResponse(200, std::move(v->json), call.fmt);
  AddVersionHeaders(r, v->version, v->last_updated_ms);
  call.Reply(std::move(r), kRoute);
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
    auto cond = ParseExistCondition(*ine);
    if (!cond.ok()) return call.Fail(cond.status(), kRoute);
    op.if_none_exist = std::move(*cond);
  }
  std::vector<store::WriteOp> ops;
  ops.push_back(std::move(op));
  Prefer prefer = PreferReturn(call.req);
  store_->Commit(std::move(ops), true,
                 [respond = std::move(call.respond), fmt = call.fmt, base = options_.base_url,
                  prefer](store::CommitOutcome out) {
                   http::HttpResponse r;
                   if (!out.status.ok()) {
                     r = ErrorResponse(out.status, fmt);
                   } else {
                     const store::WriteResult& w = *out.results[0];
                     r = WriteResponse(w.no_op ? 200 : 201, w, base, prefer, fmt);
                   }
                   SetRoute(r, kRoute);
                   respond(std::move(r));
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
  std::vector<store::WriteOp> ops;
  ops.push_back(std::move(op));
  Prefer prefer = PreferReturn(call.req);
  store_->Commit(std::move(ops), true,
                 [respond = std::move(call.respond), fmt = call.fmt, base = options_.base_url,
                  prefer](store::CommitOutcome out) {
                   http::HttpResponse r;
                   if (!out.status.ok()) {
                     r = ErrorResponse(out.status, fmt);
                   } else {
                     const store::WriteResult& w = *out.results[0];
                     r = WriteResponse(w.created ? 201 : 200, w, base, prefer, fmt);
                   }
                   SetRoute(r, kRoute);
                   respond(std::move(r));
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
  std::vector<store::WriteOp> ops;
  ops.push_back(std::move(op));
  store_->Commit(std::move(ops), true, [respond = std::move(call.respond), fmt = call.fmt](store::CommitOutcome out) {
    http::HttpResponse r;
    if (!out.status.ok()) {
      r = ErrorResponse(out.status, fmt);
    } else {
      const store::WriteResult& w = *out.results[0];
      r = OutcomeResponse(200, "information", "informational", w.no_op ? "nothing to delete" : "deleted", fmt);
      if (!w.no_op) r.headers.emplace_back("ETag", ETag(w.version));
    }
    SetRoute(r, kRoute);
    respond(std::move(r));
  });
}

void FhirService::History(Call& call, const std::string& type, const std::string& id) {
  std::string_view route = id.empty() ? (type.empty() ? "/fhir/_history" : "/fhir/{type}/_history")
                                      : "/fhir/{type}/{id}/_history";
  store::HistoryQuery q;
  q.type = type;
  q.id = id;
  auto count = PageSize(call.params, options_.default_page_size, options_.max_page_size);
  if (!count.ok()) return call.Fail(count.status(), route);
  q.count = *count;
  if (const std::string* cursor = FindParam(call.params, "_cursor")) {
    auto [p, ec] = std::from_chars(cursor->data(), cursor->data() + cursor->size(), q.before_seq);
    if (ec != std::errc() || p != cursor->data() + cursor->size() || q.before_seq < 1) {
      return call.Fail(InvalidArgument("invalid paging cursor"), route);
    }
  }
  for (const auto& [k, v] : call.params) {
    if (k != "_count" && k != "_cursor" && k != "_format" && k != "_pretty") {
      return call.Fail(Status(StatusCode::kInvalidArgument, "unsupported history parameter: " + k), route);
    }
  }
  auto page = store_->History(q);
  if (!page.ok()) return call.Fail(page.status(), route);
  if (!id.empty() && page->entries.empty() && q.before_seq == 0) {
    return call.Fail(NotFound("resource not found"), route);
  }
  std::string self_path = options_.base_url + "/fhir" + (type.empty() ? "" : "/" + type) + (id.empty() ? "" : "/" + id) +
                          "/_history?_count=" + std::to_string(q.count);
  std::string body = R"({"resourceType":"Bundle","type":"history","link":[{"relation":"self","url":)";
  body += JsonString(q.before_seq ? self_path + "&_cursor=" + std::to_string(q.before_seq) : self_path);
  body += '}';
  if (page->next_cursor) {
    body += R"(,{"relation":"next","url":)";
    body += JsonString(self_path + "&_cursor=" + std::to_string(page->next_cursor));
    body += '}';
  }
  body += R"(],"entry":[)";
  bool first = true;
  for (const auto& e : page->entries) {
    const store::ResourceVersion& v = e.version;
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
  auto shared_plan = std::make_shared<BundlePlan>(std::move(*plan));
  std::vector<store::WriteOp> ops = std::move(shared_plan->ops);
  store_->Commit(std::move(ops), shared_plan->transaction,
                 [this, respond = std::move(call.respond), fmt = call.fmt, shared_plan](store::CommitOutcome out) {
                   http::HttpResponse r;
                   if (shared_plan->transaction && !out.status.ok()) {
                     r = ErrorResponse(out.status, fmt);
                   } else {
                     r = JsonResponse(200, RenderBundleResponse(*shared_plan, out, store_, options_.base_url), fmt);
                   }
                   SetRoute(r, kRoute);
                   respond(std::move(r));
                 });
}

void FhirService::Metadata(Call& call) { call.Reply(JsonResponse(200, capability_json_, call.fmt), "/fhir/metadata"); }

void FhirService::Metrics(Call& call) {
  std::string text = metrics::RenderPrometheus();
  store::StoreStats s = store_->Stats();
  text += "# HELP phivault_store_versions Resource versions stored (including tombstones).\n";
  text += "# TYPE phivault_store_versions gauge\nphivault_store_versions " + std::to_string(s.versions) + "\n";
  text += "# HELP phivault_store_patient_keys Patients with a data key.\n";
  text += "# TYPE phivault_store_patient_keys gauge\nphivault_store_patient_keys " +
          std::to_string(s.patients_with_keys) + "\n";
  text += "# HELP phivault_store_file_bytes Size of the database and WAL files.\n";
  text += "# TYPE phivault_store_file_bytes gauge\nphivault_store_file_bytes " + std::to_string(s.file_bytes) + "\n";
  text += "# HELP phivault_keys_unlocked Whether the vault keys are unlocked (1) or not (0).\n";
  text += "# TYPE phivault_keys_unlocked gauge\nphivault_keys_unlocked 1\n";
  text += "# HELP phivault_store_healthy Whether the store can serve requests.\n";
  text += "# TYPE phivault_store_healthy gauge\nphivault_store_healthy " + std::string(store_->Healthy() ? "1" : "0") +
          "\n";
  http::HttpResponse r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  r.body = std::move(text);
  call.Reply(std::move(r), "/metrics");
}

}  // namespace phivault::api
