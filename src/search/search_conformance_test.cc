// Conformance of search (parser + real SqliteStore index) with the FHIR R4
// search specification (http://hl7.org/fhir/R4/search.html). Each
// expectation is written from the specification's rule, cited beside it,
// not from what the implementation happens to return.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <boost/json.hpp>
#include <filesystem>
#include <set>

#include "common/testing/temp_dir.h"
#include "crypto/keyring.h"
#include "fhir/time.h"
#include "search/index_values.h"
#include "search/query.h"
#include "store/sqlite_store.h"

namespace phivault::search {
namespace {

using store::WriteOp;

constexpr const char* kBase = "https://vault.example.org";

class SearchConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string key = tmp_.Sub("master.key");
    ASSERT_TRUE(crypto::GenerateKeyFile(key).ok());
    data_ = tmp_.Sub("data");
    std::filesystem::create_directories(data_);
    crypto::MasterKeySource src;
    src.key_file = key;
    auto kr = crypto::Keyring::Create(data_, src);
    ASSERT_TRUE(kr.ok());
    keyring_ = std::move(*kr);
    Open(true);
    Seed();
  }

  void Open(bool create) {
    if (store_) store_->Close();
    store_.reset();
    store::SqliteStoreOptions o;
    o.data_dir = data_;
    o.create = create;
    auto s = store::OpenSqliteStore(o, keyring_.get());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  void Put(const std::string& type, const std::string& id, const std::string& json) {
    WriteOp op;
    op.kind = WriteOp::Kind::kPut;
    op.type = type;
    op.id = id;
    op.resource = boost::json::parse(json).as_object();
    std::vector<WriteOp> ops;
    ops.push_back(std::move(op));
    auto out = store_->CommitAndWait(std::move(ops), true);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  }

  void Delete(const std::string& type, const std::string& id) {
    WriteOp op;
    op.kind = WriteOp::Kind::kDelete;
    op.type = type;
    op.id = id;
    std::vector<WriteOp> ops;
    ops.push_back(std::move(op));
    ASSERT_TRUE(store_->CommitAndWait(std::move(ops), true).status.ok());
  }

  void Seed() {
    Put("Patient", "smith", R"({"resourceType":"Patient","name":[{"family":"Smith","given":["John"]}],
        "gender":"male","birthDate":"1980-05-17",
        "identifier":[{"system":"urn:mrn","value":"111","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]}}],
        "meta":{"tag":[{"system":"urn:tags","code":"vip"}],"profile":["http://example.org/StructureDefinition/p"]}})");
    Put("Patient", "smithson", R"({"resourceType":"Patient","name":[{"family":"Smithson","given":["Ann"]}],
        "gender":"female","birthDate":"1975",
        "identifier":[{"system":"urn:other","value":"111"}]})");
    Put("Patient", "muller", R"({"resourceType":"Patient","name":[{"family":"Müller","given":["Jörg"]}],
        "gender":"male","birthDate":"1990-01-01"})");
    Put("Patient", "astrom", R"({"resourceType":"Patient","name":[{"family":"ÅSTRÖM"}],"gender":"female"})");
    Put("Observation", "o1", R"({"resourceType":"Observation","status":"final",
        "code":{"coding":[{"system":"http://loinc.org","code":"1234-5","display":"Glucose"}]},
        "subject":{"reference":"Patient/smith"},"effectiveDateTime":"2024-03-05T10:30:00+02:00",
        "valueQuantity":{"value":5.4,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}})");
    Put("Observation", "o2", R"({"resourceType":"Observation","status":"final",
        "code":{"coding":[{"system":"http://other.org","code":"1234-5"}],"text":"Sugar level"},
        "subject":{"reference":"Patient/muller"},"effectiveDateTime":"2024-03-06",
        "valueQuantity":{"value":100,"unit":"mg/dL","system":"http://unitsofmeasure.org","code":"mg/dL"}})");
    Put("Observation", "o3", R"({"resourceType":"Observation","status":"preliminary",
        "code":{"coding":[{"code":"1234-5"}]},
        "subject":{"reference":"https://vault.example.org/fhir/Patient/smithson"},
        "effectivePeriod":{"start":"2024-01-01","end":"2024-01-31"}})");
    Put("Observation", "o4", R"({"resourceType":"Observation","status":"final",
        "code":{"text":"free text only"},"subject":{"reference":"Patient/smith"}})");
    Put("RiskAssessment", "r1", R"({"resourceType":"RiskAssessment","status":"final",
        "subject":{"reference":"Patient/smith"},"prediction":[{"probabilityDecimal":0.25}]})");
    Put("ValueSet", "vs", R"({"resourceType":"ValueSet","status":"active","url":"http://ex.org/vs/a"})");
  }

  // Runs a query string ("a=b&c=d", no percent-decoding) to completion,
  // following positions page by page; the ids in result order.
  std::vector<std::string> Run(const std::string& type, const std::string& qs, int page = 2) {
    auto req = Parse(type, qs);
    if (!req.ok()) {
      ADD_FAILURE() << "parse failed: " << qs << ": " << req.status().ToString();
      return {};
    }
    req->query.count = page;
    std::vector<std::string> ids;
    for (int guard = 0; guard < 100; ++guard) {
      auto p = store_->Search(req->query);
      if (!p.ok()) {
        ADD_FAILURE() << qs << ": " << p.status().ToString();
        return ids;
      }
      for (const auto& h : p->hits) ids.push_back(h.version.id);
      if (!p->more) break;
      req->query.after = p->hits.back().position;
    }
    return ids;
  }
  std::set<std::string> Set(const std::string& type, const std::string& qs) {
    auto v = Run(type, qs);
    return {v.begin(), v.end()};
  }
  StatusOr<SearchRequest> Parse(const std::string& type, const std::string& qs, bool lenient = false) {
    QueryPairs pairs;
    size_t start = 0;
    while (start <= qs.size() && !qs.empty()) {
      size_t amp = qs.find('&', start);
      std::string part = qs.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      size_t eq = part.find('=');
      pairs.emplace_back(part.substr(0, eq), eq == std::string::npos ? "" : part.substr(eq + 1));
      if (amp == std::string::npos) break;
      start = amp + 1;
    }
    SearchParseOptions o;
    o.base_url = kBase;
    o.now_ms = fhir::NowMillis();
    o.lenient = lenient;
    return ParseSearch(type, pairs, o);
  }

  using S = std::set<std::string>;
  phivault::testing::TempDir tmp_;
  std::string data_;
  std::unique_ptr<crypto::Keyring> keyring_;
  std::unique_ptr<store::ResourceStore> store_;
};

