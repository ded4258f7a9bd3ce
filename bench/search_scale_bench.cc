// Search at scale over realistic data: loads the NDJSON that
// `phivault-synth --patients N --seed S` wrote into a fresh vault through
// the importer (`phivault import`'s path: compartment links, write-time
// indexing, audited batches), then times the three queries of issue 5 with
// values taken from the loaded data:
//   1. Patient?family=<first 4 letters of a real family name>&birthdate=ge<that patient's birthDate>
//   2. Observation?patient=<id>&code=http://loinc.org|<a code that patient has>&date=ge<one of those
//      Observations' date>&_sort=-date&_count=50
//   3. Encounter?subject:Patient.identifier=<system|value of a patient with Encounters>
//      &_include=Encounter:participant
//   4. query 1 with the whole family name (about one match at any size)
// Each goes through FhirService in process with a system token (query
// parsing, chain resolution, per-hit authorization, includes, Bundle
// rendering) but without TLS/HTTP framing and without the audit append
// (bench/unaudited.h; audit_overhead_bench measures that part). Prints p50
// and p99 per query and machine-readable "RESULT key value" lines for
// bench/search_scale.sh.
//
// Index size: the pages of the search index tables and their indexes
// (sx_*), counted by SQLite's dbstat virtual table over a read-only
// connection through the encrypting VFS, divided by the resources loaded.
//
//   search_scale_bench FILE.ndjson   (PHIVAULT_SCALE_QUERIES=300 per query)
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json.hpp>

#include "api/access_control.h"
#include "api/fhir_service.h"
#include "api/importer.h"
#include "api/vault.h"
#include "auth/token_issuer.h"
#include "fhir/time.h"
#include "http/testing/call.h"
#include "store/encrypted_vfs.h"
#include "unaudited.h"

namespace phivault {
namespace {

using Clock = std::chrono::steady_clock;
namespace json = boost::json;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "search_scale_bench: %s\n", what.c_str());
  std::exit(1);
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.ToString());
}

std::string Str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

// "Patient/abc" (or an absolute URL ending so) -> "abc".
std::string PatientId(const json::value* ref) {
  if (!ref || !ref->is_object()) return "";
  std::string r = Str(ref->get_object(), "reference");
  size_t at = r.rfind("Patient/");
  return at == std::string::npos ? "" : r.substr(at + 8);
}

