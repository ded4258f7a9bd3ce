#include "search/index_values.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "search/test_util.h"

namespace phivault::search {
namespace {

using testing::Res;

// UTF-8 of one code point (written apart from index_values.cc's encoder).
std::string Utf8(char32_t c) {
  if (c < 0x80) return std::string(1, static_cast<char>(c));
  size_t n = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  std::string out(n, '\0');
  for (size_t k = n - 1; k > 0; --k, c >>= 6) out[k] = static_cast<char>(0x80 | (c & 0x3F));
  out[0] = static_cast<char>((0xF00 >> n) | c);  // 110xxxxx, 1110xxxx, 11110xxx
  return out;
}

std::vector<IndexEntry> Param(const boost::json::object& r, std::string_view code) {
  const SearchParamDef* d = FindSearchParam(r.at("resourceType").as_string(), code);
  EXPECT_NE(d, nullptr) << code;
  if (!d) return {};
  auto rows = ExtractParam(*d, r);
  EXPECT_TRUE(rows.ok()) << rows.status().ToString();
  return rows.ok() ? std::move(*rows) : std::vector<IndexEntry>{};
}

TEST(FoldString, CaseAccentsAndWhitespace) {
  EXPECT_EQ(FoldString("Müller"), "muller");
  EXPECT_EQ(FoldString("MÜLLER"), "muller");
  EXPECT_EQ(FoldString("muller"), FoldString("Müller"));
  EXPECT_EQ(FoldString("Mu\xCC\x88ller"), "muller");  // NFD: u + combining diaeresis
  EXPECT_EQ(FoldString("  José   Núñez "), "jose nunez");
  EXPECT_EQ(FoldString("Straße"), "strasse");
  EXPECT_EQ(FoldString("Łukasz Żółć"), "lukasz zolc");
  EXPECT_EQ(FoldString("Œuvre Æsir"), "oeuvre aesir");
}

// Latin-1 and Latin Extended-A fold exactly as before the Unicode table
// (kFoldVersion 1): every letter U+00C0..U+017F to its ASCII letters.
TEST(FoldString, LatinKeepsItsAsciiFolds) {
  std::string all;
  for (char32_t c = 0xC0; c < 0x180; ++c) all += Utf8(c);
  EXPECT_EQ(FoldString(all),
            "aaaaaaaeceeeeiiiidnooooo×ouuuuythssaaaaaaaeceeeeiiiidnooooo÷ouuuuythyaaaaaaccccccccddddeeeeeeeeee"
            "gggggggghhhhiiiiiiiiiiijijjjkkkllllllllllnnnnnnnnnoooooooeoerrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzz"
            "zzzzs");
}

TEST(FoldString, OtherScripts) {
  EXPECT_EQ(FoldString("Ольга"), "ольга");  // Cyrillic
  EXPECT_EQ(FoldString("ОЛЬГА ЁЛКИНА"), "ольга елкина");
  EXPECT_EQ(FoldString("ΣΟΦΟΣ"), "σοφοσ");  // Greek: capital and final sigma fold to σ
  EXPECT_EQ(FoldString("σοφος"), "σοφοσ");
  EXPECT_EQ(FoldString("Άννα Παπαδοπούλου"), "αννα παπαδοπουλου");  // tonos dropped
  EXPECT_EQ(FoldString("Nguyễn"), "nguyen");  // Vietnamese: U+1EC5, two marks
  EXPECT_EQ(FoldString("NGUYỄN Đặng"), "nguyen dang");
  EXPECT_EQ(FoldString("İstanbul"), "istanbul");  // Turkish dotted capital I
  EXPECT_EQ(FoldString("ılgaz"), "ilgaz");        // dotless i (Latin Extended-A)
  EXPECT_EQ(FoldString("STRASSE"), FoldString("Straße"));
  EXPECT_EQ(FoldString("GROẞ"), "gross");  // capital sharp s U+1E9E
  EXPECT_EQ(FoldString("Ǿrsted Ǣ"), "orsted ae");  // accented ø and æ fold like them
  EXPECT_EQ(FoldString("ＡＢＣ"), "ａｂｃ");  // full-width Latin: lowercased, stays full-width
  EXPECT_EQ(FoldString("µg"), "μg");  // micro sign folds to Greek mu
  EXPECT_EQ(FoldString("\u2126m \u212A"), "ωm k");  // ohm and kelvin signs
  EXPECT_EQ(FoldString("ﬁle"), "file");  // ligature: full case folding
  EXPECT_EQ(FoldString("יִשְׂרָאֵל"), "ישראל");  // Hebrew points are nonspacing marks
  // Kana voicing marks are nonspacing marks too: dropped like accents.
  EXPECT_EQ(FoldString("ヤマダ やまだ"), "ヤマタ やまた");
}

TEST(FoldString, UncasedScriptsAndSymbolsUnchanged) {
  for (const char* s : {"山田太郎", "李小龙", "김민준", "ヤマモト", "😀👍", "👩\u200D⚕", "€5 № 3 ≠ 4 ∉ ≮", "#1/2+3"}) {
    EXPECT_EQ(FoldString(s), s);
  }
  EXPECT_EQ(FoldString("Δ1"), "δ1");
  EXPECT_EQ(FoldString("\u24B6\u24B7"), "\u24D0\u24D1");  // circled capitals: only lowercased
  // CJK compatibility ideographs are canonically equivalent to unified ones.
  EXPECT_EQ(FoldString("\uF900"), "\u8C48");
}

TEST(FoldString, CombiningSequencesMatchPrecomposed) {
  EXPECT_EQ(FoldString("e\u0301"), FoldString("é"));
  EXPECT_EQ(FoldString("Jose\u0301"), "jose");
  EXPECT_EQ(FoldString("Nguye\u0302\u0303n"), FoldString("Nguyễn"));
  EXPECT_EQ(FoldString("Ngu\u0302\u0303yen"), "nguyen");  // marks on the wrong letter: still dropped
  EXPECT_EQ(FoldString("\u0415\u0308"), FoldString("Ё"));   // Cyrillic E + diaeresis
  EXPECT_EQ(FoldString("\u03A3\u0301"), "σ");
  EXPECT_EQ(FoldString("a \u0301b"), "a b");  // a lone mark neither ends nor starts a word
}

TEST(FoldString, UnicodeWhitespace) {
  EXPECT_EQ(FoldString("\u00A0Anna\u2003\u3000Maria\u202F"), "anna maria");
  EXPECT_EQ(FoldString("a\u2028b\u0085c\u1680d"), "a b c d");
  EXPECT_EQ(FoldString("\u2000\u200A"), "");
}

TEST(FoldString, InvalidUtf8IsDropped) {
  EXPECT_EQ(FoldString("a\xFF" "b"), "ab");
  EXPECT_EQ(FoldString("a\xE1\x80"), "a");              // truncated
  EXPECT_EQ(FoldString("\xC3\xC3\xA9t\xA9"), "et");      // bad lead, then é; lone continuation
  EXPECT_EQ(FoldString("x\xC0\xAFy\xE0\x80\xAF"), "xy");  // overlong "/"
  EXPECT_EQ(FoldString("\xC1\x81"), "");                  // overlong "A"
  EXPECT_EQ(FoldString("\xED\xA0\x80z"), "z");            // surrogate
  EXPECT_EQ(FoldString("\xF4\x90\x80\x80z\xF8\x88\x80\x80\x80"), "z");  // above U+10FFFF, 5 bytes
  EXPECT_EQ(FoldString("\xF4\x8F\xBF\xBF"), "\xF4\x8F\xBF\xBF");  // U+10FFFF itself is kept
  EXPECT_EQ(FoldString(std::string("a\0b", 3)), std::string("a\0b", 3));
}

// Every code point: folding is idempotent and its output is valid UTF-8 (a
// second fold drops nothing).
TEST(FoldString, IdempotentOnEveryCodePoint) {
  size_t changed = 0;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    std::string once = FoldString("x" + Utf8(c) + "Y");
    ASSERT_EQ(FoldString(once), once) << std::hex << static_cast<uint32_t>(c);
    if (once != "x" + Utf8(c) + "y") ++changed;
  }
  EXPECT_GT(changed, 5000u);
}

// Index rows store folded values, so a change to folding must come with a new
// search::kFoldVersion (it makes existing vaults re-index on open). This pins
// the fold of every code point: if it fails, folding changed; bump
// kFoldVersion in index_values.h, then update both numbers here.
TEST(FoldString, OutputIsPinned) {
  uint64_t h = 1469598103934665603ull;
  for (char32_t c = 0; c <= 0x10FFFF; ++c) {
    if (c >= 0xD800 && c <= 0xDFFF) continue;
    for (unsigned char b : FoldString(Utf8(c)) + '\x01') {
      h ^= b;
      h *= 1099511628211ull;
    }
  }
  EXPECT_EQ(kFoldVersion, 2);
  EXPECT_EQ(h, 0x394bc2f949e57048ull) << std::hex << h;
}

TEST(DateRange, Precisions) {
  auto y = ParseDateRange("2024");
  ASSERT_TRUE(y);
  EXPECT_EQ(y->low_ms, 1704067200000);
  EXPECT_EQ(y->high_ms, 1735689600000);
  auto m = ParseDateRange("2024-02");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->low_ms, 1706745600000);
  EXPECT_EQ(m->high_ms, 1709251200000);  // leap February
  auto dec = ParseDateRange("2024-12");
  ASSERT_TRUE(dec);
  EXPECT_EQ(dec->low_ms, 1733011200000);
  EXPECT_EQ(dec->high_ms, 1735689600000);
  auto d = ParseDateRange("1993-06-07");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->low_ms, 739411200000);
  EXPECT_EQ(d->high_ms, 739497600000);
  auto t = ParseDateRange("2024-02-29T10:30+02:00");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->low_ms, 1709195400000);
  EXPECT_EQ(t->high_ms, 1709195400000 + 60000);
  auto s = ParseDateRange("2012-02-27T05:28:45+00:00");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->low_ms, 1330320525000);
  EXPECT_EQ(s->high_ms, 1330320526000);
  auto z = ParseDateRange("2012-02-27T05:28:45Z");
  ASSERT_TRUE(z);
  EXPECT_EQ(z->low_ms, 1330320525000);
  auto neg = ParseDateRange("2012-02-27T00:28:45-05:00");
  ASSERT_TRUE(neg);
  EXPECT_EQ(neg->low_ms, 1330320525000);
  auto ms = ParseDateRange("2012-02-27T05:28:45.267Z");
  ASSERT_TRUE(ms);
  EXPECT_EQ(ms->low_ms, 1330320525267);
  EXPECT_EQ(ms->high_ms, 1330320525268);
  auto tenth = ParseDateRange("2012-02-27T05:28:45.2Z");
  ASSERT_TRUE(tenth);
  EXPECT_EQ(tenth->low_ms, 1330320525200);
  EXPECT_EQ(tenth->high_ms, 1330320525300);
  for (const char* bad : {"", "20", "2024-13", "2023-02-29", "2024-01-01T25:00Z", "2024-01-01Z",
                          "2024-01-01T10:00+2", "2024/01/01", "2024-01-01T10:00:00Zjunk", "0000"}) {
    EXPECT_FALSE(ParseDateRange(bad)) << bad;
  }
}

