#include "api/importer.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/testing/test_vault.h"
#include "common/testing/temp_dir.h"
#include "search/query.h"
#include "store/sqlite_store.h"

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

// A population with values of every kind the queries below look up.
std::string WritePopulation(phivault::testing::TempDir& tmp) {
  const std::string file = tmp.Sub("population.ndjson");
  std::ofstream out(file);
  const char* families[] = {"Smith", "Smyth", "Jones", "Müller", "Okafor"};
  for (int p = 0; p < 40; ++p) {
    boost::json::object patient{{"resourceType", "Patient"}, {"id", "p" + std::to_string(p)}};
    patient["name"] = boost::json::array{boost::json::object{{"family", families[p % 5]}, {"given", {"Ann"}}}};
    patient["birthDate"] = std::to_string(1940 + p) + "-03-0" + std::to_string(1 + p % 9);
    patient["identifier"] = boost::json::array{
        boost::json::object{{"system", "urn:mrn"}, {"value", "MRN" + std::to_string(p)}}};
    out << boost::json::serialize(patient) << "\n";
    for (int k = 0; k < 6; ++k) {
      boost::json::object o{{"resourceType", "Observation"}, {"id", "o" + std::to_string(p) + "-" + std::to_string(k)},
                            {"status", "final"}};
      o["code"] = boost::json::object{
          {"coding", boost::json::array{boost::json::object{{"system", "http://loinc.org"},
                                                            {"code", k % 2 ? "8867-4" : "29463-7"}}}}};
      o["subject"] = boost::json::object{{"reference", "Patient/p" + std::to_string(p)}};
      o["effectiveDateTime"] = std::to_string(2015 + k) + "-0" + std::to_string(1 + p % 9) + "-10T08:00:00Z";
      o["valueQuantity"] = boost::json::object{
          {"value", 40 + p + k}, {"unit", "kg"}, {"system", "http://unitsofmeasure.org"}, {"code", "kg"}};
      out << boost::json::serialize(o) << "\n";
    }
  }
  return file;
}

// Ids of every match of `query` (a URL query string) on `type`, in order.
std::vector<std::string> SearchIds(store::ResourceStore* store, std::string_view type,
                                   const search::QueryPairs& params) {
  search::SearchParseOptions po;
  po.max_count = 1000;
  auto req = search::ParseSearch(type, params, po);
  EXPECT_TRUE(req.ok()) << req.status().ToString();
  if (!req.ok()) return {};
  req->query.count = 1000;
  auto page = store->Search(req->query);
  EXPECT_TRUE(page.ok()) << page.status().ToString();
  if (!page.ok()) return {};
  std::vector<std::string> ids;
  for (const auto& hit : page->hits) ids.push_back(hit.version.id);
  return ids;
}

// The lookup indexes of the search tables present in the vault's database
// (read through the encrypting VFS the open store registered).
// How many indexes of vault.db match `where` (over sqlite_master), or -1.
int CountIndexes(const testing::TestVault& tv, const std::string& where) {
  sqlite3* db = nullptr;
  int n = -1;
  const std::string vfs = store::VaultVfsName(tv.vault_id);
  if (sqlite3_open_v2((tv.data_dir + "/vault.db").c_str(), &db, SQLITE_OPEN_READONLY, vfs.c_str()) == SQLITE_OK) {
    sqlite3_stmt* q = nullptr;
    const std::string sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND " + where;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
      n = sqlite3_column_int(q, 0);
    }
    sqlite3_finalize(q);
  }
  sqlite3_close_v2(db);
  return n;
}

int SearchLookupIndexes(const testing::TestVault& tv) {
  return CountIndexes(tv, "tbl_name LIKE 'sx\\_%' ESCAPE '\\' AND sql IS NOT NULL");
}

int VersionIndexes(const testing::TestVault& tv) {
  return CountIndexes(tv, "name = 'resource_versions_by_version'");
}

