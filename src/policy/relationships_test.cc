#include "policy/relationships.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "policy/test_util.h"

namespace phivault::policy {
namespace {

using testing::kDayMs;
using testing::kNow;
using testing::Res;

constexpr char kDoc[] = "Practitioner/doc";

class RelationshipsTest : public ::testing::Test {
 protected:
  RelationshipIndex idx_;
  void W(std::string_view json) { testing::Write(idx_, Res(json)); }
  bool Rel(std::string_view who = kDoc, std::string_view patient = "p1", int64_t now = kNow) {
    return idx_.HasCareRelationship(who, patient, now);
  }
};

TEST_F(RelationshipsTest, NoneByDefault) {
  EXPECT_FALSE(Rel());
  EXPECT_FALSE(idx_.FindCareRelationship(kDoc, "p1", kNow).has_value());
}

TEST_F(RelationshipsTest, ViaCareTeamParticipant) {
  W(R"({"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_EQ(idx_.FindCareRelationship(kDoc, "p1", kNow), RelationshipPath::kCareTeam);
  EXPECT_FALSE(Rel(kDoc, "p2"));
  EXPECT_FALSE(Rel("Practitioner/other"));
  // Absolute and versioned fhirUser forms denote the same practitioner.
  EXPECT_TRUE(Rel("https://vault.example/fhir/Practitioner/doc"));
  EXPECT_TRUE(Rel("Practitioner/doc/_history/7"));
  // Only practitioners are related.
  EXPECT_FALSE(Rel("Patient/doc"));
}

TEST_F(RelationshipsTest, CareTeamStatusAndPeriods) {
  W(R"({"resourceType":"CareTeam","id":"ct","status":"inactive","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_FALSE(Rel());
  W(R"({"resourceType":"CareTeam","id":"ct","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_TRUE(Rel()) << "status absent counts";
  W(R"({"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"Practitioner/doc"},"period":{"end":"2024-05-31"}}]})");
  EXPECT_FALSE(Rel()) << "membership ended";
  EXPECT_TRUE(Rel(kDoc, "p1", kNow - 1));
  W(R"({"resourceType":"CareTeam","id":"ct","status":"active","period":{"start":"2024-07"},
        "subject":{"reference":"Patient/p1"},"participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_FALSE(Rel()) << "team not started yet";
  W(R"({"resourceType":"CareTeam","id":"ct","status":"active","period":{"start":"garbage"},
        "subject":{"reference":"Patient/p1"},"participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_FALSE(Rel()) << "malformed period grants nothing";
}

TEST_F(RelationshipsTest, ViaEncounterInProgress) {
  W(R"({"resourceType":"Encounter","id":"e","status":"in-progress","class":{"code":"AMB"},
        "subject":{"reference":"Patient/p1"},"participant":[{"individual":{"reference":"Practitioner/doc"}}],
        "period":{"start":"2020-01-01"}})");
  EXPECT_EQ(idx_.FindCareRelationship(kDoc, "p1", kNow), RelationshipPath::kEncounter);
  for (const char* s : {"arrived", "triaged", "onleave"}) {
    W(std::string(R"({"resourceType":"Encounter","id":"e","status":")") + s +
      R"(","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},
        "participant":[{"individual":{"reference":"Practitioner/doc"}}]})");
    EXPECT_TRUE(Rel()) << s;
  }
  for (const char* s : {"planned", "cancelled", "entered-in-error", "unknown"}) {
    W(std::string(R"({"resourceType":"Encounter","id":"e","status":")") + s +
      R"(","class":{"code":"AMB"},"subject":{"reference":"Patient/p1"},"period":{"end":"2024-05-31"},
        "participant":[{"individual":{"reference":"Practitioner/doc"}}]})");
    EXPECT_FALSE(Rel()) << s;
  }
}