TEST(IndexValues, StringParams) {
  auto r = Res(R"({"resourceType":"Patient","name":[{"use":"official","family":"Müller",
    "given":["Anna"],"prefix":["Dr."]}],"address":[{"line":["1 Rue"],"city":"Zürich"}]})");
  auto fam = Param(r, "family");
  ASSERT_EQ(fam.size(), 1u);
  EXPECT_EQ(fam[0].value, "Müller");
  EXPECT_EQ(fam[0].folded, "muller");
  EXPECT_EQ(fam[0].type, ParamType::kString);
  auto name = Param(r, "name");
  std::vector<std::string> folded;
  for (const auto& e : name) folded.push_back(e.folded);
  EXPECT_EQ(folded, (std::vector<std::string>{"muller", "anna", "dr."}));  // not "official"
  auto addr = Param(r, "address");
  ASSERT_EQ(addr.size(), 2u);
  EXPECT_EQ(addr[0].value, "1 Rue");
  EXPECT_EQ(addr[1].folded, "zurich");
}

TEST(IndexValues, TokenParams) {
  auto r = Res(R"({"resourceType":"Observation","status":"final",
    "code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],
            "text":"Body Height"},
    "identifier":[{"system":"urn:x","value":"42","type":{"coding":[{"system":"http://t","code":"MR"}]}}]})");
  auto code = Param(r, "code");
  ASSERT_EQ(code.size(), 1u);
  EXPECT_EQ(code[0].system, "http://loinc.org");
  EXPECT_EQ(code[0].value, "8302-2");
  EXPECT_EQ(code[0].text, "body height");
  auto status = Param(r, "status");
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].value, "final");
  EXPECT_EQ(status[0].system, "");
  auto id = Param(r, "identifier");
  ASSERT_EQ(id.size(), 1u);
  EXPECT_EQ(id[0].system, "urn:x");
  EXPECT_EQ(id[0].value, "42");
  EXPECT_EQ(id[0].type_system, "http://t");
  EXPECT_EQ(id[0].type_code, "MR");

  auto p = Res(R"({"resourceType":"Patient","active":true,
    "telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b.c"}]})");
  auto phone = Param(p, "phone");
  ASSERT_EQ(phone.size(), 1u);
  EXPECT_EQ(phone[0].value, "555");
  EXPECT_EQ(phone[0].system, "");  // ContactPoint.system is not a code system
  auto active = Param(p, "active");
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].value, "true");
  auto deceased = Param(p, "deceased");
  ASSERT_EQ(deceased.size(), 1u);
  EXPECT_EQ(deceased[0].value, "false");
}