// A bulk load builds the lookups once at the end; it must find exactly what
// a row-by-row load finds, for every kind of parameter, and leave the vault
// with all its lookups.
TEST(ImporterTest, BulkLoadFindsExactlyWhatRowByRowLoadFinds) {
  phivault::testing::TempDir tmp_rows, tmp_bulk;
  auto rows = testing::TestVault::Create(tmp_rows);
  auto bulk = testing::TestVault::Create(tmp_bulk);
  ASSERT_TRUE(rows.vault && bulk.vault);
  const int lookups = SearchLookupIndexes(rows);
  ASSERT_GT(lookups, 0);
  const std::string file = WritePopulation(tmp_rows);
  for (auto* tv : {&rows, &bulk}) {
    ImportOptions opts;
    opts.batch_size = 37;
    opts.auditor = tv->vault->audit_trail();
    opts.bulk_load = tv == &bulk;
    auto summary = ImportFiles(tv->vault->store(), {file}, opts);
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    EXPECT_EQ(summary->loaded, 40 * 7);
  }
  EXPECT_EQ(SearchLookupIndexes(bulk), lookups);
  EXPECT_EQ(VersionIndexes(bulk), 1) << "rebuilt at the end of the load";

  const std::vector<std::pair<std::string, search::QueryPairs>> queries = {
      {"Patient", {{"family", "sm"}}},
      {"Patient", {{"family", "muller"}, {"_sort", "-birthdate"}}},
      {"Patient", {{"birthdate", "ge1970"}, {"birthdate", "lt1975-06"}}},
      {"Patient", {{"identifier", "urn:mrn|MRN17"}}},
      {"Observation", {{"code", "http://loinc.org|8867-4"}, {"date", "ge2018"}, {"_sort", "-date"}}},
      {"Observation", {{"subject", "Patient/p3"}}},
      {"Observation", {{"value-quantity", "gt70|http://unitsofmeasure.org|kg"}}},
      {"Observation", {{"_id", "o5-2"}}},
  };
  for (const auto& [type, params] : queries) {
    auto want = SearchIds(rows.vault->store(), type, params);
    EXPECT_FALSE(want.empty()) << type << " " << params[0].first;
    EXPECT_EQ(SearchIds(bulk.vault->store(), type, params), want) << type << " " << params[0].first;
  }
}

// A bulk load cut short (the process dies before EndBulkLoad) leaves rows
// without lookups; the next open builds them, and searches in between are
// still right.
// An imported Binary whose securityContext is already stored takes that
// resource's patient link, like a Binary written through the API.
TEST(ImporterTest, BinaryTakesTheLinkOfItsStoredSecurityContext) {
  phivault::testing::TempDir tmp;
  auto tv = testing::TestVault::Create(tmp);
  ASSERT_TRUE(tv.vault);
  ImportOptions opts;
  opts.auditor = tv.vault->audit_trail();
  const std::string first = tmp.Sub("first.ndjson"), second = tmp.Sub("second.ndjson");
  phivault::testing::WriteFile(first, R"({"resourceType":"Patient","id":"bx-p"})" "\n"
                                      R"({"resourceType":"DocumentReference","id":"bx-d","status":"current",)"
                                      R"("subject":{"reference":"Patient/bx-p"},"content":[{"attachment":{"url":"Binary/bx"}}]})" "\n");
  phivault::testing::WriteFile(second, R"({"resourceType":"Binary","id":"bx","contentType":"text/plain","data":"aGk=",)"
                                       R"("securityContext":{"reference":"DocumentReference/bx-d"}})" "\n");
  ASSERT_TRUE(ImportFiles(tv.vault->store(), {first}, opts).ok());
  ASSERT_TRUE(ImportFiles(tv.vault->store(), {second}, opts).ok());
  auto bin = tv.vault->store()->Read("Binary", "bx");
  ASSERT_TRUE(bin.ok()) << bin.status().ToString();
  EXPECT_EQ(bin->patients, std::vector<std::string>{"bx-p"});
}