TEST_F(RelationshipsTest, EncounterWindowBoundary) {
  // Ended exactly at kNow (ms precision): related until end + 30 days inclusive.
  W(R"({"resourceType":"Encounter","id":"e","status":"finished","class":{"code":"AMB"},
        "subject":{"reference":"Patient/p1"},"participant":[{"individual":{"reference":"Practitioner/doc"}}],
        "period":{"start":"2024-05-31T23:00:00.000Z","end":"2024-06-01T00:00:00.000Z"}})");
  EXPECT_TRUE(Rel(kDoc, "p1", kNow));
  EXPECT_TRUE(Rel(kDoc, "p1", kNow + 30 * kDayMs));
  EXPECT_FALSE(Rel(kDoc, "p1", kNow + 30 * kDayMs + 1));
  // A day-precision end lasts until the end of that day.
  W(R"({"resourceType":"Encounter","id":"e","status":"finished","class":{"code":"AMB"},
        "subject":{"reference":"Patient/p1"},"participant":[{"individual":{"reference":"Practitioner/doc"}}],
        "period":{"end":"2024-06-01"}})");
  EXPECT_TRUE(Rel(kDoc, "p1", kNow + 31 * kDayMs - 1));
  EXPECT_FALSE(Rel(kDoc, "p1", kNow + 31 * kDayMs));
  // Finished without an end: when it ended is unknown, so it does not count.
  W(R"({"resourceType":"Encounter","id":"e","status":"finished","class":{"code":"AMB"},
        "subject":{"reference":"Patient/p1"},"participant":[{"individual":{"reference":"Practitioner/doc"}}]})");
  EXPECT_FALSE(Rel());
}

TEST(RelationshipIndex, EncounterWindowIsConfigurable) {
  RelationshipIndex idx(RelationshipOptions{7 * kDayMs});
  testing::Write(idx, Res(R"({"resourceType":"Encounter","id":"e","status":"finished","class":{"code":"AMB"},
        "subject":{"reference":"Patient/p1"},"participant":[{"individual":{"reference":"Practitioner/doc"}}],
        "period":{"end":"2024-06-01T00:00:00.000Z"}})"));
  EXPECT_TRUE(idx.HasCareRelationship(kDoc, "p1", kNow + 7 * kDayMs));
  EXPECT_FALSE(idx.HasCareRelationship(kDoc, "p1", kNow + 7 * kDayMs + 1));
}

TEST_F(RelationshipsTest, ViaGeneralPractitioner) {
  W(R"({"resourceType":"Patient","id":"p1","generalPractitioner":[{"reference":"Organization/o"},
        {"reference":"Practitioner/doc"}]})");
  EXPECT_EQ(idx_.FindCareRelationship(kDoc, "p1", kNow), RelationshipPath::kGeneralPractitioner);
  EXPECT_FALSE(Rel("Organization/o"));
  W(R"({"resourceType":"Patient","id":"p1","generalPractitioner":[{"reference":"Practitioner/other"}]})");
  EXPECT_FALSE(Rel()) << "a new version replaces the old GP";
  EXPECT_TRUE(Rel("Practitioner/other"));
  testing::Delete(idx_, "Patient", "p1");
  EXPECT_FALSE(Rel("Practitioner/other"));
  EXPECT_EQ(idx_.size(), 0u);
}

TEST_F(RelationshipsTest, ViaEpisodeOfCareCareManager) {
  W(R"({"resourceType":"EpisodeOfCare","id":"eoc","status":"active","patient":{"reference":"Patient/p1"},
        "careManager":{"reference":"Practitioner/doc"}})");
  EXPECT_EQ(idx_.FindCareRelationship(kDoc, "p1", kNow), RelationshipPath::kEpisodeOfCare);
  W(R"({"resourceType":"EpisodeOfCare","id":"eoc","status":"finished","patient":{"reference":"Patient/p1"},
        "careManager":{"reference":"Practitioner/doc"}})");
  EXPECT_FALSE(Rel());
  W(R"({"resourceType":"EpisodeOfCare","id":"eoc","status":"onhold","patient":{"reference":"Patient/p1"},
        "period":{"end":"2024-01-01"},"careManager":{"reference":"Practitioner/doc"}})");
  EXPECT_FALSE(Rel()) << "episode period over";
}

