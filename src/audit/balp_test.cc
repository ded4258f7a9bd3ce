// BALP AuditEvent mapping: profiles, type/subtype/action codes, agents,
// entity roles, purposeOfEvent and outcomes for allowed and denied events.
#include "audit/balp.h"

#include <gtest/gtest.h>

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include "audit/checkpoint.h"
#include "fhir/json_reader.h"

namespace phivault::audit {
namespace {

namespace json = boost::json;
const std::string kBase = "https://vault.example.org/fhir";
constexpr std::string_view kDcm = "http://dicom.nema.org/resources/ontology/DCM";

AuditEntry Entry(AuditAction action, std::vector<std::string> patients, std::vector<AuditResource> resources) {
  AuditEntry e;
  e.time_ms = 1704164645678;
  e.request_id = "req-9";
  e.agent = {"u-42", "clinician", "Practitioner/p1", "app-7", ""};
  e.source_address = "192.0.2.10";
  e.action = action;
  e.patients = std::move(patients);
  e.resources = std::move(resources);
  e.purpose_of_use = "TREAT";
  e.outcome = AuditOutcome::kAllowed;
  e.rule = "allow";
  e.http_status = 200;
  e.data_category = "clinical";
  return e;
}

std::string Str(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : std::string("<not a string>");
}

std::string Profile(const json::object& ev) {
  const json::value* meta = ev.if_contains("meta");
  if (meta == nullptr) return "";
  return Str(meta->at("profile").at(0));
}

// The agents, keyed by their type code.
const json::object* AgentOfType(const json::object& ev, std::string_view code) {
  for (const json::value& a : ev.at("agent").as_array()) {
    if (Str(a.at("type").at("coding").at(0).at("code")) == code) return &a.as_object();
  }
  return nullptr;
}

std::vector<const json::object*> EntitiesWithRole(const json::object& ev, std::string_view role) {
  std::vector<const json::object*> out;
  const json::value* ents = ev.if_contains("entity");
  if (ents == nullptr) return out;
  for (const json::value& en : ents->as_array()) {
    const json::value* r = en.as_object().if_contains("role");
    if (r != nullptr && Str(r->at("code")) == role) out.push_back(&en.as_object());
  }
  return out;
}

// A generated AuditEvent is a valid FHIR resource as phivault parses them.
void ExpectParses(const json::object& ev) {
  auto r = fhir::ParseResource(fhir::Serialize(ev));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST(BalpTest, PatientReadIsFullyMapped) {
  const auto ev = ToAuditEvent(Entry(AuditAction::kRead, {"pat-1"}, {{"Observation", "o1", "3", ""}}), 17, kBase);
  ExpectParses(ev);
  EXPECT_EQ(ev.at("resourceType"), "AuditEvent");
  EXPECT_EQ(ev.at("id"), "17");
  EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead");
  EXPECT_EQ(ev.at("type").at("system"), "http://terminology.hl7.org/CodeSystem/audit-event-type");
  EXPECT_EQ(ev.at("type").at("code"), "rest");
  EXPECT_EQ(ev.at("subtype").at(0).at("system"), "http://hl7.org/fhir/restful-interaction");
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "read");
  EXPECT_EQ(Str(ev.at("subtype").at(1).at("system")), kPhivaultActionSystem);
  EXPECT_EQ(ev.at("action"), "R");
  EXPECT_EQ(ev.at("recorded"), "2024-01-02T03:04:05.678Z");
  EXPECT_EQ(ev.at("outcome"), "0");

  // User: IRCP, requestor, role, identified by account id only.
  const json::object* user = AgentOfType(ev, "IRCP");
  ASSERT_NE(user, nullptr);
  EXPECT_EQ(user->at("requestor"), true);
  EXPECT_EQ(user->at("who").at("identifier").at("value"), "u-42");
  EXPECT_EQ(user->at("who").at("reference"), "Practitioner/p1");
  EXPECT_EQ(user->at("who").as_object().if_contains("display"), nullptr);
  EXPECT_EQ(user->at("role").at(0).at("coding").at(0).at("code"), "clinician");
  EXPECT_EQ(user->at("purposeOfUse").at(0).at("coding").at(0).at("code"), "TREAT");
  // Read: the client is the Destination (data flows to it), the server the Source.
  const json::object* client = AgentOfType(ev, "110152");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->at("who").at("identifier").at("value"), "app-7");
  EXPECT_EQ(client->at("network").at("address"), "192.0.2.10");
  EXPECT_EQ(client->at("network").at("type"), "2");
  EXPECT_EQ(client->at("requestor"), false);
  const json::object* server = AgentOfType(ev, "110153");
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Str(server->at("network").at("address")), kBase);
  EXPECT_EQ(ev.at("source").at("observer").at("display"), "phivault");
  EXPECT_EQ(ev.at("source").at("type").at(0).at("code"), "4");

