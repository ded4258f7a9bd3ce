// AuditEntry: JSON round trip, stable field names, ASCII-only output, and
// ParseEntry on hostile input (truncations, bit flips, wrong types, random
// bytes): errors, never crashes.
#include "audit/entry.h"

#include <gtest/gtest.h>

#include <random>

namespace phivault::audit {
namespace {

AuditEntry FullEntry() {
  AuditEntry e;
  e.time_ms = 1704164645678;  // 2024-01-02T03:04:05.678Z
  e.request_id = "req-1";
  e.agent = {"u-42", "clinician", "Practitioner/p1", "app-7", "dev-3"};
  e.source_address = "192.0.2.10";
  e.user_agent = "curl/8.0 \"quoted\" \\ tab\t";
  e.action = AuditAction::kUpdate;
  e.resources = {{"Observation", "o1", "3", "2"}, {"Condition", "c1", "1", ""}};
  e.query = "Observation?code&patient";
  e.patients = {"pat-1", "pat-2"};
  e.data_category = "clinical";
  e.purpose_of_use = "ETREAT";
  e.break_glass = true;
  e.break_glass_reason = "unconscious in ED";
  e.outcome = AuditOutcome::kDenied;
  e.rule = "consent";
  e.http_status = 403;
  e.write_record = 77;
  e.decision = "role+ consent-";
  e.event = "x";
  return e;
}

TEST(AuditEntryTest, RoundTripsEveryField) {
  const AuditEntry e = FullEntry();
  const std::string json = Serialize(e);
  auto back = ParseEntry(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, e);
  EXPECT_EQ(Serialize(*back), json);  // canonical
}

TEST(AuditEntryTest, MinimalEntryIsCompactAndStable) {
  AuditEntry e;
  e.time_ms = 5;
  e.action = AuditAction::kLogin;
  // The stable v1 encoding: defaults are omitted.
  EXPECT_EQ(Serialize(e), R"({"v":1,"time_ms":5,"action":"login","outcome":"allowed"})");
  auto back = ParseEntry(Serialize(e));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, e);
}

TEST(AuditEntryTest, FieldNamesAreStable) {
  const std::string json = Serialize(FullEntry());
  for (const char* key : {"\"v\":1",
                          "\"time_ms\":",
                          "\"request_id\":",
                          "\"agent\":{",
                          "\"subject\":",
                          "\"role\":",
                          "\"fhir_user\":",
                          "\"client_id\":",
                          "\"device_id\":",
                          "\"source_address\":",
                          "\"user_agent\":",
                          "\"action\":\"update\"",
                          "\"resources\":[",
                          "\"type\":",
                          "\"id\":",
                          "\"version\":",
                          "\"prior_version\":",
                          "\"query\":",
                          "\"patients\":[",
                          "\"data_category\":",
                          "\"purpose_of_use\":",
                          "\"break_glass\":true",
                          "\"break_glass_reason\":",
                          "\"outcome\":\"denied\"",
                          "\"rule\":",
                          "\"http_status\":403",
                          "\"write_record\":77",
                          "\"decision\":",
                          "\"event\":"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
}

TEST(AuditEntryTest, EveryActionCodeRoundTrips) {
  for (int i = 0; i < kAuditActionCount; ++i) {
    const auto a = static_cast<AuditAction>(i);
    const std::string_view code = ActionCode(a);
    EXPECT_NE(code, "unknown");
    EXPECT_EQ(ParseActionCode(code), a) << code;
    AuditEntry e;
    e.action = a;
    auto back = ParseEntry(Serialize(e));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->action, a);
  }
  EXPECT_FALSE(ParseActionCode("READ").has_value());
}

TEST(AuditEntryTest, OutputIsPrintableAsciiAndInvalidUtf8IsReplaced) {
  AuditEntry e;
  e.user_agent = "Mozilla \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 bad:\xFF\xC0\xAF end\n\x01";
  e.break_glass_reason = std::string("nul\0byte", 8);
  const std::string json = Serialize(e);
  for (char c : json) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7F) << "byte " << static_cast<int>(static_cast<unsigned char>(c));
  }
  EXPECT_NE(json.find("\\u00e9\\u20ac\\ud83d\\ude00"), std::string::npos) << json;
  auto back = ParseEntry(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->user_agent,
            "Mozilla \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 bad:\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD end\n\x01");
  EXPECT_EQ(back->break_glass_reason, std::string("nul\0byte", 8));
}

TEST(AuditEntryTest, RejectsMalformedEntries) {
  const char* bad[] = {
      "",
      "null",
      "[]",
      "{}",
      R"({"v":1})",
      R"({"v":1,"time_ms":1,"action":"read"})",                      // no outcome
      R"({"v":1,"time_ms":1,"action":"peek","outcome":"allowed"})",  // unknown action
      R"({"v":1,"time_ms":1,"action":"read","outcome":"maybe"})",
      R"({"v":1,"time_ms":-1,"action":"read","outcome":"allowed"})",
      R"({"v":1,"time_ms":1.5,"action":"read","outcome":"allowed"})",
      R"({"v":1,"time_ms":99999999999999999999,"action":"read","outcome":"allowed"})",
      R"({"v":1,"time_ms":253402300800000,"action":"read","outcome":"allowed"})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","http_status":99})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","http_status":600})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","agent":"bob"})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","agent":{"subject":7}})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","resources":{}})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","resources":[{"id":"x"}]})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","resources":["Patient/1"]})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","patients":[1]})",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","break_glass":"yes"})",
      R"({"v":1,"v":1,"time_ms":1,"action":"read","outcome":"allowed"})",  // duplicate key
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed"} trailing)",
      R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","x":[[[[[[1]]]]]]})",  // too deep
  };
  for (const char* s : bad) {
    auto r = ParseEntry(s);
    EXPECT_FALSE(r.ok()) << s;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << s;
    }
  }
  auto future = ParseEntry(R"({"v":2,"time_ms":1,"action":"read","outcome":"allowed"})");
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.status().code(), StatusCode::kUnsupported);
  // Unknown members are ignored (v1 grows by optional members only).
  EXPECT_TRUE(ParseEntry(R"({"v":1,"time_ms":1,"action":"read","outcome":"allowed","new":{"a":1}})").ok());
  // Oversized input is refused before parsing.
  EXPECT_FALSE(ParseEntry(std::string(kMaxEntryBytes + 1, ' ')).ok());
}

TEST(AuditEntryTest, GarbageNeverCrashes) {
  const std::string good = Serialize(FullEntry());
  std::mt19937 rng(12345);
  // Every truncation.
  for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(ParseEntry(good.substr(0, n)).ok());
  // Random byte flips and insertions of structural characters.
  const char structural[] = "{}[]\",:\\0\x80\xff";
  for (int i = 0; i < 5000; ++i) {
    std::string s = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t pos = rng() % s.size();
      if (rng() % 2) {
        s[pos] = static_cast<char>(rng() & 0xFF);
      } else {
        s.insert(pos, 1, structural[rng() % (sizeof structural - 1)]);
      }
    }
    auto r = ParseEntry(s);
    if (r.ok()) {
      EXPECT_TRUE(ParseEntry(Serialize(*r)).ok());  // whatever parses re-serializes cleanly
    }
  }
  // Pure noise.
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 200, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xFF);
    ParseEntry(s).status().IgnoreError();
  }
}

}  // namespace
}  // namespace phivault::audit