TEST(IndexValues, ReferenceParams) {
  auto r = Res(R"({"resourceType":"Observation",
    "subject":{"reference":"https://ehr.example/fhir/Patient/p1/_history/3"},
    "performer":[{"reference":"Practitioner/7"},{"reference":"#c1"},
                 {"identifier":{"system":"urn:npi","value":"99"}}]})");
  auto subj = Param(r, "subject");
  ASSERT_EQ(subj.size(), 1u);
  EXPECT_EQ(subj[0].value, "Patient/p1");
  EXPECT_EQ(subj[0].ref_type, "Patient");
  EXPECT_EQ(subj[0].ref_id, "p1");
  EXPECT_EQ(subj[0].url, "https://ehr.example/fhir/Patient/p1");
  auto patient = Param(r, "patient");
  ASSERT_EQ(patient.size(), 1u);
  EXPECT_EQ(patient[0].value, "Patient/p1");
  auto perf = Param(r, "performer");
  ASSERT_EQ(perf.size(), 3u);
  EXPECT_EQ(perf[0].value, "Practitioner/7");
  EXPECT_EQ(perf[0].url, "");
  EXPECT_EQ(perf[1].value, "#c1");
  EXPECT_EQ(perf[1].ref_type, "");
  EXPECT_EQ(perf[2].system, "urn:npi");
  EXPECT_EQ(perf[2].code, "99");
  // A Practitioner subject is not a `patient`.
  auto other = Res(R"({"resourceType":"Observation","subject":{"reference":"Group/g"}})");
  EXPECT_TRUE(Param(other, "patient").empty());
  EXPECT_EQ(Param(other, "subject").at(0).value, "Group/g");
}