  const auto patients = EntitiesWithRole(ev, "1");
  ASSERT_EQ(patients.size(), 1u);
  EXPECT_EQ(patients[0]->at("type").at("code"), "1");
  EXPECT_EQ(patients[0]->at("what").at("reference"), "Patient/pat-1");
  const auto data = EntitiesWithRole(ev, "4");
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0]->at("type").at("system"), "http://terminology.hl7.org/CodeSystem/audit-entity-type");
  EXPECT_EQ(data[0]->at("type").at("code"), "2");
  EXPECT_EQ(data[0]->at("what").at("reference"), "Observation/o1/_history/3");
  // X-Request-Id as BALP's transaction entity.
  bool has_tx = false;
  for (const json::value& en : ev.at("entity").as_array()) {
    if (en.at("type").at("code") == "XrequestId") {
      has_tx = true;
      EXPECT_EQ(en.at("what").at("identifier").at("value"), "req-9");
    }
  }
  EXPECT_TRUE(has_tx);
  EXPECT_EQ(ev.at("purposeOfEvent").at(0).at("coding").at(0).at("code"), "TREAT");
}

TEST(BalpTest, ReadWithoutPatientUsesBaseProfile) {
  const auto ev = ToAuditEvent(Entry(AuditAction::kVRead, {}, {{"Organization", "org1", "2", ""}}), 1, kBase);
  ExpectParses(ev);
  EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Read");
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "vread");
  EXPECT_TRUE(EntitiesWithRole(ev, "1").empty());
}

TEST(BalpTest, SearchUsesQueryPattern) {
  AuditEntry e =
      Entry(AuditAction::kSearch, {"pat-1"}, {{"Observation", "o1", "3", ""}, {"Observation", "o2", "1", ""}});
  e.query = "Observation?code&patient";
  const auto ev = ToAuditEvent(e, 2, kBase);
  ExpectParses(ev);
  EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery");
  EXPECT_EQ(ev.at("action"), "E");
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "search-type");
  // Query: client is the Source, server the Destination.
  EXPECT_NE(AgentOfType(ev, "110153"), nullptr);
  EXPECT_EQ(AgentOfType(ev, "110153")->at("network").at("address"), "192.0.2.10");
  const auto query = EntitiesWithRole(ev, "24");
  ASSERT_EQ(query.size(), 1u);
  EXPECT_EQ(query[0]->at("type").at("code"), "2");
  EXPECT_EQ(Str(query[0]->at("query")), Base64Encode("Observation?code&patient"));
  EXPECT_EQ(query[0]->if_contains("what"), nullptr);
  // Results are typed by resource type so they stay out of BALP's query slice.
  const auto results = EntitiesWithRole(ev, "4");
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]->at("type").at("system"), "http://hl7.org/fhir/resource-types");
  EXPECT_EQ(results[0]->at("type").at("code"), "Observation");
  EXPECT_EQ(results[1]->at("what").at("reference"), "Observation/o2/_history/1");
  EXPECT_EQ(results[1]->at("detail").at(0).at("type"), "dataCategory");
}

TEST(BalpTest, SearchWithoutPatientAndMultiPatientSearch) {
  AuditEntry e = Entry(AuditAction::kSearch, {}, {});
  e.query = "?_type";
  auto ev = ToAuditEvent(e, 3, kBase);
  EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Query");
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "search-system");

  e.patients = {"pat-1", "pat-2"};
  ev = ToAuditEvent(e, 4, kBase);
  // PatientQuery allows exactly one patient: base profile, all patients listed.
  EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Query");
  EXPECT_EQ(EntitiesWithRole(ev, "1").size(), 2u);
}