// 3.1.1.4.13 string: "starts with", case- and accent-insensitive by default.
TEST_F(SearchConformanceTest, StringDefaultIsFoldedStartsWith) {
  EXPECT_EQ(Set("Patient", "family=smi"), (S{"smith", "smithson"}));
  EXPECT_EQ(Set("Patient", "family=SMITH"), (S{"smith", "smithson"}));
  EXPECT_EQ(Set("Patient", "family=muller"), (S{"muller"}));     // ü folds to u
  EXPECT_EQ(Set("Patient", "family=MÜLL"), (S{"muller"}));       // unicode upper case
  EXPECT_EQ(Set("Patient", "family=aström"), (S{"astrom"}));     // Å, Ö fold
  EXPECT_EQ(Set("Patient", "family=mith"), S{});                 // not a substring match
  EXPECT_EQ(Set("Patient", "name=jorg"), (S{"muller"}));         // name covers given
}

// The same rule beyond Latin: case folding and accent removal in every script
// (FoldString), for the stored value and the query alike.
TEST_F(SearchConformanceTest, StringDefaultFoldsEveryScript) {
  Put("Patient", "olga", R"({"resourceType":"Patient","name":[{"family":"Ольга","given":["Ёлкина"]}]})");
  Put("Patient", "nguyen", R"({"resourceType":"Patient","name":[{"family":"Nguyễn","given":["Văn Đức"]}]})");
  Put("Patient", "sofos", R"({"resourceType":"Patient","name":[{"family":"ΣΟΦΟΣ"}]})");
  Put("Patient", "yamada", R"({"resourceType":"Patient","name":[{"family":"山田","given":["太郎"]}]})");
  EXPECT_EQ(Set("Patient", "family=ольга"), (S{"olga"}));
  EXPECT_EQ(Set("Patient", "family=ОЛЬ"), (S{"olga"}));
  EXPECT_EQ(Set("Patient", "given=елкина"), (S{"olga"}));      // Ё folds to е
  EXPECT_EQ(Set("Patient", "family=nguyen"), (S{"nguyen"}));    // ễ: two marks
  EXPECT_EQ(Set("Patient", "family=NGUYỄN"), (S{"nguyen"}));
  EXPECT_EQ(Set("Patient", "given=van duc"), (S{"nguyen"}));    // Đ folds to d
  EXPECT_EQ(Set("Patient", "family=σοφος"), (S{"sofos"}));      // final sigma
  EXPECT_EQ(Set("Patient", "family=Σοφ"), (S{"sofos"}));
  EXPECT_EQ(Set("Patient", "family=山"), (S{"yamada"}));
  EXPECT_EQ(Set("Patient", "family=ольга&given=ёл"), (S{"olga"}));
  EXPECT_EQ(Set("Patient", "family:exact=ольга"), S{});         // :exact still compares as stored
  EXPECT_EQ(Set("Patient", "family:contains=ГА"), (S{"olga"}));
  EXPECT_EQ(Set("Patient", "name=nguye\u0302\u0303n"), (S{"nguyen"}));  // a decomposed query
}