TEST(IndexValues, DateParams) {
  auto r = Res(R"({"resourceType":"Observation",
    "effectivePeriod":{"start":"2024-02","end":"2024-12"}})");
  auto d = Param(r, "date");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].low_ms, 1706745600000);
  EXPECT_EQ(d[0].high_ms, 1735689600000);
  auto open = Res(R"({"resourceType":"Observation","effectivePeriod":{"start":"2024"}})");
  auto o = Param(open, "date");
  ASSERT_EQ(o.size(), 1u);
  EXPECT_EQ(o[0].low_ms, 1704067200000);
  EXPECT_EQ(o[0].high_ms, kMaxDateMs);
  auto bad = Res(R"({"resourceType":"Observation","effectiveDateTime":"yesterday"})");
  EXPECT_TRUE(Param(bad, "date").empty());
}

TEST(IndexValues, QuantityAndNumber) {
  auto r = Res(R"({"resourceType":"Observation",
    "valueQuantity":{"value":5.4,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}})");
  auto q = Param(r, "value-quantity");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].value, "5.4");
  EXPECT_DOUBLE_EQ(q[0].number, 5.4);
  EXPECT_EQ(q[0].system, "http://unitsofmeasure.org");
  EXPECT_EQ(q[0].code, "mmol/L");
  EXPECT_EQ(q[0].unit, "mmol/L");
  auto ra = Res(R"({"resourceType":"RiskAssessment","prediction":[{"probabilityDecimal":0.25},
    {"probabilityRange":{"low":{"value":1}}}]})");
  auto n = Param(ra, "probability");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].value, "0.25");
  EXPECT_DOUBLE_EQ(n[0].number, 0.25);
  auto money = Res(R"({"resourceType":"Invoice","totalGross":{"value":10,"currency":"EUR"}})");
  auto m = Param(money, "totalgross");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].value, "10");
  EXPECT_EQ(m[0].system, "urn:iso:std:iso:4217");
  EXPECT_EQ(m[0].code, "EUR");
}

