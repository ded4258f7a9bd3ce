// ITI-81 query parsing and matching, FHIR date ranges, and access reports
// (rows, per-patient privacy of the resource column, sorting on each field).
#include "audit/query.h"

#include <gtest/gtest.h>

namespace phivault::audit {
namespace {

constexpr int64_t kDay = 86400000;
constexpr int64_t k2024 = 1704067200000;  // 2024-01-01T00:00:00Z

IndexedEntry Make(uint64_t index, int64_t t, AuditAction a, std::string subject, std::vector<std::string> patients,
                  AuditOutcome outcome = AuditOutcome::kAllowed) {
  IndexedEntry ie;
  ie.index = index;
  AuditEntry& e = ie.entry;
  e.time_ms = t;
  e.action = a;
  e.agent.subject = std::move(subject);
  e.agent.role = "clinician";
  e.agent.fhir_user = "Practitioner/" + e.agent.subject;
  e.agent.client_id = "app";
  e.patients = std::move(patients);
  e.outcome = outcome;
  e.http_status = outcome == AuditOutcome::kDenied ? 403 : 200;
  e.purpose_of_use = "TREAT";
  return ie;
}

std::vector<IndexedEntry> Log() {
  return {
      Make(0, k2024 + 1000, AuditAction::kRead, "alice", {"p1"}),
      Make(1, k2024 + kDay, AuditAction::kSearch, "bob", {"p1", "p2"}),
      Make(2, k2024 + 2 * kDay, AuditAction::kUpdate, "alice", {"p2"}),
      Make(3, k2024 + 3 * kDay, AuditAction::kRead, "carol", {"p1"}, AuditOutcome::kDenied),
      Make(4, k2024 + 4 * kDay, AuditAction::kLogin, "bob", {}),
  };
}

std::vector<uint64_t> Indices(const std::vector<IndexedEntry>& v) {
  std::vector<uint64_t> out;
  for (const auto& e : v) out.push_back(e.index);
  return out;
}

std::vector<uint64_t> RunQuery(std::vector<std::pair<std::string, std::string>> params) {
  auto q = ParseAuditQuery(params);
  EXPECT_TRUE(q.ok()) << q.status().ToString();
  if (!q.ok()) return {};
  return Indices(FilterEntries(Log(), *q));
}

TEST(AuditQueryTest, FiltersOnEachParameter) {
  EXPECT_EQ(RunQuery({}), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(RunQuery({{"patient", "p1"}}), (std::vector<uint64_t>{0, 1, 3}));
  EXPECT_EQ(RunQuery({{"patient", "Patient/p2"}}), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(RunQuery({{"patient", "p2,p9"}}), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(RunQuery({{"agent", "alice"}}), (std::vector<uint64_t>{0, 2}));
  EXPECT_EQ(RunQuery({{"agent", "Practitioner/bob"}}), (std::vector<uint64_t>{1, 4}));
  EXPECT_EQ(RunQuery({{"action", "read"}}), (std::vector<uint64_t>{0, 3}));
  EXPECT_EQ(RunQuery({{"action", "U,E"}}), (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(RunQuery({{"outcome", "4"}}), (std::vector<uint64_t>{3}));
  EXPECT_EQ(RunQuery({{"outcome", "allowed"}}), (std::vector<uint64_t>{0, 1, 2, 4}));
  EXPECT_EQ(RunQuery({{"patient", "p1"}, {"outcome", "0"}, {"agent", "bob"}}), (std::vector<uint64_t>{1}));
}

TEST(AuditQueryTest, DatePrefixes) {
  EXPECT_EQ(RunQuery({{"date", "ge2024-01-02"}}), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(RunQuery({{"date", "ge2024-01-02"}, {"date", "le2024-01-03"}}), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(RunQuery({{"date", "2024-01-01"}}), (std::vector<uint64_t>{0}));
  EXPECT_EQ(RunQuery({{"date", "gt2024-01-02"}}), (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(RunQuery({{"date", "lt2024-01-02"}}), (std::vector<uint64_t>{0}));
  EXPECT_EQ(RunQuery({{"date", "ge2024-01-01T00:00:01Z"}, {"date", "le2024-01-01T00:00:01Z"}}),
            (std::vector<uint64_t>{0}));
  EXPECT_EQ(RunQuery({{"date", "le2024-01-01T01:00:01+01:00"}}), (std::vector<uint64_t>{0}));
  EXPECT_EQ(RunQuery({{"date", "le2024-01-01T01:00:00+01:00"}}), (std::vector<uint64_t>{}));
  EXPECT_EQ(RunQuery({{"date", "2024-01"}}), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(RunQuery({{"date", "2023"}}), (std::vector<uint64_t>{}));
}

TEST(AuditQueryTest, DateRanges) {
  auto r = ParseDateRange("2024");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, k2024);
  EXPECT_EQ(r->second, k2024 + 366 * kDay - 1);  // leap year
  r = ParseDateRange("2023-02");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->second - r->first + 1, 28 * kDay);
  r = ParseDateRange("2024-01-02T03:04:05.678Z");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 1704164645678);
  EXPECT_EQ(r->second, 1704164645678);
  r = ParseDateRange("2024-01-02T03:04:05-02:30");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 1704164645000 + (2 * 60 + 30) * 60000);
  EXPECT_EQ(r->second, r->first + 999);
  r = ParseDateRange("1970-01-01");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 0);
  for (const char* bad :
       {"", "24", "2024-13", "2023-02-29", "2024-01-02T03:04Z", "2024-01-02T03:04:05", "2024-01-02T25:00:00Z",
        "2024-01-02T03:04:05.Z", "2024-01-02T03:04:05Zjunk", "0000", "2024-1-2", "abcd"}) {
    EXPECT_FALSE(ParseDateRange(bad).ok()) << bad;
  }
}

TEST(AuditQueryTest, RejectsBadParameters) {
  EXPECT_FALSE(ParseAuditQuery({{"date", "xx2024"}}).ok());
  EXPECT_FALSE(ParseAuditQuery({{"date", "ge2024-99"}}).ok());
  EXPECT_FALSE(ParseAuditQuery({{"patient", "a"}, {"patient", "b"}}).ok());
  EXPECT_FALSE(ParseAuditQuery({{"agent", ","}}).ok());
  auto q = ParseAuditQuery({{"entity-type", "2"}, {"_count", "10"}});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->unknown_params, std::vector<std::string>{"entity-type"});
}

TEST(AuditQueryTest, FilterHonoursLimit) {
  auto q = ParseAuditQuery({});
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(Indices(FilterEntries(Log(), *q, 2)), (std::vector<uint64_t>{0, 1}));
}

TEST(AccessReportTest, RowsForOnePatient) {
  std::vector<IndexedEntry> log = Log();
  log[0].entry.resources = {{"Observation", "o1", "2", ""}};
  log[1].entry.resources = {
      {"Observation", "o1", "2", ""}, {"Observation", "o9", "1", ""}, {"Condition", "c1", "1", ""}};
  log[3].entry.break_glass = true;
  log[3].entry.break_glass_reason = "ED";
  const auto rows = BuildAccessReport(log, "p1", std::nullopt, std::nullopt);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].index, 0u);
  EXPECT_EQ(rows[0].who, "alice");
  EXPECT_EQ(rows[0].who_fhir_user, "Practitioner/alice");
  EXPECT_EQ(rows[0].role, "clinician");
  EXPECT_EQ(rows[0].action, "read");
  EXPECT_EQ(rows[0].resource, "Observation/o1/_history/2");
  EXPECT_EQ(rows[0].purpose, "TREAT");
  EXPECT_EQ(rows[0].outcome, "allowed");
  // The search also touched p2: p1's report shows counts, not the other ids.
  EXPECT_EQ(rows[1].resource, "Condition x1, Observation x2");
  EXPECT_TRUE(rows[2].break_glass);
  EXPECT_EQ(rows[2].break_glass_reason, "ED");
  EXPECT_EQ(rows[2].outcome, "denied");

  const auto window = BuildAccessReport(log, "Patient/p1", k2024 + kDay, k2024 + 2 * kDay);
  ASSERT_EQ(window.size(), 1u);
  EXPECT_EQ(window[0].index, 1u);
  EXPECT_TRUE(BuildAccessReport(log, "nobody", std::nullopt, std::nullopt).empty());
}

TEST(AccessReportTest, SortsByEachField) {
  std::vector<IndexedEntry> log = Log();
  log[2].entry.patients = {"p1"};
  log[4].entry.patients = {"p1"};
  log[2].entry.agent.role = "registration";
  log[4].entry.purpose_of_use = "HOPERAT";
  log[0].entry.resources = {{"Patient", "p1", "1", ""}};
  log[2].entry.resources = {{"Condition", "c", "1", ""}};
  log[3].entry.break_glass = true;
  auto rows = BuildAccessReport(log, "p1", std::nullopt, std::nullopt);
  ASSERT_EQ(rows.size(), 5u);
  auto order = [&](std::string_view spec) {
    auto keys = ParseReportSort(spec);
    EXPECT_TRUE(keys.ok()) << spec;
    auto copy = rows;
    if (keys.ok()) SortAccessReport(copy, *keys);
    std::vector<uint64_t> idx;
    for (const auto& r : copy) idx.push_back(r.index);
    return idx;
  };
  EXPECT_EQ(order("when"), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(order("-when"), (std::vector<uint64_t>{4, 3, 2, 1, 0}));
  EXPECT_EQ(order("who"), (std::vector<uint64_t>{0, 2, 1, 4, 3}));  // alice, alice, bob, bob, carol
  EXPECT_EQ(order("-who,-when"), (std::vector<uint64_t>{3, 4, 1, 2, 0}));
  EXPECT_EQ(order("role"), (std::vector<uint64_t>{0, 1, 3, 4, 2}));      // clinician x4, registration
  EXPECT_EQ(order("action"), (std::vector<uint64_t>{4, 0, 3, 1, 2}));    // login, read, read, search, update
  EXPECT_EQ(order("resource"), (std::vector<uint64_t>{1, 3, 4, 2, 0}));  // "", "", "", Condition, Patient
  EXPECT_EQ(order("purpose"), (std::vector<uint64_t>{4, 0, 1, 2, 3}));   // HOPERAT < TREAT
  EXPECT_EQ(order("-break_glass"), (std::vector<uint64_t>{3, 0, 1, 2, 4}));
  EXPECT_EQ(order("outcome"), (std::vector<uint64_t>{0, 1, 2, 4, 3}));  // allowed < denied
  EXPECT_FALSE(ParseReportSort("size").ok());
  EXPECT_FALSE(ParseReportSort("").ok());
}

}  // namespace
}  // namespace phivault::audit
