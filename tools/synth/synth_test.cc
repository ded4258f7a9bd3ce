#include "synth.h"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <boost/json.hpp>

#include "api/importer.h"
#include "api/vault.h"
#include "auth/base64url.h"
#include "common/testing/temp_dir.h"
#include "fhir/compartment.h"

namespace phivault::synth {
namespace {

namespace json = boost::json;

std::vector<std::string> Synthesize(const Templates& t, int64_t patients, uint64_t seed) {
  std::vector<std::string> lines;
  auto s = Generate(t, {patients, seed}, [&](std::string_view line) {
    lines.emplace_back(line);
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return lines;
}

std::string StandardBase64Decode(std::string s) {
  std::replace(s.begin(), s.end(), '+', '-');
  std::replace(s.begin(), s.end(), '/', '_');
  while (!s.empty() && s.back() == '=') s.pop_back();
  auto d = auth::Base64UrlDecode(s);
  EXPECT_TRUE(d.ok());
  return d.ok() ? *d : "";
}

// Every string of a resource, with base64 attachment data decoded.
void Strings(const json::value& v, std::vector<std::string>& out) {
  if (const json::object* o = v.if_object()) {
    for (const auto& kv : *o) {
      if (kv.key() == "data" && kv.value().is_string() && o->contains("contentType")) {
        out.push_back(StandardBase64Decode(std::string(kv.value().as_string())));
      } else {
        Strings(kv.value(), out);
      }
    }
  } else if (const json::array* a = v.if_array()) {
    for (const auto& e : *a) Strings(e, out);
  } else if (const json::string* s = v.if_string()) {
    out.emplace_back(*s);
  }
}

// `what` occurs in `text` as a whole token (no letter or digit around it).
bool FindToken(std::string_view text, std::string_view what) {
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  for (size_t pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos + 1)) {
    bool start = pos == 0 || !alnum(text[pos - 1]);
    bool end = pos + what.size() == text.size() || !alnum(text[pos + what.size()]);
    if (start && end) return true;
  }
  return false;
}

void References(const json::value& v, std::vector<std::string>& out) {
  if (const json::object* o = v.if_object()) {
    for (const auto& kv : *o) {
      if (kv.key() == "reference" && kv.value().is_string()) {
        out.emplace_back(kv.value().as_string());
      } else {
        References(kv.value(), out);
      }
    }
  } else if (const json::array* a = v.if_array()) {
    for (const auto& e : *a) References(e, out);
  }
}

// A tiny sample set whose every value the test knows: one NDJSON patient with
// a conditional reference to a shared Practitioner and a clinical note, and
// one Bundle patient with urn:uuid references.
class SynthSmallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(tmp_.Sub("samples"));
    testing::WriteFile(
        tmp_.Sub("samples/a.ndjson"),
        R"({"resourceType":"Practitioner","id":"dr1","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"999"}],"name":[{"family":"Welby"}]})"
        "\n"
        R"({"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:mrn","value":"MRN-4711"}],)"
        R"("name":[{"family":"Quenton123","given":["Ada77"],"prefix":["Ms."]}],"birthDate":"1980-03-01",)"
        R"("telecom":[{"system":"phone","value":"555-123-4567"}],"address":[{"line":["12 Elm Street"],"city":"Springfield"}]})"
        "\n"
        R"({"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},)"
        R"("subject":{"reference":"Patient/p1","display":"Ms. Ada77 Quenton123"},)"
        R"("participant":[{"individual":{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999"}}],)"
        R"("period":{"start":"2010-03-01T10:00:00+01:00","end":"2010-03-02"}})"
        "\n"
        R"({"resourceType":"DocumentReference","id":"n1","status":"current","subject":{"reference":"Patient/p1"},)"
        R"("context":{"encounter":[{"reference":"Encounter/e1"}]},)"
        R"("content":[{"attachment":{"contentType":"text/plain; charset=utf-8","data":")" +
            Base64("Ada77 Quenton123 seen on 2010-03-01 at 12 Elm Street.") + R"("}}]})"
            "\n");
    testing::WriteFile(
        tmp_.Sub("samples/b.json"),
        R"({"resourceType":"Bundle","type":"transaction","entry":[)"
        R"({"fullUrl":"urn:uuid:0a1b","resource":{"resourceType":"Patient","id":"0a1b","name":[{"family":"Bundleson9"}]},"request":{"method":"POST","url":"Patient"}},)"
        R"({"fullUrl":"urn:uuid:0c2d","resource":{"resourceType":"Observation","id":"0c2d","status":"final","code":{"text":"x"},)"
        R"("subject":{"reference":"urn:uuid:0a1b"},"effectiveDateTime":"2001-01-01T00:00:00Z"},"request":{"method":"POST","url":"Observation"}}]})");
  }

  static std::string Base64(std::string_view text) {
    std::string s = auth::Base64UrlEncode(text);
    std::replace(s.begin(), s.end(), '-', '+');
    std::replace(s.begin(), s.end(), '_', '/');
    while (s.size() % 4) s += '=';
    return s;
  }

  testing::TempDir tmp_;
};