TEST(IndexValues, UriParams) {
  auto r = Res(R"({"resourceType":"ValueSet","url":"http://example.org/vs","status":"draft"})");
  auto u = Param(r, "url");
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].value, "http://example.org/vs");
  EXPECT_EQ(u[0].type, ParamType::kUri);
}

TEST(IndexValues, SyntheaPatientAndObservation) {
  auto p = testing::SyntheaResource("Patient", [](const auto&) { return true; });
  ASSERT_FALSE(p.empty());
  auto entries = ExtractIndexEntries(p).value();
  auto find = [&](std::string_view param) {
    std::vector<IndexEntry> v;
    for (const auto& e : entries)
      if (e.param == param) v.push_back(e);
    return v;
  };
  auto fam = find("family");
  ASSERT_EQ(fam.size(), 1u);
  EXPECT_EQ(fam[0].folded, "atencio");
  auto bd = find("birthdate");
  ASSERT_EQ(bd.size(), 1u);
  EXPECT_EQ(bd[0].low_ms, 739411200000);
  EXPECT_EQ(bd[0].high_ms, 739497600000);
  auto ids = find("identifier");
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(ids[2].system, "http://hl7.org/fhir/sid/us-ssn");
  EXPECT_EQ(ids[2].type_code, "SS");
  auto gender = find("gender");
  ASSERT_EQ(gender.size(), 1u);
  EXPECT_EQ(gender[0].value, "male");
  auto id = find("_id");
  ASSERT_EQ(id.size(), 1u);
  EXPECT_EQ(id[0].value, "4e8ed886-fd5f-40bb-8feb-f339b04d853a");

  auto obs = testing::SyntheaResource("Observation", [](const boost::json::object& o) {
    return o.contains("valueQuantity");
  });
  ASSERT_FALSE(obs.empty());
  auto oe = ExtractIndexEntries(obs).value();
  bool saw_code = false, saw_value = false, saw_date = false, saw_subject = false;
  for (const auto& e : oe) {
    if (e.param == "code" && e.system == "http://loinc.org" && e.value == "8302-2") saw_code = true;
    if (e.param == "value-quantity" && e.code == "cm" && e.number > 178.88 && e.number < 178.89)
      saw_value = true;
    if (e.param == "date" && e.low_ms == 1330320525000 && e.high_ms == 1330320526000) saw_date = true;
    // urn:uuid references stay raw until the bundle is resolved.
    if (e.param == "subject" && e.value == "urn:uuid:4e8ed886-fd5f-40bb-8feb-f339b04d853a")
      saw_subject = true;
  }
  EXPECT_TRUE(saw_code);
  EXPECT_TRUE(saw_value);
  EXPECT_TRUE(saw_date);
  EXPECT_TRUE(saw_subject);
}