TEST(BalpTest, HistoryAndOperationsAreQueries) {
  AuditEntry e =
      Entry(AuditAction::kHistory, {"pat-1"}, {{"Patient", "pat-1", "1", ""}, {"Patient", "pat-1", "2", ""}});
  e.query = "Patient/pat-1/_history";
  auto ev = ToAuditEvent(e, 5, kBase);
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "history-instance");
  EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientQuery");
  e.query = "Observation/_history";
  EXPECT_EQ(ToAuditEvent(e, 5, kBase).at("subtype").at(0).at("code"), "history-type");
  e.query = "_history";
  EXPECT_EQ(ToAuditEvent(e, 5, kBase).at("subtype").at(0).at("code"), "history-system");

  e.action = AuditAction::kOperation;
  e.query = "Patient/pat-1/$everything";
  ev = ToAuditEvent(e, 6, kBase);
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "operation");
  EXPECT_EQ(ev.at("action"), "E");
}

TEST(BalpTest, CreateUpdateDelete) {
  struct Case {
    AuditAction action;
    std::string code, letter, profile;
  } cases[] = {
      {AuditAction::kCreate, "create", "C", "PatientCreate"},
      {AuditAction::kUpdate, "update", "U", "PatientUpdate"},
      {AuditAction::kDelete, "delete", "D", "PatientDelete"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.code);
    const auto ev =
        ToAuditEvent(Entry(c.action, {"pat-1"}, {{"Observation", "o1", "3", c.code == "create" ? "" : "2"}}), 8, kBase);
    ExpectParses(ev);
    EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit." + c.profile);
    EXPECT_EQ(Str(ev.at("subtype").at(0).at("code")), c.code);
    EXPECT_EQ(Str(ev.at("action")), c.letter);
    // Writes: the user is the author, the client the Source.
    const json::object* user = AgentOfType(ev, "AUT");
    ASSERT_NE(user, nullptr);
    EXPECT_EQ(user->at("requestor"), true);
    EXPECT_NE(AgentOfType(ev, "110153"), nullptr);
    EXPECT_EQ(AgentOfType(ev, "110153")->at("who").at("identifier").at("value"), "app-7");
    EXPECT_EQ(EntitiesWithRole(ev, "1").size(), 1u);
    const auto data = EntitiesWithRole(ev, "4");
    ASSERT_EQ(data.size(), 1u);
    EXPECT_EQ(data[0]->at("what").at("reference"), "Observation/o1/_history/3");
    if (c.code != "create") {
      EXPECT_EQ(data[0]->at("detail").at(0).at("type"), "priorVersion");
      EXPECT_EQ(data[0]->at("detail").at(0).at("valueString"), "2");
    }
  }
  // Without a patient: the base profiles.
  const auto ev = ToAuditEvent(Entry(AuditAction::kDelete, {}, {{"Organization", "org1", "4", "3"}}), 9, kBase);
  EXPECT_EQ(Profile(ev), "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Delete");
  EXPECT_EQ(ToAuditEvent(Entry(AuditAction::kCreate, {}, {{"Organization", "org2", "1", ""}}), 9, kBase)
                .at("meta")
                .at("profile")
                .at(0),
            "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Create");
}

TEST(BalpTest, DeniedAndFailedEvents) {
  AuditEntry e = Entry(AuditAction::kRead, {"pat-1"}, {{"Observation", "o1", "", ""}});
  e.outcome = AuditOutcome::kDenied;
  e.rule = "care-relationship";
  e.http_status = 403;
  auto ev = ToAuditEvent(e, 10, kBase);
  ExpectParses(ev);
  EXPECT_EQ(ev.at("outcome"), "4");
  EXPECT_EQ(ev.if_contains("meta"), nullptr);  // BALP profiles fix outcome 0
  const std::string desc = Str(ev.at("outcomeDesc"));
  EXPECT_NE(desc.find("denied"), std::string::npos);
  EXPECT_NE(desc.find("care-relationship"), std::string::npos);
  EXPECT_NE(desc.find("403"), std::string::npos);
  // The structure is still the read pattern.
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "read");
  EXPECT_EQ(EntitiesWithRole(ev, "1").size(), 1u);
  EXPECT_EQ(EntitiesWithRole(ev, "4")[0]->at("what").at("reference"), "Observation/o1");

  e.outcome = AuditOutcome::kAllowed;
  e.http_status = 503;
  EXPECT_EQ(ToAuditEvent(e, 11, kBase).at("outcome"), "8");
  e.http_status = 404;
  EXPECT_EQ(ToAuditEvent(e, 11, kBase).at("outcome"), "4");
}