// :exact is case- and accent-sensitive whole-string; :contains anywhere.
TEST_F(SearchConformanceTest, StringExactAndContains) {
  EXPECT_EQ(Set("Patient", "family:exact=Smith"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "family:exact=smith"), S{});
  EXPECT_EQ(Set("Patient", "family:exact=Müller"), (S{"muller"}));
  EXPECT_EQ(Set("Patient", "family:exact=Muller"), S{});
  EXPECT_EQ(Set("Patient", "family:contains=ITH"), (S{"smith", "smithson"}));
  EXPECT_EQ(Set("Patient", "family:contains=ll"), (S{"muller"}));
}

// Comma = OR within a parameter; repeated parameters AND.
TEST_F(SearchConformanceTest, CommaIsOrRepetitionIsAnd) {
  EXPECT_EQ(Set("Patient", "family=muller,astrom"), (S{"muller", "astrom"}));
  EXPECT_EQ(Set("Patient", "family=smi&gender=female"), (S{"smithson"}));
  EXPECT_EQ(Set("Patient", "family=smi&family=smithson"), (S{"smithson"}));
}

// 3.1.1.4.10 token: [code], [system]|[code], |[code], [system]|.
TEST_F(SearchConformanceTest, TokenSystemRules) {
  EXPECT_EQ(Set("Observation", "code=1234-5"), (S{"o1", "o2", "o3"}));
  EXPECT_EQ(Set("Observation", "code=http://loinc.org|1234-5"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "code=|1234-5"), (S{"o3"}));  // no system
  EXPECT_EQ(Set("Observation", "code=http://other.org|"), (S{"o2"}));
  EXPECT_EQ(Set("Observation", "code=http://loinc.org|9999-9"), S{});
  EXPECT_EQ(Set("Patient", "identifier=urn:mrn|111"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "identifier=111"), (S{"smith", "smithson"}));
  EXPECT_EQ(Set("Patient", "gender=female"), (S{"smithson", "astrom"}));
}

// :not matches resources without the code, including those with no value;
// :text matches display / CodeableConcept.text; :of-type for identifiers.
TEST_F(SearchConformanceTest, TokenModifiers) {
  EXPECT_EQ(Set("Observation", "code:not=http://loinc.org|1234-5"), (S{"o2", "o3", "o4"}));
  EXPECT_EQ(Set("Observation", "code:text=gluc"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "code:text=SUGAR"), (S{"o2"}));
  EXPECT_EQ(Set("Observation", "code:text=free"), (S{"o4"}));
  EXPECT_EQ(Set("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|111"),
            (S{"smith"}));
  EXPECT_EQ(Set("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|222"), S{});
}