TEST(IndexValues, HostileInputDoesNotCrash) {
  EXPECT_TRUE(ExtractIndexEntries(boost::json::object()).value().empty());
  EXPECT_TRUE(ExtractIndexEntries(Res(R"({"resourceType":"Nope"})")).value().empty());
  // Wrong JSON kinds everywhere.
  auto r = Res(R"({"resourceType":"Patient","name":"x","birthDate":7,"identifier":{"value":[1]},
    "telecom":[null,1,"a",{"system":5}],"generalPractitioner":[{"reference":5},{"reference":"/"}],
    "meta":{"lastUpdated":"not a date"}})");
  auto e = ExtractIndexEntries(r);
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  for (const auto& x : *e) EXPECT_NE(x.param, "birthdate");
}

// A parameter whose expression yields more items than FHIRPath evaluates
// cannot be indexed; the resource is refused rather than stored with that
// parameter missing from the index (it would then never be found by it).
TEST(IndexValues, AParameterTooLargeToIndexIsAnErrorNotAnOmission) {
  boost::json::array ids;
  for (size_t i = 0; i <= FhirPath::kMaxResultItems; ++i) {
    ids.push_back(boost::json::object{{"value", "v"}});
  }
  boost::json::object p{{"resourceType", "Patient"}, {"identifier", ids}};
  auto all = ExtractIndexEntries(p);
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(all.status().message().find("'identifier'"), std::string::npos) << all.status().message();
  const SearchParamDef* id = FindSearchParam("Patient", "identifier");
  ASSERT_NE(id, nullptr);
  EXPECT_FALSE(ExtractParam(*id, p).ok());
  // One item fewer is indexed whole.
  ids.pop_back();
  p["identifier"] = ids;
  auto rows = ExtractParam(*id, p);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(rows->size(), FhirPath::kMaxResultItems);
}

}  // namespace
}  // namespace phivault::search

namespace phivault::search {
namespace {

// Every table expression evaluates without error on every resource of the
// Synthea bundle, and the bundle's resources yield index entries.
TEST(IndexValues, WholeSyntheaBundleEvaluates) {
  auto b = fhir::ParseJson(testing::ReadRepoFile("src/fhir/testdata/synthea-patient-004.json"));
  ASSERT_TRUE(b.ok());
  size_t resources = 0, entries = 0, errors = 0;
  for (const auto& e : b->as_object().at("entry").as_array()) {
    const auto& r = e.as_object().at("resource").as_object();
    ++resources;
    for (const SearchParamDef* d : SearchParamsFor(r.at("resourceType").as_string())) {
      auto p = FhirPath::Compile(d->expression);
      ASSERT_TRUE(p.ok());
      if (!p->Evaluate(r).ok()) ++errors;
    }
    entries += ExtractIndexEntries(r).value().size();
  }
  EXPECT_EQ(resources, 76u);
  EXPECT_EQ(errors, 0u);
  EXPECT_GT(entries, 76u * 3);
}

}  // namespace
}  // namespace phivault::search