TEST_F(RelationshipsTest, ViaEpisodeOfCareTeam) {
  // The team is a department team with no subject of its own.
  W(R"({"resourceType":"CareTeam","id":"cardio","status":"active",
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_FALSE(Rel());
  W(R"({"resourceType":"EpisodeOfCare","id":"eoc","status":"active","patient":{"reference":"Patient/p1"},
        "team":[{"reference":"CareTeam/cardio"}]})");
  EXPECT_EQ(idx_.FindCareRelationship(kDoc, "p1", kNow), RelationshipPath::kEpisodeOfCare);
  EXPECT_FALSE(Rel(kDoc, "p2"));
  // Changing the team's membership takes effect at once.
  W(R"({"resourceType":"CareTeam","id":"cardio","status":"active",
        "participant":[{"member":{"reference":"Practitioner/other"}}]})");
  EXPECT_FALSE(Rel());
  EXPECT_TRUE(Rel("Practitioner/other"));
  testing::Delete(idx_, "CareTeam", "cardio");
  EXPECT_FALSE(Rel("Practitioner/other"));
  // The team may be written after the episode.
  W(R"({"resourceType":"CareTeam","id":"cardio","status":"active",
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_TRUE(Rel());
}

TEST_F(RelationshipsTest, UpdatesAndDeletesInvalidate) {
  W(R"({"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  uint64_t gen = idx_.generation();
  EXPECT_TRUE(Rel());
  // Moving the team to another patient removes p1 and adds p2.
  W(R"({"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/p2"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_GT(idx_.generation(), gen);
  EXPECT_FALSE(Rel());
  EXPECT_TRUE(Rel(kDoc, "p2"));
  // Dropping the member.
  W(R"({"resourceType":"CareTeam","id":"ct","status":"active","subject":{"reference":"Patient/p2"},
        "participant":[{"member":{"reference":"Practitioner/nurse"}}]})");
  EXPECT_FALSE(Rel(kDoc, "p2"));
  EXPECT_TRUE(Rel("Practitioner/nurse", "p2"));
  // Two resources giving the same edge: deleting one keeps the other.
  W(R"({"resourceType":"Encounter","id":"e","status":"in-progress","class":{"code":"AMB"},
        "subject":{"reference":"Patient/p2"},"participant":[{"individual":{"reference":"Practitioner/nurse"}}]})");
  testing::Delete(idx_, "CareTeam", "ct");
  EXPECT_TRUE(Rel("Practitioner/nurse", "p2"));
  testing::Delete(idx_, "Encounter", "e");
  EXPECT_FALSE(Rel("Practitioner/nurse", "p2"));
  EXPECT_EQ(idx_.size(), 0u);
  // Deleting something never stored is harmless.
  testing::Delete(idx_, "Encounter", "never");
}

TEST_F(RelationshipsTest, PractitionerRoles) {
  W(R"({"resourceType":"PractitionerRole","id":"r1","practitioner":{"reference":"Practitioner/doc"},
        "organization":{"reference":"Organization/hosp"}})");
  // A CareTeam listing the role relates the practitioner, and vice versa.
  W(R"({"resourceType":"CareTeam","id":"ct1","subject":{"reference":"Patient/p1"},
        "participant":[{"member":{"reference":"PractitionerRole/r1"}}]})");
  W(R"({"resourceType":"CareTeam","id":"ct2","subject":{"reference":"Patient/p2"},
        "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
  EXPECT_TRUE(Rel(kDoc, "p1"));
  EXPECT_TRUE(Rel("PractitionerRole/r1", "p1"));
  EXPECT_TRUE(Rel("PractitionerRole/r1", "p2"));
  EXPECT_FALSE(Rel("PractitionerRole/unknown", "p2"));
  auto actors = idx_.ActorRefs("PractitionerRole/r1", kNow);
  EXPECT_EQ(actors, (std::vector<std::string>{"CareTeam/ct1", "CareTeam/ct2", "Organization/hosp", "Practitioner/doc",
                                              "PractitionerRole/r1"}));
  // An inactive role no longer links the two.
  W(R"({"resourceType":"PractitionerRole","id":"r1","active":false,"practitioner":{"reference":"Practitioner/doc"}})");
  EXPECT_FALSE(Rel(kDoc, "p1"));
  EXPECT_FALSE(Rel("PractitionerRole/r1", "p2"));
  EXPECT_TRUE(Rel("PractitionerRole/r1", "p1"));
}