// 3.1.1.4.11 reference: Type/id, id, absolute URL; :Type; chaining; _has.
TEST_F(SearchConformanceTest, References) {
  EXPECT_EQ(Set("Observation", "subject=Patient/smith"), (S{"o1", "o4"}));
  EXPECT_EQ(Set("Observation", "subject=smith"), (S{"o1", "o4"}));
  EXPECT_EQ(Set("Observation", "subject:Patient=smith"), (S{"o1", "o4"}));
  EXPECT_EQ(Set("Observation", "patient=smithson"), (S{"o3"}));  // stored as an absolute URL to this vault
  EXPECT_EQ(Set("Observation", std::string("subject=") + kBase + "/fhir/Patient/muller"), (S{"o2"}));
  EXPECT_EQ(Set("Observation", "subject=Patient/smith/_history/3"), (S{"o1", "o4"}));
  EXPECT_EQ(Set("Observation", "subject:Patient.family=smi"), (S{"o1", "o3", "o4"}));
  EXPECT_EQ(Set("Observation", "patient.gender=male&code=http://loinc.org|1234-5"), (S{"o1"}));
  EXPECT_EQ(Set("Patient", "_has:Observation:patient:code=1234-5"), (S{"smith", "muller", "smithson"}));
  EXPECT_EQ(Set("Patient", "_has:Observation:patient:code=http://other.org|1234-5"), (S{"muller"}));
  EXPECT_EQ(Set("Patient", "_has:Observation:patient:status=preliminary"), (S{"smithson"}));
}

// 3.1.1.4.2 date: the value's precision is an implicit range; prefixes
// compare ranges (eq contains, gt/lt above/below, sa/eb start after / end
// before). birthDate 1980-05-17 is the range [1980-05-17, 1980-05-18).
TEST_F(SearchConformanceTest, DatePrecisionAndPrefixes) {
  EXPECT_EQ(Set("Patient", "birthdate=1980"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "birthdate=1980-05"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "birthdate=1980-05-17"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "birthdate=1980-05-18"), S{});
  // birthDate 1975 is the whole year: a day inside it does not contain it.
  EXPECT_EQ(Set("Patient", "birthdate=1975-06-01"), S{});
  EXPECT_EQ(Set("Patient", "birthdate=ge1980-05-17"), (S{"smith", "muller"}));
  EXPECT_EQ(Set("Patient", "birthdate=gt1980-05-17"), (S{"muller"}));
  EXPECT_EQ(Set("Patient", "birthdate=le1980-05-17"), (S{"smith", "smithson"}));
  EXPECT_EQ(Set("Patient", "birthdate=lt1980-05-17"), (S{"smithson"}));
  EXPECT_EQ(Set("Patient", "birthdate=ne1980-05-17"), (S{"smithson", "muller"}));
  EXPECT_EQ(Set("Patient", "birthdate=sa1980-05-16"), (S{"smith", "muller"}));
  EXPECT_EQ(Set("Patient", "birthdate=eb1980-05-18"), (S{"smith", "smithson"}));
  // ap: +-10% of the distance from now (about 4.6 years here), so the
  // 1975 birth year overlaps too.
  EXPECT_EQ(Set("Patient", "birthdate=ap1980-05-10"), (S{"smith", "smithson"}));
  EXPECT_EQ(Set("Patient", "birthdate=ap1990-01-03"), (S{"muller"}));
  EXPECT_EQ(Set("Patient", "birthdate=ge1980&birthdate=lt1991"), (S{"smith", "muller"}));
}