TEST(BalpTest, BreakGlassIsEmergencyTreatment) {
  AuditEntry e = Entry(AuditAction::kRead, {"pat-1"}, {{"Observation", "o1", "3", ""}});
  e.purpose_of_use = "ETREAT";
  e.break_glass = true;
  e.break_glass_reason = "unconscious in ED";
  auto ev = ToAuditEvent(e, 12, kBase);
  ASSERT_EQ(ev.at("purposeOfEvent").as_array().size(), 1u);
  EXPECT_EQ(ev.at("purposeOfEvent").at(0).at("coding").at(0).at("system"),
            "http://terminology.hl7.org/CodeSystem/v3-ActReason");
  EXPECT_EQ(ev.at("purposeOfEvent").at(0).at("coding").at(0).at("code"), "ETREAT");
  EXPECT_EQ(ev.at("purposeOfEvent").at(0).at("text"), "unconscious in ED");

  AuditEntry grant = e;
  grant.action = AuditAction::kBreakGlass;
  grant.resources.clear();
  ev = ToAuditEvent(grant, 13, kBase);
  EXPECT_EQ(Str(ev.at("type").at("system")), kDcm);
  EXPECT_EQ(ev.at("type").at("code"), "110113");
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "110127");
  EXPECT_EQ(ev.if_contains("meta"), nullptr);
}

TEST(BalpTest, SecurityEventsUseDicomCodes) {
  AuditEntry e = Entry(AuditAction::kLoginFailure, {}, {});
  e.outcome = AuditOutcome::kDenied;
  e.rule = "identity";
  e.http_status = 401;
  auto ev = ToAuditEvent(e, 14, kBase);
  ExpectParses(ev);
  EXPECT_EQ(ev.at("type").at("code"), "110114");
  EXPECT_EQ(ev.at("subtype").at(0).at("code"), "110122");
  EXPECT_EQ(ev.at("subtype").at(1).at("code"), "login-failure");
  EXPECT_EQ(ev.at("outcome"), "4");
  EXPECT_EQ(ToAuditEvent(Entry(AuditAction::kKeyChange, {}, {}), 15, kBase).at("subtype").at(0).at("code"), "110129");
  EXPECT_EQ(ToAuditEvent(Entry(AuditAction::kExport, {}, {}), 16, kBase).at("type").at("code"), "110106");
  EXPECT_EQ(ToAuditEvent(Entry(AuditAction::kRestore, {}, {}), 16, kBase).at("type").at("code"), "110107");
  EXPECT_EQ(BalpActionCode(AuditAction::kRestore), "C");
  // Every action maps to an event that parses as a FHIR resource.
  for (int i = 0; i < kAuditActionCount; ++i) {
    AuditEntry any = Entry(static_cast<AuditAction>(i), {"pat-1"}, {{"Observation", "o1", "1", ""}});
    ExpectParses(ToAuditEvent(any, static_cast<uint64_t>(i), kBase));
  }
}

TEST(BalpTest, UnauthenticatedClientIsTheRequestor) {
  AuditEntry e = Entry(AuditAction::kRead, {}, {{"Patient", "p", "", ""}});
  e.agent = {};
  e.outcome = AuditOutcome::kDenied;
  e.http_status = 401;
  auto ev = ToAuditEvent(e, 20, kBase);
  EXPECT_EQ(AgentOfType(ev, "IRCP"), nullptr);
  const json::object* client = AgentOfType(ev, "110152");
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->at("requestor"), true);
}

}  // namespace
}  // namespace phivault::audit
