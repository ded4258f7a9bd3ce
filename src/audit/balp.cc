#include "audit/balp.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include "audit/checkpoint.h"  // Base64Encode
#include "fhir/time.h"

namespace phivault::audit {
namespace {

namespace json = boost::json;

constexpr std::string_view kDcm = "http://dicom.nema.org/resources/ontology/DCM";
constexpr std::string_view kEventType = "http://terminology.hl7.org/CodeSystem/audit-event-type";
constexpr std::string_view kRestful = "http://hl7.org/fhir/restful-interaction";
constexpr std::string_view kParticipation = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
constexpr std::string_view kEntityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
constexpr std::string_view kObjectRole = "http://terminology.hl7.org/CodeSystem/object-role";
constexpr std::string_view kResourceTypes = "http://hl7.org/fhir/resource-types";
constexpr std::string_view kActReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
constexpr std::string_view kSourceType = "http://terminology.hl7.org/CodeSystem/security-source-type";
constexpr std::string_view kBalpEntityType = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
constexpr std::string_view kNetworkIp = "2";   // http://hl7.org/fhir/network-type: IP address
constexpr std::string_view kNetworkUri = "5";  // URI

enum class Pattern { kRead, kQuery, kCreate, kUpdate, kDelete, kOther };

struct Shape {
  std::string_view type_system, type_code, type_display;
  std::string_view subtype_system, subtype_code, subtype_display;
  Pattern pattern;
};

json::object Coding(std::string_view system, std::string_view code, std::string_view display = {}) {
  json::object c;
  c["system"] = system;
  c["code"] = code;
  if (!display.empty()) c["display"] = display;
  return c;
}

json::object Concept(json::object coding, std::string_view text = {}) {
  json::object cc;
  cc["coding"] = json::array{std::move(coding)};
  if (!text.empty()) cc["text"] = text;
  return cc;
}

// History's restful-interaction code depends on its scope, which the query
// shape tells ("Type/id/_history", "Type/_history", "_history").
std::string_view HistoryCode(std::string_view query) {
  const size_t pos = query.find("_history");
  if (pos == std::string_view::npos) return "history";
  const std::string_view head = query.substr(0, pos);
  if (head.empty() || head == "/") return "history-system";
  const size_t slashes = static_cast<size_t>(std::count(head.begin(), head.end(), '/'));
  return slashes >= 2 ? "history-instance" : "history-type";
}

Shape ShapeOf(const AuditEntry& e) {
  auto rest = [](std::string_view code, Pattern p) {
    return Shape{kEventType, "rest", "Restful Operation", kRestful, code, code, p};
  };
  auto dcm = [](std::string_view tcode, std::string_view tdisp, std::string_view scode, std::string_view sdisp) {
    return Shape{kDcm, tcode, tdisp, kDcm, scode, sdisp, Pattern::kOther};
  };
  switch (e.action) {
    case AuditAction::kRead:
      return rest("read", Pattern::kRead);
    case AuditAction::kVRead:
      return rest("vread", Pattern::kRead);
    case AuditAction::kSearch:
      // A search names its type first ("Observation?code"); a system search
      // starts with '?' or is empty.
      return rest(e.query.empty() || e.query[0] == '?' ? "search-system" : "search-type", Pattern::kQuery);
    case AuditAction::kHistory:
      return rest(HistoryCode(e.query), Pattern::kQuery);
    case AuditAction::kCreate:
      return rest("create", Pattern::kCreate);
    case AuditAction::kUpdate:
      return rest("update", Pattern::kUpdate);
    case AuditAction::kDelete:
      return rest("delete", Pattern::kDelete);
    case AuditAction::kBatch:
      return rest("batch", Pattern::kOther);
    case AuditAction::kTransaction:
      return rest("transaction", Pattern::kOther);
    case AuditAction::kOperation:
      return rest("operation", Pattern::kQuery);
    case AuditAction::kAccessReport:
      return rest("operation", Pattern::kQuery);
    case AuditAction::kAuditQuery:
      return rest("search-type", Pattern::kQuery);
    case AuditAction::kLogin:
    case AuditAction::kLoginFailure:
    case AuditAction::kTokenIssued:
      return dcm("110114", "User Authentication", "110122", "Login");
    case AuditAction::kLockout:
    case AuditAction::kUserChange:
    case AuditAction::kDeviceChange:
      return dcm("110113", "Security Alert", "110137", "User Security Attributes Changed");
    case AuditAction::kBreakGlass:
      return dcm("110113", "Security Alert", "110127", "Emergency Override Started");
    case AuditAction::kConsentChange:
      return dcm("110113", "Security Alert", "110135", "Object Security Attributes Changed");
    case AuditAction::kSystem:
      return e.event == "stop" ? dcm("110100", "Application Activity", "110121", "Application Stop")
                               : dcm("110100", "Application Activity", "110120", "Application Start");
    case AuditAction::kKeyChange:
      return dcm("110113", "Security Alert", "110129", "Security Configuration");
    case AuditAction::kBackup:
    case AuditAction::kExport:
      return Shape{kDcm, "110106", "Export", {}, {}, {}, Pattern::kOther};
    case AuditAction::kRestore:
      return Shape{kDcm, "110107", "Import", {}, {}, {}, Pattern::kOther};
  }
  return rest("operation", Pattern::kOther);  // unreachable: every enumerator is handled
}

std::string ResourceRef(const AuditResource& r) {
  std::string ref = r.type;
  if (!r.id.empty()) ref += "/" + r.id;
  if (!r.id.empty() && !r.version.empty()) ref += "/_history/" + r.version;
  return ref;
}

json::object Who(std::string_view system, std::string_view value) {
  json::object id;
  id["system"] = system;
  id["value"] = value;
  json::object who;
  who["identifier"] = std::move(id);
  return who;
}

json::object Network(std::string_view address, std::string_view type) {
  json::object n;
  n["address"] = address;
  n["type"] = type;
  return n;
}

json::object Detail(std::string_view type, std::string_view value) {
  json::object d;
  d["type"] = type;
  d["valueString"] = value;
  return d;
}

json::array PurposeOfUse(const AuditEntry& e) {
  json::array out;
  const bool glass = e.break_glass || e.action == AuditAction::kBreakGlass;
  if (!e.purpose_of_use.empty() && !(glass && e.purpose_of_use == "ETREAT")) {
    out.push_back(Concept(Coding(kActReason, e.purpose_of_use)));
  }
  // Break-glass is emergency treatment whatever the request said; the
  // clinician's stated reason goes in the concept's text.
  if (glass) out.push_back(Concept(Coding(kActReason, "ETREAT", "Emergency Treatment"), e.break_glass_reason));
  return out;
}

}  // namespace

std::string_view BalpActionCode(AuditAction a) {
  switch (a) {
    case AuditAction::kRead:
    case AuditAction::kVRead:
    case AuditAction::kBackup:
    case AuditAction::kExport:
      return "R";
    case AuditAction::kCreate:
    case AuditAction::kRestore:
      return "C";
    case AuditAction::kUpdate:
    case AuditAction::kUserChange:
    case AuditAction::kDeviceChange:
    case AuditAction::kConsentChange:
    case AuditAction::kKeyChange:
      return "U";
    case AuditAction::kDelete:
      return "D";
    default:
      return "E";
  }
}

std::string_view BalpOutcomeCode(const AuditEntry& e) {
  if (e.http_status >= 500) return "8";
  if (e.outcome == AuditOutcome::kDenied || e.http_status >= 400) return "4";
  return "0";
}

std::string BalpProfile(const AuditEntry& e) {
  if (BalpOutcomeCode(e) != "0") return "";
  const Shape s = ShapeOf(e);
  std::string_view name;
  switch (s.pattern) {
    case Pattern::kRead:
      name = "Read";
      break;
    case Pattern::kQuery:
      name = "Query";
      break;
    case Pattern::kCreate:
      name = "Create";
      break;
    case Pattern::kUpdate:
      name = "Update";
      break;
    case Pattern::kDelete:
      name = "Delete";
      break;
    case Pattern::kOther:
      return "";
  }
  // Read/Create/Update/Delete profiles have exactly one data entity, with a
  // `what`: the resource needs an id.
  if (s.pattern != Pattern::kQuery && (e.resources.size() != 1 || e.resources[0].id.empty())) return "";
  std::string url(kBalpProfileBase);
  url += "IHE.BasicAudit.";
  if (e.patients.size() == 1) url += "Patient";
  url += name;
  return url;
}

json::object ToAuditEvent(const AuditEntry& e, uint64_t index, const std::string& base_url) {
  const Shape shape = ShapeOf(e);
  const bool query_pattern = shape.pattern == Pattern::kQuery;
  // DICOM/IHE convention: the party the data flows from is the Source Role
  // ID. For reads the server is the source; for queries (the parameters
  // flow to the server) and writes, the client is.
  const bool server_is_source = shape.pattern == Pattern::kRead;

  json::object ev;
  ev["resourceType"] = "AuditEvent";
  ev["id"] = std::to_string(index);
  if (std::string profile = BalpProfile(e); !profile.empty()) {
    json::object meta;
    meta["profile"] = json::array{json::string(profile)};
    ev["meta"] = std::move(meta);
  }
  ev["type"] = Coding(shape.type_system, shape.type_code, shape.type_display);
  json::array subtype;
  if (!shape.subtype_code.empty())
    subtype.push_back(Coding(shape.subtype_system, shape.subtype_code, shape.subtype_display));
  subtype.push_back(Coding(kPhivaultActionSystem, ActionCode(e.action)));
  ev["subtype"] = std::move(subtype);
  ev["action"] = BalpActionCode(e.action);
  ev["recorded"] = fhir::FormatInstant(e.time_ms);
  const std::string_view outcome = BalpOutcomeCode(e);
  ev["outcome"] = outcome;
  {
    // Codes only: the rule name and status, never the client-facing reason.
    std::string desc = e.outcome == AuditOutcome::kDenied ? "denied" : (outcome == "0" ? "success" : "failed");
    if (!e.rule.empty()) desc += "; rule=" + e.rule;
    if (e.http_status != 0) desc += "; http=" + std::to_string(e.http_status);
    if (e.break_glass) desc += "; break-glass";
    ev["outcomeDesc"] = desc;
  }
  json::array purpose = PurposeOfUse(e);
  if (!purpose.empty()) ev["purposeOfEvent"] = purpose;

  json::array agents;
  const bool has_user = !e.agent.subject.empty() || !e.agent.fhir_user.empty();
  {  // the user (or device account) who asked
    if (has_user) {
      json::object user;
      const bool writes =
          shape.pattern == Pattern::kCreate || shape.pattern == Pattern::kUpdate || shape.pattern == Pattern::kDelete;
      user["type"] = Concept(writes ? Coding(kParticipation, "AUT", "author")
                                    : Coding(kParticipation, "IRCP", "information recipient"));
      json::object who = e.agent.subject.empty() ? json::object{} : Who(kPhivaultUserSystem, e.agent.subject);
      if (!e.agent.fhir_user.empty()) who["reference"] = e.agent.fhir_user;
      user["who"] = std::move(who);
      user["requestor"] = true;
      if (!e.agent.role.empty()) user["role"] = json::array{Concept(Coding(kPhivaultRoleSystem, e.agent.role))};
      if (!purpose.empty()) user["purposeOfUse"] = purpose;
      agents.push_back(std::move(user));
    }
  }
  {  // the client application, at the network address the request came from
    json::object client;
    client["type"] = Concept(server_is_source ? Coding(kDcm, "110152", "Destination Role ID")
                                              : Coding(kDcm, "110153", "Source Role ID"));
    if (!e.agent.client_id.empty()) {
      client["who"] = Who(kPhivaultClientSystem, e.agent.client_id);
    } else {
      client["who"] = json::object{{"display", "unidentified client"}};
    }
    client["requestor"] = !has_user && e.agent.device_id.empty();
    if (!e.source_address.empty()) client["network"] = Network(e.source_address, kNetworkIp);
    agents.push_back(std::move(client));
  }
  if (!e.agent.device_id.empty()) {  // a medical device acting through its account
    json::object device;
    device["type"] = Concept(Coding(kDcm, "110150", "Application"));
    device["who"] = Who(kPhivaultDeviceSystem, e.agent.device_id);
    device["requestor"] = !has_user;
    agents.push_back(std::move(device));
  }
  {  // this vault
    json::object server;
    server["type"] = Concept(server_is_source ? Coding(kDcm, "110153", "Source Role ID")
                                              : Coding(kDcm, "110152", "Destination Role ID"));
    json::object who;
    who["identifier"] = json::object{{"value", base_url}};
    who["display"] = "phivault";
    server["who"] = std::move(who);
    server["requestor"] = false;
    server["network"] = Network(base_url, kNetworkUri);
    agents.push_back(std::move(server));
  }
  ev["agent"] = std::move(agents);

  {
    json::object source;
    source["site"] = base_url;
    json::object observer;
    observer["identifier"] = json::object{{"value", base_url}};
    observer["display"] = "phivault";
    source["observer"] = std::move(observer);
    source["type"] = json::array{Coding(kSourceType, "4", "Application Server")};
    ev["source"] = std::move(source);
  }

  json::array entities;
  if (!e.request_id.empty()) {
    json::object tx;
    tx["type"] = Coding(kBalpEntityType, "XrequestId");
    tx["what"] = json::object{{"identifier", json::object{{"value", e.request_id}}}};
    entities.push_back(std::move(tx));
  }
  for (const std::string& p : e.patients) {
    json::object pe;
    pe["type"] = Coding(kEntityType, "1", "Person");
    pe["role"] = Coding(kObjectRole, "1", "Patient");
    pe["what"] = json::object{{"reference", "Patient/" + p}};
    entities.push_back(std::move(pe));
  }
  if (query_pattern) {
    const std::string q = e.query.empty() ? std::string(ActionCode(e.action)) : e.query;
    json::object qe;
    qe["type"] = Coding(kEntityType, "2", "System Object");
    qe["role"] = Coding(kObjectRole, "24", "Query");
    qe["description"] = q;
    qe["query"] = Base64Encode(q);
    entities.push_back(std::move(qe));
  }
  for (const AuditResource& r : e.resources) {
    json::object de;
    // Single-resource patterns use BALP's data slice (System Object);
    // elsewhere the resource type keeps results out of the query slice.
    de["type"] = query_pattern || shape.pattern == Pattern::kOther ? Coding(kResourceTypes, r.type)
                                                                   : Coding(kEntityType, "2", "System Object");
    de["role"] = Coding(kObjectRole, "4", "Domain Resource");
    if (!r.id.empty()) de["what"] = json::object{{"reference", ResourceRef(r)}};
    json::array detail;
    if (!r.prior_version.empty()) detail.push_back(Detail("priorVersion", r.prior_version));
    if (!e.data_category.empty()) detail.push_back(Detail("dataCategory", e.data_category));
    if (!detail.empty()) de["detail"] = std::move(detail);
    entities.push_back(std::move(de));
  }
  if (!entities.empty()) ev["entity"] = std::move(entities);
  return ev;
}

}  // namespace phivault::audit