// Timezones: 2024-03-05T10:30:00+02:00 is 08:30:00Z; values without a zone
// are taken as UTC (documented choice).
TEST_F(SearchConformanceTest, DateTimezones) {
  EXPECT_EQ(Set("Observation", "date=2024-03-05T08:30:00Z"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "date=2024-03-05T10:30:00+02:00"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "date=2024-03-05T03:30:00-05:00"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "date=lt2024-03-05T09:00:00Z"), (S{"o1", "o3"}));
  EXPECT_EQ(Set("Observation", "date=gt2024-03-05T09:00:00Z"), (S{"o2"}));
  EXPECT_EQ(Set("Observation", "date=2024-03"), (S{"o1", "o2"}));
  // A Period is a range: the January period is inside 2024 but not inside
  // one day of it, and it overlaps ge2024-01-15 only through its end.
  EXPECT_EQ(Set("Observation", "date=2024"), (S{"o1", "o2", "o3"}));
  EXPECT_EQ(Set("Observation", "date=2024-01-15"), S{});
  EXPECT_EQ(Set("Observation", "date=ge2024-01-15"), (S{"o1", "o2", "o3"}));
  EXPECT_EQ(Set("Observation", "date=sa2024-01-15"), (S{"o1", "o2"}));
}

// 3.1.1.4.9 number / 3.1.1.4.12 quantity: implied precision, prefixes,
// number|system|code and number||unit.
TEST_F(SearchConformanceTest, NumbersAndQuantities) {
  EXPECT_EQ(Set("RiskAssessment", "probability=0.25"), (S{"r1"}));
  EXPECT_EQ(Set("RiskAssessment", "probability=0.3"), (S{"r1"}));  // [0.25, 0.35) includes 0.25
  EXPECT_EQ(Set("RiskAssessment", "probability=0.4"), S{});
  EXPECT_EQ(Set("RiskAssessment", "probability=0.2"), S{});      // [0.15, 0.25) excludes 0.25
  EXPECT_EQ(Set("RiskAssessment", "probability=gt0.2"), (S{"r1"}));
  EXPECT_EQ(Set("RiskAssessment", "probability=le0.25"), (S{"r1"}));
  EXPECT_EQ(Set("RiskAssessment", "probability=lt0.25"), S{});
  EXPECT_EQ(Set("RiskAssessment", "probability=ap0.27"), (S{"r1"}));
  EXPECT_EQ(Set("Observation", "value-quantity=5.4"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "value-quantity=5.40"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "value-quantity=5.5"), S{});
  EXPECT_EQ(Set("Observation", "value-quantity=1e2"), (S{"o2"}));  // [50, 150)
  EXPECT_EQ(Set("Observation", "value-quantity=gt5"), (S{"o1", "o2"}));
  EXPECT_EQ(Set("Observation", "value-quantity=gt5|http://unitsofmeasure.org|mmol/L"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "value-quantity=5.4||mmol/L"), (S{"o1"}));
  EXPECT_EQ(Set("Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg/dL"), S{});
  EXPECT_EQ(Set("Observation", "value-quantity=ne100"), (S{"o1"}));
}

TEST_F(SearchConformanceTest, UriModifiers) {
  EXPECT_EQ(Set("ValueSet", "url=http://ex.org/vs/a"), (S{"vs"}));
  EXPECT_EQ(Set("ValueSet", "url=http://ex.org/vs"), S{});
  EXPECT_EQ(Set("ValueSet", "url:below=http://ex.org/vs"), (S{"vs"}));
  EXPECT_EQ(Set("ValueSet", "url:above=http://ex.org/vs/a/b"), (S{"vs"}));
  EXPECT_EQ(Set("ValueSet", "url:above=http://ex.org/other"), S{});
}

// :missing and the common parameters.
TEST_F(SearchConformanceTest, MissingAndCommonParameters) {
  EXPECT_EQ(Set("Patient", "birthdate:missing=true"), (S{"astrom"}));
  EXPECT_EQ(Set("Patient", "birthdate:missing=false"), (S{"smith", "smithson", "muller"}));
  EXPECT_EQ(Set("Observation", "value-quantity:missing=true"), (S{"o3", "o4"}));
  EXPECT_EQ(Set("Patient", "_id=smith,muller"), (S{"smith", "muller"}));
  EXPECT_EQ(Set("Patient", "_tag=urn:tags|vip"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "_profile=http://example.org/StructureDefinition/p"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "_lastUpdated=gt2000-01-01"), (S{"smith", "smithson", "muller", "astrom"}));
  EXPECT_EQ(Set("Patient", "_lastUpdated=lt2000-01-01"), S{});
}