int DaysBetween(std::string_view a, std::string_view b) {
  auto days = [](std::string_view d) {
    std::chrono::year_month_day ymd{std::chrono::year(std::stoi(std::string(d.substr(0, 4)))),
                                    std::chrono::month(static_cast<unsigned>(std::stoi(std::string(d.substr(5, 2))))),
                                    std::chrono::day(static_cast<unsigned>(std::stoi(std::string(d.substr(8, 2)))))};
    return std::chrono::sys_days(ymd).time_since_epoch().count();
  };
  return static_cast<int>(days(b) - days(a));
}

TEST_F(SynthSmallTest, ClonesGetNewIdentitiesShiftedDatesAndOwnReferences) {
  auto t = Templates::Load({tmp_.Sub("samples")});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->patient_count(), 2u);
  EXPECT_EQ(t->shared_count(), 1u);
  auto lines = Synthesize(*t, 4, 42);
  ASSERT_EQ(lines.size(), 1u + 2 * (3 + 2));
  EXPECT_EQ(json::parse(lines[0]).as_object()["id"], "dr1") << "shared resources are written once, unchanged";

  std::set<std::string> patient_ids;
  // Shared first, then clones of the 3-resource and the 2-resource template in turn.
  size_t first = 1;
  for (int clone = 0; clone < 4; first += clone % 2 == 0 ? 3 : 2, ++clone) {
    json::object p = json::parse(lines[first]).as_object();
    ASSERT_EQ(p["resourceType"], "Patient") << lines[first];
    patient_ids.insert(std::string(p["id"].as_string()));
    if (clone % 2 == 1) continue;
    json::object enc = json::parse(lines[first + 1]).as_object();
    json::object note = json::parse(lines[first + 2]).as_object();
    std::string pid(p["id"].as_string());
    // References point at the clone's own resources, the conditional one at the shared Practitioner.
    EXPECT_EQ(enc["subject"].as_object()["reference"].as_string(), "Patient/" + pid);
    EXPECT_EQ(enc["participant"].as_array()[0].as_object()["individual"].as_object()["reference"], "Practitioner/dr1");
    EXPECT_EQ(note["context"].as_object()["encounter"].as_array()[0].as_object()["reference"].as_string(),
              "Encounter/" + std::string(enc["id"].as_string()));
    // A new identity everywhere, the note included.
    std::string family(p["name"].as_array()[0].as_object()["family"].as_string());
    std::string given(p["name"].as_array()[0].as_object()["given"].as_array()[0].as_string());
    EXPECT_NE(family, "Quenton123");
    EXPECT_NE(p["identifier"].as_array()[0].as_object()["value"], "MRN-4711");
    EXPECT_NE(p["telecom"].as_array()[0].as_object()["value"], "555-123-4567");
    EXPECT_NE(p["address"].as_array()[0].as_object()["line"].as_array()[0], "12 Elm Street");
    EXPECT_EQ(std::string(enc["subject"].as_object()["display"].as_string()), "Ms. " + given + " " + family);
    std::string text = StandardBase64Decode(std::string(
        note["content"].as_array()[0].as_object()["attachment"].as_object()["data"].as_string()));
    EXPECT_EQ(text.find("Quenton123"), std::string::npos) << text;
    EXPECT_EQ(text.find("Elm Street"), std::string::npos) << text;
    EXPECT_NE(text.find(given + " " + family), std::string::npos) << text;
    // One shift for every date of the clone, in the note too.
    std::string birth(p["birthDate"].as_string());
    int shift = DaysBetween("1980-03-01", birth);
    EXPECT_LT(shift, 0);
    std::string start(enc["period"].as_object()["start"].as_string());
    EXPECT_EQ(DaysBetween("2010-03-01", start.substr(0, 10)), shift);
    EXPECT_EQ(start.substr(10), "T10:00:00+01:00");
    EXPECT_EQ(DaysBetween("2010-03-02", std::string(enc["period"].as_object()["end"].as_string())), shift);
    EXPECT_NE(text.find(start.substr(0, 10)), std::string::npos) << text;
  }
  EXPECT_EQ(patient_ids.size(), 4u) << "every clone is a distinct patient";
}

class SynthSamplesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Templates::Load({std::string(PHIVAULT_SOURCE_DIR) + "/data/samples"});
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    templates_ = new Templates(std::move(*t));
  }
  static void TearDownTestSuite() {
    delete templates_;
    templates_ = nullptr;
  }
  static Templates* templates_;
};
Templates* SynthSamplesTest::templates_ = nullptr;

TEST_F(SynthSamplesTest, SameSeedSameBytesOtherSeedOtherBytes) {
  ASSERT_NE(templates_, nullptr);
  auto a = Synthesize(*templates_, 3, 11);
  auto b = Synthesize(*templates_, 3, 11);
  auto c = Synthesize(*templates_, 3, 12);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
  // Loading the samples again changes nothing either.
  auto again = Templates::Load({std::string(PHIVAULT_SOURCE_DIR) + "/data/samples"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(Synthesize(*again, 3, 11), a);
}

TEST_F(SynthSamplesTest, ReferencesResolveAndNoOriginalIdentitySurvives) {
  ASSERT_NE(templates_, nullptr);
  // One clone of every template, and a second round of the first two.
  int64_t n = static_cast<int64_t>(templates_->patient_count()) + 2;
  auto lines = Synthesize(*templates_, n, 5);
  std::unordered_set<std::string> present;
  std::vector<json::object> resources;
  for (const auto& l : lines) {
    resources.push_back(json::parse(l).as_object());
    present.insert(std::string(resources.back()["resourceType"].as_string()) + "/" +
                   std::string(resources.back()["id"].as_string()));
  }
  EXPECT_EQ(present.size(), lines.size()) << "ids are unique";

  // What identified the sample patients, read from the samples here.
  std::set<std::string> originals;
  std::unordered_set<std::string> template_patients;
  auto scan_patient = [&](const json::object& p) {
    template_patients.insert(std::string(p.at("id").as_string()));
    originals.insert(std::string(p.at("id").as_string()));
    for (const auto& key : {"identifier", "telecom"}) {
      if (const auto* arr = p.if_contains(key)) {
        for (const auto& e : arr->as_array()) originals.insert(std::string(e.as_object().at("value").as_string()));
      }
    }
    if (const auto* names = p.if_contains("name")) {
      for (const auto& nm : names->as_array()) {
        if (const auto* f = nm.as_object().if_contains("family")) originals.insert(std::string(f->as_string()));
        if (const auto* g = nm.as_object().if_contains("given")) {
          for (const auto& x : g->as_array()) originals.insert(std::string(x.as_string()));
        }
      }
    }
    if (const auto* addr = p.if_contains("address")) {
      for (const auto& a : addr->as_array()) {
        if (const auto* ls = a.as_object().if_contains("line")) {
          for (const auto& x : ls->as_array()) originals.insert(std::string(x.as_string()));
        }
      }
    }
  };
  for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(PHIVAULT_SOURCE_DIR) + "/data/samples")) {
    std::string text = testing::ReadFile(entry.path().string());
    if (entry.path().filename() == "Patient.000.ndjson") {
      std::istringstream in(text);
      std::string line;
      while (std::getline(in, line)) scan_patient(json::parse(line).as_object());
    } else if (entry.path().extension() == ".json") {
      json::value bundle = json::parse(text);
      for (const auto& e : bundle.as_object().at("entry").as_array()) {
        const auto& r = e.as_object().at("resource").as_object();
        if (r.at("resourceType") == "Patient") scan_patient(r);
      }
    }
  }
  ASSERT_EQ(template_patients.size(), templates_->patient_count());
  std::erase_if(originals, [](const std::string& s) { return s.size() < 4; });

  int64_t clone_patients = 0;
  std::string clone_text;  // every string of every clone, attachments decoded
  for (size_t i = 0; i < resources.size(); ++i) {
    const json::object& r = resources[i];
    std::vector<std::string> refs;
    References(json::value(r), refs);
    for (const auto& ref : refs) {
      if (ref.starts_with("#")) continue;
      EXPECT_TRUE(present.contains(ref)) << "dangling reference " << ref << " in line " << i;
    }
    if (i < templates_->shared_count()) continue;
    if (r.at("resourceType") == "Patient") ++clone_patients;
    // (Devices naming their patient are in no R4 compartment but are cloned.)
    auto patients = fhir::PatientCompartment(r);
    for (const auto& p : patients) EXPECT_FALSE(template_patients.contains(p)) << "clone linked to a template patient";
    std::vector<std::string> strings;
    Strings(json::value(r), strings);
    for (const auto& s : strings) {
      clone_text += s;
      clone_text += '\n';
    }
  }
  // Names the samples also give to practitioners (the display of a shared
  // Practitioner reference) are not the patient's identity.
  std::string shared_text;
  for (size_t i = 0; i < templates_->shared_count(); ++i) {
    std::vector<std::string> strings;
    Strings(json::value(resources[i]), strings);
    for (const auto& s : strings) shared_text += s + "\n";
  }
  int checked = 0;
  for (const auto& o : originals) {
    if (FindToken(shared_text, o)) continue;
    ++checked;
    EXPECT_FALSE(FindToken(clone_text, o)) << "an original name, identifier, phone or address line survives";
  }
  EXPECT_GT(checked, static_cast<int>(templates_->patient_count()) * 5);

  EXPECT_EQ(clone_patients, n);
}

TEST_F(SynthSamplesTest, ImportLoadsTheOutput) {
  ASSERT_NE(templates_, nullptr);
  testing::TempDir tmp;
  auto lines = Synthesize(*templates_, 2, 3);
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  testing::WriteFile(tmp.Sub("synth.ndjson"), out);
  std::string key = tmp.Sub("master.key");
  ASSERT_TRUE(crypto::GenerateKeyFile(key).ok());
  api::VaultConfig cfg{tmp.Sub("data"), {}};
  cfg.key.key_file = key;
  ASSERT_TRUE(api::Vault::Init(cfg).ok());
  auto vault = api::Vault::Open(cfg);
  ASSERT_TRUE(vault.ok()) << vault.status().ToString();
  auto summary = api::ImportFiles((*vault)->store(), {tmp.Sub("synth.ndjson")});
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->rejected, 0) << (summary->reasons.empty() ? "" : summary->reasons[0]);
  EXPECT_EQ(summary->loaded, static_cast<int64_t>(lines.size()));
}

}  // namespace
}  // namespace phivault::synth
