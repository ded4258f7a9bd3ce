#include "api/bundle_processor.h"

#include <charconv>
#include <set>
#include <unordered_map>

#include <boost/json.hpp>

#include "api/request_context.h"
#include "fhir/compartment.h"
#include "fhir/operation_outcome.h"
#include "fhir/time.h"
#include "fhir/validator.h"

namespace phivault::api {

std::string StatusLine(int status) {
  const char* reason = "";
  switch (status) {
    case 200: reason = "OK"; break;
    case 201: reason = "Created"; break;
    case 204: reason = "No Content"; break;
    case 400: reason = "Bad Request"; break;
    case 403: reason = "Forbidden"; break;
    case 404: reason = "Not Found"; break;
    case 409: reason = "Conflict"; break;
    case 410: reason = "Gone"; break;
    case 412: reason = "Precondition Failed"; break;
    case 413: reason = "Payload Too Large"; break;
    case 422: reason = "Unprocessable Entity"; break;
    case 500: reason = "Internal Server Error"; break;
    case 501: reason = "Not Implemented"; break;
    case 503: reason = "Service Unavailable"; break;
    default: reason = "";
  }
  std::string s = std::to_string(status);
  if (*reason) {
    s += ' ';
    s += reason;
  }
  return s;
}

namespace {

// Checks what this version can execute, beyond what the Bundle parser checks.
Status CheckSupported(const fhir::BundleEntryRequest& r) {
  if ((r.method == "PUT" || r.method == "DELETE") && r.id.empty()) {
    return Status(StatusCode::kUnsupported, "conditional update and delete are not implemented yet");
  }
  if (r.method == "GET" && (r.id.empty() || !r.query.empty())) {
    return Status(StatusCode::kUnsupported, "search inside a Bundle is not implemented yet");
  }
  if (r.method == "POST" && !r.query.empty()) return InvalidArgument("a POST entry url must be a resource type");
  if (!r.if_none_match.empty()) return Status(StatusCode::kUnsupported, "ifNoneMatch is not supported");
  return Status::Ok();
}

}  // namespace

StatusOr<BundlePlan> PlanBundle(boost::json::object bundle, size_t max_entries) {
  fhir::BundleLimits limits;
  limits.max_entries = max_entries;
  PV_ASSIGN_OR_RETURN(fhir::ParsedBundle parsed, fhir::ParseBatchOrTransaction(bundle, limits));
  BundlePlan plan;
  plan.transaction = parsed.kind == fhir::BundleKind::kTransaction;
  std::vector<size_t> order = fhir::TransactionOrder(parsed);

  plan.items.resize(parsed.entries.size());
  for (size_t i = 0; i < parsed.entries.size(); ++i) {
    plan.items[i].request = std::move(parsed.entries[i]);
    plan.items[i].error = plan.items[i].request.status;
    if (plan.items[i].error.ok()) plan.items[i].error = CheckSupported(plan.items[i].request);
    if (plan.items[i].error.ok() && plan.items[i].request.resource) {
      // The expression (Bundle.entry[i].resource...) already names the entry.
      plan.items[i].error =
          fhir::ValidateResource(*plan.items[i].request.resource, "Bundle.entry[" + std::to_string(i) + "].resource");
      if (!plan.items[i].error.ok() && plan.transaction) return plan.items[i].error;
    }
    if (!plan.items[i].error.ok() && plan.transaction) {
      return Status(plan.items[i].error.code(), "entry " + std::to_string(i) + ": " + plan.items[i].error.message());
    }
  }

  // Assign ids first so that references between entries can be resolved.
  std::unordered_map<std::string, std::string> urn_map;
  std::set<std::string> targets;
  for (size_t i = 0; i < plan.items.size(); ++i) {
    auto& item = plan.items[i];
    if (!item.error.ok()) continue;
    auto& r = item.request;
    if (r.method == "POST") r.id = NewId();
    if (r.method == "GET") continue;
    if (plan.transaction) {
      if (!targets.insert(r.type + "/" + r.id).second) {
        return InvalidArgument("entry " + std::to_string(i) + ": the transaction writes the same resource twice");
      }
      if (!r.full_url.empty()) urn_map[r.full_url] = r.type + "/" + r.id;
    }
  }

  for (size_t idx : order) {
    auto& item = plan.items[idx];
    if (!item.error.ok() || item.request.method == "GET") continue;
    auto& r = item.request;
    store::WriteOp op;
    op.type = r.type;
    op.id = r.id;
    if (!r.if_match.empty()) {
      auto v = ParseIfMatch(r.if_match);
      if (!v.ok()) {
        if (plan.transaction) return Status(v.status().code(), "entry " + std::to_string(idx) + ": " + v.status().message());
        item.error = v.status();
        continue;
      }
      op.if_match_version = *v;
    }
    if (r.method == "DELETE") {
      op.kind = store::WriteOp::Kind::kDelete;
    } else {
      op.kind = r.method == "POST" ? store::WriteOp::Kind::kCreate : store::WriteOp::Kind::kPut;
      if (!r.resource) return Internal("bundle entry without resource after validation");
      op.resource = std::move(*r.resource);
      r.resource.reset();
      if (plan.transaction && !urn_map.empty()) fhir::RewriteReferences(op.resource, urn_map);
      op.resource["id"] = op.id;
      op.patients = fhir::PatientCompartment(op.resource);
      if (!r.if_none_exist.empty() && op.kind == store::WriteOp::Kind::kCreate) {
        auto cond = ParseExistCondition(r.if_none_exist, op.type);
        if (!cond.ok()) {
          if (plan.transaction) {
            return Status(cond.status().code(), "entry " + std::to_string(idx) + ": " + cond.status().message());
          }
          item.error = cond.status();
          continue;
        }
        op.if_none_exist = std::move(*cond);
      }
    }
    item.op_index = plan.ops.size();
    plan.ops.push_back(std::move(op));
  }
  return plan;
}

namespace {

void AppendOutcomeEntry(std::string& body, const Status& s) {
  body += R"({"response":{"status":)";
  body += JsonString(StatusLine(fhir::HttpStatusFor(s.code())));
  body += R"(,"outcome":)";
  body += fhir::OperationOutcomeJson("error", fhir::IssueCodeFor(s.code()), s.message(), s.expression());
  body += "}}";
}

}  // namespace

std::string RenderBundleResponse(const BundlePlan& plan, const store::CommitOutcome& outcome,
                                 store::ResourceStore* store, const std::string& base_url,
                                 const ReadTypeAuthorizer& authorize_type, const ReadAuthorizer& authorize_read) {
  std::string body = R"({"resourceType":"Bundle","type":)";
  body += plan.transaction ? R"("transaction-response")" : R"("batch-response")";
  body += R"(,"entry":[)";
  for (size_t i = 0; i < plan.items.size(); ++i) {
    if (i) body += ',';
    const auto& item = plan.items[i];
    const auto& r = item.request;
    if (!item.error.ok()) {
      AppendOutcomeEntry(body, item.error);
      continue;
    }
    if (r.method == "GET") {
      int64_t vid = 0;
      StatusOr<store::ResourceVersion> v = NotFound("resource not found");
      if (Status gate = authorize_type(r.type, !r.vid.empty()); !gate.ok()) {
        v = gate;
      } else if (r.vid.empty()) {
        v = store->Read(r.type, r.id);
      } else {
        auto [p, ec] = std::from_chars(r.vid.data(), r.vid.data() + r.vid.size(), vid);
        v = (ec == std::errc() && p == r.vid.data() + r.vid.size()) ? store->ReadVersion(r.type, r.id, vid)
                                                                    : StatusOr<store::ResourceVersion>(InvalidArgument("invalid version id"));
      }
      if (v.ok()) {
        Status allowed = authorize_read(*v, !r.vid.empty());
        if (!allowed.ok()) {
          v = allowed;
        } else if (v->deleted) {
          v = Status(StatusCode::kGone, "resource was deleted");
        }
      }
      if (!v.ok()) {
        // One answer for a missing record, a missing version and a hidden
        // one: the store's own wording would tell them apart.
        AppendOutcomeEntry(body, v.status().code() == StatusCode::kNotFound ? NotFound("resource not found")
                                                                             : v.status());
        continue;
      }
      body += R"({"fullUrl":)";
      body += JsonString(base_url + "/fhir/" + r.type + "/" + r.id);
      body += R"(,"resource":)";
      body += v->json;
      body += R"(,"response":{"status":"200 OK","etag":)";
      body += JsonString(ETag(v->version));
      body += R"(,"lastModified":")";
      body += fhir::FormatInstant(v->last_updated_ms);
      body += R"("}})";
      continue;
    }
    if (!outcome.status.ok() || item.op_index >= outcome.results.size()) {
      AppendOutcomeEntry(body, outcome.status.ok() ? Internal("missing write result") : outcome.status);
      continue;
    }
    const auto& result = outcome.results[item.op_index];
    if (!result.ok()) {
      AppendOutcomeEntry(body, result.status());
      continue;
    }
    const store::WriteResult& w = *result;
    int status = 200;
    if (r.method == "POST") status = w.no_op ? 200 : 201;
    if (r.method == "PUT") status = w.created ? 201 : 200;
    body += R"({"fullUrl":)";
    body += JsonString(base_url + "/fhir/" + w.type + "/" + w.id);
    body += R"(,"response":{"status":)";
    body += JsonString(StatusLine(status));
    if (w.version > 0) {
      if (r.method != "DELETE") {
        body += R"(,"location":)";
        body += JsonString(w.type + "/" + w.id + "/_history/" + std::to_string(w.version));
      }
      body += R"(,"etag":)";
      body += JsonString(ETag(w.version));
      if (w.last_updated_ms) {
        body += R"(,"lastModified":")";
        body += fhir::FormatInstant(w.last_updated_ms);
        body += '"';
      }
    }
    body += "}}";
  }
  body += "]}";
  return body;
}

}  // namespace phivault::api