// _sort: several keys, '-' descending, missing values last; the id breaks
// ties; paging through positions yields each match exactly once.
TEST_F(SearchConformanceTest, SortAndPaging) {
  EXPECT_EQ(Run("Patient", "_sort=family"), (std::vector<std::string>{"astrom", "muller", "smith", "smithson"}));
  EXPECT_EQ(Run("Patient", "_sort=-family"), (std::vector<std::string>{"smithson", "smith", "muller", "astrom"}));
  EXPECT_EQ(Run("Patient", "_sort=birthdate"), (std::vector<std::string>{"smithson", "smith", "muller", "astrom"}));
  EXPECT_EQ(Run("Patient", "_sort=-birthdate", 1), (std::vector<std::string>{"muller", "smith", "smithson", "astrom"}));
  EXPECT_EQ(Run("Patient", "_sort=gender,-family", 3),
            (std::vector<std::string>{"smithson", "astrom", "smith", "muller"}));
  EXPECT_EQ(Run("Patient", "", 1), (std::vector<std::string>{"astrom", "muller", "smith", "smithson"}));
}

// Backwards from a page's first hit gives the previous page, in forward
// order, also across missing sort values (which sort last).
TEST_F(SearchConformanceTest, PagingBackwards) {
  for (const auto& [qs, expect] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"_sort=family", {"astrom", "muller", "smith", "smithson"}},
           {"_sort=-birthdate", {"muller", "smith", "smithson", "astrom"}},
           {"_sort=gender,-family", {"smithson", "astrom", "smith", "muller"}},
           {"", {"astrom", "muller", "smith", "smithson"}}}) {
    auto req = Parse("Patient", qs);
    ASSERT_TRUE(req.ok());
    req->query.count = 10;
    auto all = store_->Search(req->query);
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all->hits.size(), 4u) << qs;
    for (size_t from = 1; from < 4; ++from) {
      req->query.backward = true;
      req->query.after = all->hits[from].position;
      req->query.count = 2;
      auto prev = store_->Search(req->query);
      ASSERT_TRUE(prev.ok()) << prev.status().ToString();
      std::vector<std::string> ids;
      for (const auto& h : prev->hits) ids.push_back(h.version.id);
      std::vector<std::string> want(expect.begin() + static_cast<long>(from >= 2 ? from - 2 : 0),
                                    expect.begin() + static_cast<long>(from));
      EXPECT_EQ(ids, want) << qs << " from " << from;
      EXPECT_EQ(prev->more, from > 2) << qs << " from " << from;
    }
  }
}

// A position stays valid while other resources are written: a page taken
// before an insert continues after it without repeats or gaps.
TEST_F(SearchConformanceTest, PositionsStayStableAcrossWrites) {
  auto req = Parse("Patient", "_sort=family");
  ASSERT_TRUE(req.ok());
  req->query.count = 2;
  auto p1 = store_->Search(req->query);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->hits.size(), 2u);  // astrom, muller
  Put("Patient", "aaron", R"({"resourceType":"Patient","name":[{"family":"Aaron"}]})");   // sorts before the cursor
  Put("Patient", "zeta", R"({"resourceType":"Patient","name":[{"family":"Zeta"}]})");     // sorts after it
  Put("Patient", "smith", R"({"resourceType":"Patient","name":[{"family":"Smith"}],"gender":"male"})");  // updated
  req->query.after = p1->hits.back().position;
  req->query.count = 10;
  auto p2 = store_->Search(req->query);
  ASSERT_TRUE(p2.ok());
  std::vector<std::string> ids;
  for (const auto& h : p2->hits) ids.push_back(h.version.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"smith", "smithson", "zeta"}));
}