// Percent-encodes a query value.
std::string Enc(std::string_view v) {
  std::string out;
  for (unsigned char c : v) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// Query values drawn from the NDJSON. Observations and Encounters are kept
// for a sample of patients (one in `stride`, by a hash of the id) so that
// memory stays small at 10,000 patients.
struct Picks {
  struct PatientInfo {
    std::string family, birth_date, identifier;  // identifier: system|value
  };
  std::unordered_map<std::string, PatientInfo> patients;
  // (patient, LOINC code) -> the date of one such Observation.
  std::map<std::pair<std::string, std::string>, std::string> observations;
  std::map<std::string, int> encounters_with_participant;  // patient -> count
  int64_t lines = 0;
};

Picks ReadPicks(const std::string& path) {
  Picks p;
  std::ifstream in(path);
  if (!in) Die("cannot read " + path);
  std::string line;
  auto sampled = [](const std::string& id) { return std::hash<std::string>{}(id) % 8 == 0; };
  while (std::getline(in, line)) {
    ++p.lines;
    std::string_view head(line.data(), std::min<size_t>(line.size(), 48));
    bool patient = head.find("\"Patient\"") != std::string_view::npos;
    bool obs = head.find("\"Observation\"") != std::string_view::npos;
    bool enc = head.find("\"Encounter\"") != std::string_view::npos;
    if (!patient && !obs && !enc) continue;
    json::value v = json::parse(line);
    const json::object& o = v.as_object();
    std::string type = Str(o, "resourceType");
    if (type == "Patient") {
      Picks::PatientInfo info;
      info.birth_date = Str(o, "birthDate");
      if (const auto* names = o.if_contains("name"); names && names->is_array() && !names->get_array().empty()) {
        info.family = Str(names->get_array()[0].as_object(), "family");
      }
      // Prefer the medical record number (type MR), as a clinician would.
      if (const auto* ids = o.if_contains("identifier"); ids && ids->is_array()) {
        for (const auto& id : ids->get_array()) {
          const auto& io = id.as_object();
          std::string sv = Str(io, "system") + "|" + Str(io, "value");
          if (Str(io, "system").empty() || Str(io, "value").empty()) continue;
          bool mr = json::serialize(io).find("\"MR\"") != std::string::npos;
          if (info.identifier.empty() || mr) info.identifier = sv;
          if (mr) break;
        }
      }
      p.patients[Str(o, "id")] = std::move(info);
    } else if (type == "Observation") {
      std::string pid = PatientId(o.if_contains("subject"));
      if (pid.empty() || !sampled(pid)) continue;
      std::string date = Str(o, "effectiveDateTime");
      if (date.size() < 10) continue;
      const auto* code = o.if_contains("code");
      const auto* codings = code && code->is_object() ? code->get_object().if_contains("coding") : nullptr;
      if (!codings || !codings->is_array()) continue;
      for (const auto& c : codings->get_array()) {
        if (Str(c.as_object(), "system") == "http://loinc.org") {
          p.observations.emplace(std::pair{pid, Str(c.as_object(), "code")}, date.substr(0, 10));
        }
      }
    } else if (type == "Encounter") {
      std::string pid = PatientId(o.if_contains("subject"));
      if (pid.empty() || !sampled(pid)) continue;
      if (const auto* parts = o.if_contains("participant"); parts && parts->is_array() && !parts->get_array().empty()) {
        ++p.encounters_with_participant[pid];
      }
    }
  }
  return p;
}

// Bytes of the search index: every page of the sx_* tables and their
// indexes, from dbstat (page bytes, of which payload bytes; the rest is page
// headers, cell pointers and free space), and the rows of each table: the
// cells of all its pages, as the sx_* tables are WITHOUT ROWID (index
// B-trees, whose interior cells are entries too). REQUIRES: the store that registered the encrypting VFS
// is open in this process.
struct IndexSize {
  struct Btree {
    std::string name;
    int64_t bytes = 0, payload = 0, entries = 0;
  };
  int64_t bytes = 0, payload = 0, rows = 0;
  std::vector<Btree> btrees;
  int64_t current_versions_by_seq = 0;  // the seq -> id index search also uses
};

IndexSize MeasureIndex(const std::string& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, "phivault-encrypted") != SQLITE_OK) {
    Die("cannot open the vault database read-only");
  }
  Check(store::PrepareEncryptedDatabase(db), "prepare");
  IndexSize out;
  sqlite3_stmt* st = nullptr;
  const char* sql =
      "SELECT name, SUM(pgsize), SUM(payload), SUM(ncell) FROM dbstat "
      "WHERE name LIKE 'sx\\_%' ESCAPE '\\' OR name = 'current_versions_by_seq' GROUP BY name ORDER BY name";
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
    Die(std::string("dbstat is not available in this SQLite: ") + sqlite3_errmsg(db));
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    IndexSize::Btree b;
    b.name = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    b.bytes = sqlite3_column_int64(st, 1);
    b.payload = sqlite3_column_int64(st, 2);
    b.entries = sqlite3_column_int64(st, 3);
    if (b.name == "current_versions_by_seq") {
      out.current_versions_by_seq = b.bytes;
      continue;
    }
    out.bytes += b.bytes;
    out.payload += b.payload;
    // A table's rows are its own B-tree's cells; its lookup index holds the
    // same rows again.
    if (b.name.find("_lookup") == std::string::npos && b.name.find("_low") == std::string::npos &&
        b.name.find("_high") == std::string::npos) {
      out.rows += b.entries;
    }
    out.btrees.push_back(std::move(b));
  }
  sqlite3_finalize(st);
  sqlite3_close_v2(db);
  return out;
}

struct Timing {
  std::vector<double> ms;
  int64_t matches = 0, includes = 0;
};

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(static_cast<double>(v.size()) * p))];
}