TEST(ImporterTest, InterruptedBulkLoadIsIndexedAtNextOpen) {
  phivault::testing::TempDir tmp;
  auto tv = testing::TestVault::Create(tmp);
  ASSERT_TRUE(tv.vault);
  const int lookups = SearchLookupIndexes(tv);
  ASSERT_EQ(VersionIndexes(tv), 1);
  ASSERT_TRUE(tv.vault->store()->BeginBulkLoad().ok());
  EXPECT_EQ(SearchLookupIndexes(tv), 0);
  EXPECT_EQ(VersionIndexes(tv), 0) << "the (type, id, version) index waits for the end of the load";
  ImportOptions opts;
  opts.auditor = tv.vault->audit_trail();
  ASSERT_TRUE(ImportFiles(tv.vault->store(), {WritePopulation(tmp)}, opts).ok());
  const search::QueryPairs smiths = {{"family", "smith"}};
  EXPECT_EQ(SearchIds(tv.vault->store(), "Patient", smiths).size(), 8u);
  tv.vault.reset();  // no EndBulkLoad

  auto reopened = Vault::Open(tv.config);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(SearchLookupIndexes(tv), lookups);
  EXPECT_EQ(VersionIndexes(tv), 1);
  EXPECT_EQ(SearchIds((*reopened)->store(), "Patient", smiths).size(), 8u);
  auto v1 = (*reopened)->store()->ReadVersion("Observation", "o39-5", 1);
  EXPECT_TRUE(v1.ok()) << v1.status().ToString();
}

// An import that stops early (here: an unreadable second file) returns its
// error only once the first file's batches are back from the writer, which
// call into the importer's state.
TEST(ImporterTest, ImportStoppingEarlyWaitsForBatchesInFlight) {
  phivault::testing::TempDir tmp;
  auto tv = testing::TestVault::Create(tmp);
  ASSERT_TRUE(tv.vault);
  ImportOptions opts;
  opts.batch_size = 3;
  opts.max_in_flight = 8;
  opts.auditor = tv.vault->audit_trail();
  auto summary = ImportFiles(tv.vault->store(), {WritePopulation(tmp), tmp.Sub("missing.ndjson")}, opts);
  EXPECT_EQ(summary.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(tv.vault->store()->Read("Observation", "o39-5").ok());
}

// The last batch's completion runs on the store's writer thread while the
// importer waits to return: nothing of the importer's state (which lives on
// the caller's stack) may be touched after the wait can end. Many short
// imports make that hand-off frequent. A ThreadSanitizer build of this test
// reported the race on every run before the fix (a notify after the unlock
// against the state's destructor); ordinary builds only exercise it, since
// the window is a few instructions wide.
TEST(ImporterTest, ImportStateOutlivesItsLastCompletion) {
  phivault::testing::TempDir tmp;
  auto tv = testing::TestVault::Create(tmp);
  ASSERT_TRUE(tv.vault);
  ImportOptions opts;
  opts.batch_size = 1;
  opts.max_in_flight = 8;
  for (int round = 0; round < 150; ++round) {
    std::vector<boost::json::object> resources;
    for (int i = 0; i < 3; ++i) {
      resources.push_back(boost::json::parse(R"({"resourceType":"Patient","id":"r)" + std::to_string(round) + "-" +
                                             std::to_string(i) + R"("})")
                              .as_object());
    }
    auto summary = ImportResources(tv.vault->store(), std::move(resources), opts);
    ASSERT_TRUE(summary.ok()) << summary.status().ToString();
    ASSERT_EQ(summary->loaded, 3);
  }
  EXPECT_TRUE(tv.vault->store()->Read("Patient", "r149-2").ok());
}

TEST(ImporterTest, BulkLoadPaysForLargeLoadsRelativeToTheVault) {
  constexpr uint64_t kMB = 1u << 20;
  EXPECT_FALSE(BulkLoadPays(1 * kMB, 0));           // too small to matter
  EXPECT_TRUE(BulkLoadPays(100 * kMB, 0));          // into an empty vault
  EXPECT_TRUE(BulkLoadPays(100 * kMB, 400 * kMB));  // a quarter of its size
  EXPECT_FALSE(BulkLoadPays(100 * kMB, 401 * kMB));
}

}  // namespace
}  // namespace phivault::api
