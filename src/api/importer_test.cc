#include "api/importer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/testing/test_vault.h"
#include "common/testing/temp_dir.h"

namespace phivault::api {
namespace {

std::string Note(int i) {
  std::string s;
  for (int k = 0; k < 20; ++k) s += "observation " + std::to_string(i) + " line " + std::to_string(k) + "; ";
  return s;
}

// NDJSON import in many small batches (each parsed into its own arena and
// committed with an audit entry) stores every resource exactly as given,
// with the meta the store sets, and finds it through the search index.
TEST(ImporterTest, NdjsonBatchesAreStoredIndexedAndAudited) {
  phivault::testing::TempDir tmp;
  auto tv = testing::TestVault::Create(tmp);
  ASSERT_TRUE(tv.vault);
  const std::string file = tmp.Sub("obs.ndjson");
  std::vector<boost::json::object> written;
  {
    std::ofstream out(file);
    boost::json::object patient = boost::json::parse(R"({"resourceType":"Patient","id":"p1"})").as_object();
    out << boost::json::serialize(patient) << "\n";
    written.push_back(patient);
    for (int i = 0; i < 23; ++i) {
      boost::json::object o = boost::json::parse(
          R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"}})")
                                  .as_object();
      o["id"] = "o" + std::to_string(i);
      if (i % 2) o["meta"] = boost::json::parse(R"({"profile":["http://x/p"],"versionId":"9"})");
      o["note"] = boost::json::array{boost::json::object{{"text", Note(i)}}};
      out << boost::json::serialize(o) << "\n";
      written.push_back(o);
    }
    out << "{not json}\n";
  }
  const uint64_t before = tv.vault->audit_log()->size();
  ImportOptions opts;
  opts.batch_size = 4;
  opts.max_in_flight = 2;
  opts.auditor = tv.vault->audit_trail();
  auto summary = ImportFiles(tv.vault->store(), {file}, opts);
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->loaded, 24);
  EXPECT_EQ(summary->rejected, 1);

  for (const auto& w : written) {
    std::string type(w.at("resourceType").as_string());
    std::string id(w.at("id").as_string());
    auto v = tv.vault->store()->Read(type, id);
    ASSERT_TRUE(v.ok()) << id;
    EXPECT_EQ(v->version, 1);
    boost::json::object stored = boost::json::parse(v->json).as_object();
    const boost::json::object& meta = stored.at("meta").as_object();
    EXPECT_EQ(meta.at("versionId").as_string(), "1");
    EXPECT_TRUE(meta.contains("lastUpdated"));
    if (const auto* given = w.if_contains("meta")) {
      EXPECT_EQ(meta.at("profile"), given->as_object().at("profile"));
    }
    boost::json::object expected = w;
    stored.erase("meta");
    expected.erase("meta");
    EXPECT_EQ(stored, expected) << id;
  }

  store::SearchQuery q;
  q.type = "Observation";
  store::SearchCondition c;
  c.param = "subject";
  c.type = search::ParamType::kReference;
  store::SearchValue val;
  val.ref_type = "Patient";
  val.ref_id = "p1";
  c.values.push_back(val);
  q.conditions.push_back(c);
  q.count = 100;
  auto page = tv.vault->store()->Search(q);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->hits.size(), 23u);

  // One audit entry per batch of 4, naming each resource of its batch.
  auto entries = tv.vault->audit_log()->ReadEntries(before, tv.vault->audit_log()->size());
  ASSERT_TRUE(entries.ok()) << entries.status().ToString();
  int imports = 0;
  for (const std::string& e : *entries) {
    if (e.find("\"import\"") != std::string::npos) ++imports;
  }
  EXPECT_EQ(imports, 6);
  // (p1 also appears in every entry as the patient the batch touched.)
  for (size_t i = 1; i < written.size(); ++i) {
    const std::string id = "\"" + std::string(written[i].at("id").as_string()) + "\"";
    int naming = 0;
    for (const std::string& e : *entries) naming += e.find(id) != std::string::npos ? 1 : 0;
    EXPECT_EQ(naming, 1) << id;
  }
}

}  // namespace
}  // namespace phivault::api