int Main(int argc, char** argv) {
  if (argc != 2) Die("usage: search_scale_bench FILE.ndjson");
  const std::string ndjson = argv[1];
  int queries = 300;
  if (const char* e = std::getenv("PHIVAULT_SCALE_QUERIES")) queries = std::max(10, std::atoi(e));

  // PHIVAULT_SCALE_VAULT=DIR keeps the loaded vault in DIR and reuses it on
  // the next run (for EXPLAIN work without reloading); by default a
  // temporary vault is removed at the end.
  const char* keep = std::getenv("PHIVAULT_SCALE_VAULT");
  std::string dir = keep ? std::string(keep)
                         : std::string(std::filesystem::temp_directory_path() /
                                       ("phivault-scale-bench-" + std::to_string(::getpid())));
  const bool reuse = keep && std::filesystem::exists(dir + "/data/vault.db");
  if (!reuse) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    Check(crypto::GenerateKeyFile(dir + "/master.key"), "key");
  }
  api::VaultConfig cfg{dir + "/data", {}};
  cfg.key.key_file = dir + "/master.key";
  if (!reuse) Check(api::Vault::Init(cfg), "init");
  auto vault = std::move(api::Vault::Open(cfg)).value();

  Picks picks = ReadPicks(ndjson);
  int64_t resources = picks.lines;
  double load_s = 0;
  if (!reuse) {
    auto t0 = Clock::now();
    api::ImportOptions io;
    io.auditor = vault->audit_trail();
    auto imported = api::ImportFiles(vault->store(), {ndjson}, io);
    Check(imported.status(), "import");
    load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    resources = imported->loaded;
    std::printf("loaded %lld resources (%lld rejected) in %.1f s = %.0f resources/s (import with indexing, "
                "audited)\n",
                static_cast<long long>(resources), static_cast<long long>(imported->rejected), load_s,
                static_cast<double>(resources) / load_s);
  }
  std::printf("query values from %lld lines: %zu patients, %zu (patient, code) pairs, %zu patients with "
              "encounters\n",
              static_cast<long long>(picks.lines), picks.patients.size(), picks.observations.size(),
              picks.encounters_with_participant.size());

  IndexSize index = MeasureIndex(cfg.data_dir + "/vault.db");
  const double per = 1.0 / static_cast<double>(resources);
  std::printf("search index (dbstat, sx_* tables and their indexes): %.1f MB = %.0f bytes/resource in pages, "
              "%.0f bytes/resource of payload; %.1f index rows/resource; current_versions_by_seq %.1f MB more\n",
              static_cast<double>(index.bytes) / 1e6, static_cast<double>(index.bytes) * per,
              static_cast<double>(index.payload) * per, static_cast<double>(index.rows) * per,
              static_cast<double>(index.current_versions_by_seq) / 1e6);
  for (const auto& b : index.btrees) {
    std::printf("  %-18s %8.1f MB %6.0f bytes/resource (payload %5.0f) %10lld entries\n", b.name.c_str(),
                static_cast<double>(b.bytes) / 1e6, static_cast<double>(b.bytes) * per,
                static_cast<double>(b.payload) * per, static_cast<long long>(b.entries));
  }
  auto stats = vault->store()->Stats();
  std::printf("vault.db and WAL: %.1f MB = %.0f bytes/resource\n", static_cast<double>(stats.file_bytes) / 1e6,
              static_cast<double>(stats.file_bytes) / static_cast<double>(resources));

  // The service as the server runs it, minus the audit append.
  api::AccessConfig ac;
  ac.builtin_issuer = "https://vault.bench";
  ac.builtin_audience = "https://vault.bench/fhir";
  auto access = std::move(api::AccessControl::Create(ac, vault->keyring(), vault->store(), nullptr)).value();
  auto issuer = std::move(auth::TokenIssuer::Create(vault->keyring().Key(crypto::KeyPurpose::kTokenSign),
                                                    {ac.builtin_issuer, ac.builtin_audience}))
                    .value();
  std::string token = issuer->Issue({"bench", "system/*.rs", "", "system", {}}, fhir::NowMillis() / 1000)->token;
  bench::UnauditedForBenchmarks unaudited(vault->store());
  api::ServiceOptions so;
  so.base_url = "https://vault.bench";
  so.keyring = &vault->keyring();
  auto service = std::make_unique<api::FhirService>(vault->store(), access.get(), &unaudited, so);

  auto call = [&](const std::string& target, Timing& t) {
    http::HttpRequest req = http::testing::MakeRequest("GET", target, token);
    auto start = Clock::now();
    auto r = http::testing::CallHandler(*service, std::move(req));
    t.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (r.status != 200) Die("query failed with " + std::to_string(r.status) + ": " + r.body.substr(0, 300));
    for (size_t pos = r.body.find(R"("mode":"match")"); pos != std::string::npos;
         pos = r.body.find(R"("mode":"match")", pos + 1)) {
      ++t.matches;
    }
    for (size_t pos = r.body.find(R"("mode":"include")"); pos != std::string::npos;
         pos = r.body.find(R"("mode":"include")", pos + 1)) {
      ++t.includes;
    }
  };

  // Deterministic draws (the same data gives the same queries).
  std::vector<std::string> patient_ids;
  for (const auto& [id, info] : picks.patients) {
    if (info.family.size() >= 4 && info.birth_date.size() == 10) patient_ids.push_back(id);
  }
  std::sort(patient_ids.begin(), patient_ids.end());
  std::vector<std::pair<std::pair<std::string, std::string>, std::string>> obs(picks.observations.begin(),
                                                                                picks.observations.end());
  std::vector<std::string> enc_patients;
  for (const auto& [id, n] : picks.encounters_with_participant) {
    auto it = picks.patients.find(id);
    if (it != picks.patients.end() && !it->second.identifier.empty()) enc_patients.push_back(id);
  }
  if (patient_ids.empty() || obs.empty() || enc_patients.empty()) Die("the data has nothing to query");
  uint64_t rng = 0x9E3779B97F4A7C15ull;
  auto draw = [&](size_t n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<size_t>((rng >> 33) % n);
  };

  struct Query {
    const char* name;
    std::function<std::string()> make;
    Timing t;
  };
  std::vector<Query> qs;
  qs.push_back({"Patient?family=<4-letter prefix>&birthdate=ge<its birthDate>", [&] {
                  const auto& info = picks.patients[patient_ids[draw(patient_ids.size())]];
                  return "/fhir/Patient?family=" + Enc(info.family.substr(0, 4)) + "&birthdate=ge" + info.birth_date;
                }, {}});
  qs.push_back({"Observation?patient=X&code=loinc|Y&date=ge..&_sort=-date&_count=50", [&] {
                  const auto& [pc, date] = obs[draw(obs.size())];
                  return "/fhir/Observation?patient=" + Enc(pc.first) + "&code=" + Enc("http://loinc.org|" + pc.second) +
                         "&date=ge" + date + "&_sort=-date&_count=50";
                }, {}});
  qs.push_back({"Encounter?subject:Patient.identifier=S|V&_include=Encounter:participant", [&] {
                  const auto& info = picks.patients[enc_patients[draw(enc_patients.size())]];
                  return "/fhir/Encounter?subject:Patient.identifier=" + Enc(info.identifier) +
                         "&_include=Encounter:participant";
                }, {}});
  // The first query again with the whole family name: about one match at
  // any population, so its growth is the index's alone (the prefix query's
  // matches grow with the population, and each match is read, decrypted,
  // authorized and rendered).
  qs.push_back({"Patient?family=<whole family name>&birthdate=ge<its birthDate>", [&] {
                  const auto& info = picks.patients[patient_ids[draw(patient_ids.size())]];
                  return "/fhir/Patient?family=" + Enc(info.family) + "&birthdate=ge" + info.birth_date;
                }, {}});
  // Warm-up (not timed): the first queries fault pages in.
  for (auto& q : qs) {
    Timing ignore;
    for (int i = 0; i < 20; ++i) call(q.make(), ignore);
  }
  // Interleaved so that a slow moment of the shared machine hits all alike.
  for (int i = 0; i < queries; ++i) {
    for (auto& q : qs) call(q.make(), q.t);
  }
  std::printf("\n%-72s %9s %9s %9s %9s\n", "query (in process, authorized, not audited)", "p50 ms", "p99 ms",
              "matches", "includes");
  int k = 0;
  for (auto& q : qs) {
    ++k;
    double n = static_cast<double>(q.t.ms.size());
    std::printf("%-72s %9.3f %9.3f %9.1f %9.1f\n", q.name, Pct(q.t.ms, 0.5), Pct(q.t.ms, 0.99),
                static_cast<double>(q.t.matches) / n, static_cast<double>(q.t.includes) / n);
    std::printf("RESULT q%d_p50_ms %.3f\nRESULT q%d_p99_ms %.3f\nRESULT q%d_matches %.1f\n", k, Pct(q.t.ms, 0.5), k,
                Pct(q.t.ms, 0.99), k, static_cast<double>(q.t.matches) / n);
  }
  std::printf("RESULT patients %zu\nRESULT resources %lld\nRESULT index_bytes_per_resource %.0f\n"
              "RESULT index_payload_per_resource %.0f\nRESULT index_rows_per_resource %.1f\n"
              "RESULT load_resources_per_s %.0f\n",
              picks.patients.size(), static_cast<long long>(resources), static_cast<double>(index.bytes) * per,
              static_cast<double>(index.payload) * per, static_cast<double>(index.rows) * per,
              load_s > 0 ? static_cast<double>(resources) / load_s : 0.0);
  service.reset();
  access.reset();
  vault.reset();
  if (!keep) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace phivault

int main(int argc, char** argv) { return phivault::Main(argc, argv); }