// Index maintenance: an update replaces the old values, a delete removes
// the resource from every result.
TEST_F(SearchConformanceTest, UpdatesAndDeletesMaintainTheIndex) {
  Put("Patient", "smith", R"({"resourceType":"Patient","name":[{"family":"Jones"}]})");
  EXPECT_EQ(Set("Patient", "family=smi"), (S{"smithson"}));
  EXPECT_EQ(Set("Patient", "family=jones"), (S{"smith"}));
  EXPECT_EQ(Set("Patient", "gender=male"), (S{"muller"}));
  Delete("Patient", "muller");
  EXPECT_EQ(Set("Patient", "gender=male"), S{});
  EXPECT_EQ(Set("Patient", ""), (S{"smith", "smithson", "astrom"}));
  EXPECT_EQ(Set("Observation", "subject:Patient.family=mul"), S{});
}

// A vault whose index is missing or was built for another parameter table
// rebuilds it from the current versions when opened.
TEST_F(SearchConformanceTest, MissingIndexIsRebuiltOnOpen) {
  store_->Close();
  store_.reset();
  {
    sqlite3* db = nullptr;  // the encrypting VFS is registered by the store
    ASSERT_EQ(sqlite3_open_v2((data_ + "/vault.db").c_str(), &db, SQLITE_OPEN_READWRITE,
                              store::VaultVfsName(keyring_->vault_id()).c_str()),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "DELETE FROM vault_meta WHERE key = 'search_index'; DROP TABLE sx_string; "
                           "DELETE FROM sx_token;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close_v2(db);
  }
  Open(false);
  EXPECT_EQ(Set("Patient", "family=smi"), (S{"smith", "smithson"}));
  EXPECT_EQ(Set("Observation", "code=http://loinc.org|1234-5"), (S{"o1"}));
}

// The index stores folded values: a vault indexed under another folding
// (search::kFoldVersion in its fingerprint) is re-indexed when opened.
TEST_F(SearchConformanceTest, IndexFromAnotherFoldingIsRebuiltOnOpen) {
  Put("Patient", "olga", R"({"resourceType":"Patient","name":[{"family":"Ольга"}]})");
  auto edit = [&](const std::string& sql) {
    store_->Close();
    store_.reset();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((data_ + "/vault.db").c_str(), &db, SQLITE_OPEN_READWRITE,
                              store::VaultVfsName(keyring_->vault_id()).c_str()),
              SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close_v2(db);
    Open(false);
  };
  // Rows as the previous folding (which left Cyrillic as it was) stored them.
  edit("UPDATE sx_string SET folded = exact");
  EXPECT_EQ(Set("Patient", "family=ольга"), S{});  // same fingerprint: rows kept
  const std::string now = "-f" + std::to_string(kFoldVersion) + "-";
  const std::string before = "-f" + std::to_string(kFoldVersion - 1) + "-";
  edit("UPDATE vault_meta SET value = replace(value, '" + now + "', '" + before + "') WHERE key = 'search_index'");
  EXPECT_EQ(Set("Patient", "family=ольга"), (S{"olga"}));
  EXPECT_EQ(Set("Patient", "family=smi"), (S{"smith", "smithson"}));
}

// Unknown parameters and modifiers are errors unless lenient; messages
// never carry the value.
TEST_F(SearchConformanceTest, UnknownParametersAndLenientHandling) {
  auto strict = Parse("Patient", "family=secretvalue&nonsense=secretvalue");
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(strict.status().message().find("secretvalue"), std::string::npos);
  auto lenient = Parse("Patient", "family=smi&nonsense=1&gender:bogus=x&birthdate=notadate", true);
  ASSERT_TRUE(lenient.ok());
  EXPECT_EQ(lenient->ignored, (std::vector<std::string>{"nonsense", "gender:bogus", "birthdate"}));
  ASSERT_EQ(lenient->applied.size(), 1u);
  EXPECT_EQ(lenient->applied[0].first, "family");
  for (const char* bad : {"birthdate=2024-13", "family:exact:x=a", "subject.name.family=a", "_sort=nonsense",
                          "_count=-1", "code:of-type=a|b", "_has:Observation:code:status=x", "value-quantity=abc"}) {
    auto r = Parse(bad[0] == 's' && bad[1] == 'u' ? "Observation" : "Patient", bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
}

// Untrusted parameters must not buy unbounded work: at most 256 values in
// all (each is one more predicate on every candidate), and a work budget
// that stops a search no index narrows.
TEST_F(SearchConformanceTest, TheWorkOfASearchIsBounded) {
  auto hundred = [](const std::string& p) {
    std::string v = p + "=";
    for (int i = 0; i < 100; ++i) v += (i ? ",ne2000-01-" : "ne2000-01-") + std::to_string(10 + i % 18);
    return v;
  };
  ASSERT_TRUE(Parse("Patient", hundred("birthdate") + "&" + hundred("birthdate")).ok());
  auto three = Parse("Patient", hundred("birthdate") + "&" + hundred("birthdate") + "&" + hundred("birthdate"));
  ASSERT_FALSE(three.ok());
  EXPECT_EQ(three.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(three.status().message().find("across all parameters"), std::string::npos) << three.status().message();
  auto lenient = Parse("Patient", hundred("birthdate") + "&" + hundred("birthdate") + "&" + hundred("birthdate"), true);
  EXPECT_FALSE(lenient.ok()) << "lenient handling must not drop whichever parameter crosses the cap";
  EXPECT_TRUE(
      Parse("Patient", hundred("birthdate") + "&" + hundred("birthdate") + "&_sort=family,-birthdate,gender&_count=5")
          .ok())
      << "result parameters are not values";

  auto req = Parse("Observation", "status:not=cancelled&_sort=-date");
  ASSERT_TRUE(req.ok());
  store::SearchBudget ample{1000000};
  req->query.budget = &ample;
  auto found = store_->Search(req->query);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->hits.size(), 4u);
  EXPECT_LT(ample.units_left, 1000000) << "the search was charged";
  const int64_t cost = 1000000 - ample.units_left;
  store::SearchBudget short_of_it{cost - 1};
  req->query.budget = &short_of_it;
  auto stopped = store_->Search(req->query);
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(stopped.status().message().find("too costly"), std::string::npos) << stopped.status().message();
  store::SearchBudget spent{0};
  req->query.budget = &spent;
  EXPECT_EQ(store_->Search(req->query).status().code(), StatusCode::kInvalidArgument) << "a spent budget buys nothing";
}

// A chain or _revinclude resolves to up to 1,000 ids, OR-ed in one
// condition. As a flat chain that passed SQLite's expression depth limit
// (1,000) and the search failed with a 500.
TEST_F(SearchConformanceTest, AThousandValuesInOneConditionStillPrepare) {
  auto req = Parse("Patient", "_id=smith");
  ASSERT_TRUE(req.ok());
  store::SearchCondition& c = req->query.conditions.at(0);
  ASSERT_EQ(c.values.size(), 1u);
  const store::SearchValue one = c.values[0];
  for (int i = 0; i < 1999; ++i) {
    store::SearchValue v = one;
    v.code = "nobody-" + std::to_string(i);
    c.values.push_back(v);
  }
  c.values.back().code = "astrom";
  auto page = store_->Search(req->query);
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  std::set<std::string> ids;
  for (const auto& h : page->hits) ids.insert(h.version.id);
  EXPECT_EQ(ids, (std::set<std::string>{"smith", "astrom"}));
}

TEST(SplitEscapedTest, HonoursEscapes) {
  EXPECT_EQ(SplitEscaped("a,b\\,c", ','), (std::vector<std::string>{"a", "b,c"}));
  EXPECT_EQ(SplitEscaped("s\\|x|c", '|'), (std::vector<std::string>{"s|x", "c"}));
  EXPECT_EQ(SplitEscaped("", ','), (std::vector<std::string>{""}));
}

}  // namespace
}  // namespace phivault::search
