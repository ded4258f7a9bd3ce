// Fuzzes FHIR search parameter parsing (search/query.h) and the SQL the
// SQLite engine builds from every accepted query (store/sqlite_search.h):
// any query string must be accepted or rejected cleanly, and an accepted
// one must always translate into SQL that prepares and runs (an engine
// error other than InvalidArgument is a bug). The raw query string is also
// folded (search::FoldString, which every string value goes through): any
// bytes must fold without crashing, and folding its output again must change
// nothing (so the output is valid UTF-8). Input: byte 0 picks the
// resource type and lenient handling, the rest is a query string
// "a=b&c=d" (not percent-decoded; the HTTP layer does that).
#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "search/index_values.h"
#include "search/query.h"
#include "store/sqlite_search.h"

namespace {

sqlite3* Db() {
  static sqlite3* db = [] {
    sqlite3* d = nullptr;
    if (sqlite3_open(":memory:", &d) != SQLITE_OK) std::abort();
    const char* base =
        "CREATE TABLE resource_versions(seq INTEGER PRIMARY KEY, type TEXT, id TEXT, version INTEGER,"
        " last_updated INTEGER, deleted INTEGER);"
        "CREATE TABLE current_versions(type TEXT, id TEXT, version INTEGER, deleted INTEGER, seq INTEGER,"
        " PRIMARY KEY(type, id)) WITHOUT ROWID;";
    if (sqlite3_exec(d, base, nullptr, nullptr, nullptr) != SQLITE_OK) std::abort();
    if (sqlite3_exec(d, phivault::store::sqlite_search::kIndexSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
      std::abort();
    }
    return d;
  }();
  return db;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace phivault;
  if (size < 1 || size > 4096) return 0;
  static constexpr const char* kTypes[] = {"Patient", "Observation", "Encounter", "ValueSet", "RiskAssessment",
                                           "MedicationRequest", "Condition", "Practitioner"};
  const char* type = kTypes[data[0] % 8];
  std::string_view qs(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string folded = search::FoldString(qs);
  if (search::FoldString(folded) != folded) std::abort();
  search::QueryPairs pairs;
  while (!qs.empty()) {
    size_t amp = qs.find('&');
    std::string_view part = qs.substr(0, amp);
    size_t eq = part.find('=');
    pairs.emplace_back(std::string(part.substr(0, eq)),
                       eq == std::string_view::npos ? std::string() : std::string(part.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    qs.remove_prefix(amp + 1);
  }
  search::SearchParseOptions o;
  o.lenient = (data[0] & 0x80) != 0;
  o.base_url = "https://vault.example";
  o.now_ms = 1700000000000;
  auto req = search::ParseSearch(type, pairs, o);
  if (!req.ok()) {
    // Lenient handling skips what it cannot apply (up to the parameter limit).
    if (o.lenient && pairs.size() <= 64) std::abort();
    return 0;
  }
  auto matches = store::sqlite_search::FindMatches(Db(), req->query, 10);
  if (!matches.ok() && matches.status().code() != StatusCode::kInvalidArgument) std::abort();
  return 0;
}