TEST_F(RelationshipsTest, IllTypedResourcesNeverCrashOrGrant) {
  for (const char* json : {
           R"({"resourceType":"CareTeam","id":"x","status":7,"participant":{"member":1}})",
           R"({"resourceType":"CareTeam","id":"x","participant":[1,"a",{"member":"Practitioner/doc"},{"member":{"reference":5}}]})",
           R"({"resourceType":"CareTeam","id":"x","participant":[{"member":{"reference":"Practitioner/doc"},"period":"now"}],"subject":{"reference":"Patient/p1"}})",
           R"({"resourceType":"Encounter","id":"x","status":"finished","period":{"end":20240101},"participant":[{"individual":{"reference":"Practitioner/doc"}}],"subject":{"reference":"Patient/p1"}})",
           R"({"resourceType":"Encounter","id":"x","status":"finished","period":[],"participant":"doc","subject":{"reference":"Patient/p1"}})",
           R"({"resourceType":"Patient","id":"p1","generalPractitioner":{"reference":"Practitioner/doc"}})",
           R"({"resourceType":"EpisodeOfCare","id":"x","status":"active","team":"CareTeam/x","careManager":[],"patient":{"reference":"Patient/p1"}})",
           R"({"resourceType":"PractitionerRole","id":"x","active":"yes","practitioner":["Practitioner/doc"]})",
       }) {
    W(json);
  }
  EXPECT_FALSE(Rel());
}

TEST_F(RelationshipsTest, RebuildFromEnumerator) {
  W(R"({"resourceType":"Patient","id":"p9","generalPractitioner":[{"reference":"Practitioner/doc"}]})");
  std::vector<boost::json::object> stored = {
      Res(R"({"resourceType":"CareTeam","id":"ct","subject":{"reference":"Patient/p1"},
              "participant":[{"member":{"reference":"Practitioner/doc"}}]})"),
      Res(R"({"resourceType":"Observation","id":"o","status":"final","code":{},"subject":{"reference":"Patient/p1"}})"),
  };
  auto enumerate = [&](const ResourceVisitor& visit) {
    for (const auto& r : stored) visit(testing::TypeOf(r), testing::IdOf(r), r, fhir::PatientCompartment(r));
    return Status::Ok();
  };
  EXPECT_FALSE(idx_.Rebuild([](const ResourceVisitor&) { return Internal("disk"); }).ok());
  EXPECT_TRUE(Rel(kDoc, "p9")) << "failed rebuild keeps the old index";
  ASSERT_TRUE(idx_.Rebuild(enumerate).ok());
  EXPECT_FALSE(Rel(kDoc, "p9"));
  EXPECT_TRUE(Rel(kDoc, "p1"));
  EXPECT_EQ(idx_.size(), 1u);
}

TEST_F(RelationshipsTest, ConcurrentReadersAndWriters) {
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      if (i % 2 == 0) {
        W(R"({"resourceType":"CareTeam","id":"ct","subject":{"reference":"Patient/p1"},
              "participant":[{"member":{"reference":"Practitioner/doc"}}]})");
      } else {
        testing::Delete(idx_, "CareTeam", "ct");
      }
    }
    stop = true;
  });
  std::thread reader([&] {
    while (!stop) {
      (void)Rel();
      (void)idx_.ActorRefs(kDoc, kNow);
    }
  });
  writer.join();
  reader.join();
  EXPECT_FALSE(Rel());
}

}  // namespace
}  // namespace phivault::policy
