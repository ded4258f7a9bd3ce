#include "search/index_values.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <system_error>

namespace phivault::search {
namespace {

namespace json = boost::json;

// One run of code points in the fold table (generated/fold_table.inc, made by
// tools/gen_fold_table.py from the Unicode Character Database; the rule is in
// that script). Code points not in any range fold to themselves.
enum class FoldKind : uint8_t {
  kDelta,     // each code point folds to cp + arg
  kDeltaAlt,  // first, first + 2, ... fold to cp + arg; those between stay
  kString,    // each folds to the UTF-8 kFoldPool[arg, arg + len); len 0: dropped
  kSpace,     // whitespace, collapsed like ASCII whitespace
};
struct FoldRange {
  uint32_t first;
  uint16_t count;  // code points that fold (kDeltaAlt: every other one)
  FoldKind kind;
  uint8_t len;
  int32_t arg;
};

using enum FoldKind;
#include "search/generated/fold_table.inc"

static_assert(std::size(kFoldBlocks) == (kFoldBlockLimit >> kFoldBlockShift) + 1);
static_assert(std::size(kFoldRanges) < 0xFFFF);

// The range that folds `cp`, or nullptr if `cp` folds to itself. Two or three
// probes for most blocks: the block table narrows the binary search to the
// ranges that touch cp's block.
const FoldRange* FindFold(uint32_t cp) {
  constexpr size_t kRanges = std::size(kFoldRanges);
  size_t lo, hi;
  if (cp < kFoldBlockLimit) {
    lo = kFoldBlocks[cp >> kFoldBlockShift];
    hi = std::min<size_t>(kFoldBlocks[(cp >> kFoldBlockShift) + 1] + 1, kRanges);
  } else {
    lo = kFoldBlocks[std::size(kFoldBlocks) - 1];
    hi = kRanges;
  }
  const FoldRange* r = std::upper_bound(kFoldRanges + lo, kFoldRanges + hi, cp,
                                        [](uint32_t c, const FoldRange& x) { return c < x.first; });
  if (r == kFoldRanges + lo) return nullptr;
  --r;
  uint32_t off = cp - r->first;
  if (r->kind == kDeltaAlt) {
    if (off % 2 != 0 || off / 2 >= r->count) return nullptr;
  } else if (off >= r->count) {
    return nullptr;
  }
  return r;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes one UTF-8 code point at s[i]; returns its length, 0 if invalid
// (a bad lead or continuation byte, a truncated sequence, an overlong form, a
// surrogate or a value above U+10FFFF).
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t& cp) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
// days_from_civil), exact for all four-digit years.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool Digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

unsigned DaysInMonth(int y, int m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

std::string DecimalText(const json::value& v) {
  if (v.is_int64()) return std::to_string(v.get_int64());
  if (v.is_uint64()) return std::to_string(v.get_uint64());
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v.get_double());
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string();
}

std::string_view Str(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// ---------------------------------------------------------------- per type

IndexEntry Base(const SearchParamDef& def) {
  IndexEntry e;
  e.param = def.code;
  e.type = def.type;
  return e;
}

void AddString(const SearchParamDef& def, std::string_view s, std::vector<IndexEntry>& out) {
  if (s.empty()) return;
  IndexEntry e = Base(def);
  e.value = std::string(s);
  e.folded = FoldString(s);
  out.push_back(std::move(e));
}

void StringValues(const SearchParamDef& def, const json::value& v, std::vector<IndexEntry>& out) {
  if (v.is_string()) return AddString(def, v.get_string(), out);
  const auto* o = v.if_object();
  if (!o) return;
  // HumanName and Address: every text part is searchable; codes such as
  // `use` are not.
  static constexpr std::string_view kParts[] = {"text", "family", "given", "prefix", "suffix",
                                                "line", "city", "district", "state",
                                                "postalCode", "country"};
  for (auto k : kParts) {
    auto* p = o->if_contains(k);
    if (!p) continue;
    if (p->is_string()) AddString(def, p->get_string(), out);
    if (p->is_array())
      for (const auto& x : p->get_array())
        if (x.is_string()) AddString(def, x.get_string(), out);
  }
}

void AddCoding(const SearchParamDef& def, const json::object& c, std::string_view cc_text,
               std::vector<IndexEntry>& out) {
  IndexEntry e = Base(def);
  e.system = std::string(Str(c, "system"));
  e.value = std::string(Str(c, "code"));
  std::string_view display = Str(c, "display");
  e.text = FoldString(!cc_text.empty() ? cc_text : display);
  if (e.value.empty() && e.text.empty()) return;
  out.push_back(std::move(e));
}

bool IsContactPointSystem(std::string_view s) {
  return s == "phone" || s == "fax" || s == "email" || s == "pager" || s == "url" || s == "sms" ||
         s == "other";
}

void TokenValues(const SearchParamDef& def, const PathItem& item, std::vector<IndexEntry>& out) {
  const json::value& v = item.value();
  if (v.is_string() || v.is_bool()) {
    IndexEntry e = Base(def);
    e.value = v.is_bool() ? (v.get_bool() ? "true" : "false") : std::string(v.get_string());
    out.push_back(std::move(e));
    return;
  }
  const auto* o = item.object();
  if (!o) return;
  if (o->contains("coding") || (o->contains("text") && !o->contains("value"))) {  // CodeableConcept
    std::string_view text = Str(*o, "text");
    size_t before = out.size();
    if (auto* cs = o->if_contains("coding"); cs && cs->is_array())
      for (const auto& c : cs->get_array())
        if (c.is_object()) AddCoding(def, c.get_object(), text, out);
    if (out.size() == before && !text.empty()) {
      IndexEntry e = Base(def);
      e.text = FoldString(text);
      out.push_back(std::move(e));
    }
    return;
  }
  if (o->contains("code")) return AddCoding(def, *o, {}, out);  // Coding
  std::string_view value = Str(*o, "value");
  if (value.empty()) return;
  std::string_view system = Str(*o, "system");
  IndexEntry e = Base(def);
  e.value = std::string(value);
  if (item.type == "ContactPoint" || (item.type.empty() && IsContactPointSystem(system) &&
                                      !o->contains("type"))) {
    // ContactPoint.system is a kind (phone, email), not a code system.
    out.push_back(std::move(e));
    return;
  }
  e.system = std::string(system);  // Identifier
  if (auto* t = o->if_contains("type"); t && t->is_object()) {
    if (auto* cs = t->get_object().if_contains("coding"); cs && cs->is_array()) {
      for (const auto& c : cs->get_array()) {
        if (!c.is_object()) continue;
        IndexEntry typed = e;
        typed.type_system = std::string(Str(c.get_object(), "system"));
        typed.type_code = std::string(Str(c.get_object(), "code"));
        out.push_back(std::move(typed));
      }
      if (!cs->get_array().empty()) return;
    }
  }
  out.push_back(std::move(e));
}

void ReferenceValues(const SearchParamDef& def, const PathItem& item, std::vector<IndexEntry>& out) {
  const json::value& v = item.value();
  IndexEntry e = Base(def);
  if (v.is_string()) {  // canonical or uri target
    e.url = std::string(v.get_string());
    e.value = e.url;
    out.push_back(std::move(e));
    return;
  }
  const auto* o = item.object();
  if (!o) return;
  std::string_view ref = Str(*o, "reference");
  if (ref.empty()) {
    // Identifier-only reference: usable by :identifier.
    if (auto* id = o->if_contains("identifier"); id && id->is_object()) {
      e.system = std::string(Str(id->get_object(), "system"));
      e.code = std::string(Str(id->get_object(), "value"));
      if (!e.code.empty()) out.push_back(std::move(e));
    }
    return;
  }
  e.value = std::string(ref);
  if (ref.starts_with("#") || ref.starts_with("urn:")) {
    out.push_back(std::move(e));
    return;
  }
  std::string_view s = ref;
  if (size_t h = s.find("/_history/"); h != std::string_view::npos) s = s.substr(0, h);
  bool absolute = s.starts_with("http://") || s.starts_with("https://");
  size_t slash = s.rfind('/');
  if (slash != std::string_view::npos && slash > 0) {
    std::string_view id = s.substr(slash + 1);
    std::string_view head = s.substr(0, slash);
    size_t prev = head.rfind('/');
    std::string_view type = prev == std::string_view::npos ? head : head.substr(prev + 1);
    if (!id.empty() && !type.empty() && std::isupper(static_cast<unsigned char>(type[0]))) {
      e.ref_type = std::string(type);
      e.ref_id = std::string(id);
      e.value = e.ref_type + "/" + e.ref_id;
    }
  }
  if (absolute) e.url = std::string(s);
  out.push_back(std::move(e));
}

void AddDate(const SearchParamDef& def, std::optional<DateRange> low, std::optional<DateRange> high,
             std::vector<IndexEntry>& out) {
  IndexEntry e = Base(def);
  e.low_ms = low ? low->low_ms : kMinDateMs;
  e.high_ms = high ? high->high_ms : kMaxDateMs;
  out.push_back(std::move(e));
}

void DateValues(const SearchParamDef& def, const PathItem& item, std::vector<IndexEntry>& out) {
  const json::value& v = item.value();
  if (v.is_string()) {
    if (auto r = ParseDateRange(v.get_string())) AddDate(def, r, r, out);
    return;
  }
  const auto* o = item.object();
  if (!o) return;
  if (o->contains("start") || o->contains("end")) {  // Period
    std::optional<DateRange> lo, hi;
    if (auto* s = o->if_contains("start"); s && s->is_string()) {
      lo = ParseDateRange(s->get_string());
      if (!lo) return;
    }
    if (auto* s = o->if_contains("end"); s && s->is_string()) {
      hi = ParseDateRange(s->get_string());
      if (!hi) return;
    }
    AddDate(def, lo, hi, out);
    return;
  }
  if (auto* ev = o->if_contains("event"); ev && ev->is_array()) {  // Timing
    for (const auto& x : ev->get_array())
      if (x.is_string())
        if (auto r = ParseDateRange(x.get_string())) AddDate(def, r, r, out);
  }
}

void NumberValues(const SearchParamDef& def, const json::value& v, std::vector<IndexEntry>& out) {
  if (!v.is_number()) return;
  IndexEntry e = Base(def);
  e.value = DecimalText(v);
  json::error_code ec;
  e.number = v.to_number<double>(ec);
  if (ec || e.value.empty()) return;
  out.push_back(std::move(e));
}

void QuantityValues(const SearchParamDef& def, const PathItem& item, std::vector<IndexEntry>& out) {
  const auto* o = item.object();
  if (!o) return;
  auto* val = o->if_contains("value");
  if (!val || !val->is_number()) return;  // Range, SampledData: not indexed
  IndexEntry e = Base(def);
  e.value = DecimalText(*val);
  json::error_code ec;
  e.number = val->to_number<double>(ec);
  if (ec || e.value.empty()) return;
  if (std::string_view cur = Str(*o, "currency"); !cur.empty()) {  // Money
    e.system = "urn:iso:std:iso:4217";
    e.code = std::string(cur);
  } else {
    e.system = std::string(Str(*o, "system"));
    e.code = std::string(Str(*o, "code"));
    e.unit = std::string(Str(*o, "unit"));
  }
  out.push_back(std::move(e));
}

// Compiled expressions, one per table row, built once (thread-safe static
// initialization). A row that fails to compile stays nullopt and is skipped.
const std::vector<std::optional<FhirPath>>& CompiledPaths() {
  static const auto* paths = [] {
    auto* v = new std::vector<std::optional<FhirPath>>();
    for (const auto& d : AllSearchParams()) {
      auto p = FhirPath::Compile(d.expression);
      v->push_back(p.ok() ? std::optional<FhirPath>(std::move(p).value()) : std::nullopt);
    }
    return v;
  }();
  return *paths;
}

}  // namespace

std::string FoldString(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  auto start_char = [&] {
    if (space && !out.empty()) out.push_back(' ');
    space = false;
  };
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {  // ASCII: no table
      ++i;
      if (b == ' ' || b == '\t' || b == '\n' || b == '\r') {
        space = true;
        continue;
      }
      start_char();
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + ('a' - 'A') : b));
      continue;
    }
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, i, cp);
    if (n == 0) {  // invalid byte: drop it
      ++i;
      continue;
    }
    const FoldRange* r = FindFold(cp);
    if (!r) {
      start_char();
      out.append(s.substr(i, n));
    } else if (r->kind == kSpace) {
      space = true;
    } else if (r->kind == kString) {
      if (r->len > 0) {  // len 0: a mark, dropped (it does not end a space run)
        start_char();
        out.append(kFoldPool + r->arg, r->len);
      }
    } else {
      start_char();
      AppendUtf8(static_cast<uint32_t>(static_cast<int64_t>(cp) + r->arg), out);
    }
    i += n;
  }
  return out;
}

std::optional<DateRange> ParseDateRange(std::string_view s) {
  int y = 0, mo = 1, d = 1, h = 0, mi = 0, sec = 0;
  if (s.size() < 4 || !Digits(s, 0, 4, y) || y < 1) return std::nullopt;
  size_t p = 4;
  enum { kYear, kMonth, kDay, kMinute, kSecond, kFraction } prec = kYear;
  int64_t frac_ms = 0, frac_span = 1000;
  if (p < s.size() && s[p] == '-') {
    if (!Digits(s, p + 1, 2, mo) || mo < 1 || mo > 12) return std::nullopt;
    p += 3;
    prec = kMonth;
    if (p < s.size() && s[p] == '-') {
      if (!Digits(s, p + 1, 2, d) || d < 1 || static_cast<unsigned>(d) > DaysInMonth(y, mo))
        return std::nullopt;
      p += 3;
      prec = kDay;
      if (p < s.size() && s[p] == 'T') {
        if (!Digits(s, p + 1, 2, h) || s.size() < p + 6 || s[p + 3] != ':' ||
            !Digits(s, p + 4, 2, mi) || h > 23 || mi > 59)
          return std::nullopt;
        p += 6;
        prec = kMinute;
        if (p < s.size() && s[p] == ':') {
          if (!Digits(s, p + 1, 2, sec) || sec > 59) return std::nullopt;
          p += 3;
          prec = kSecond;
          if (p < s.size() && s[p] == '.') {
            ++p;
            size_t digits = 0;
            frac_span = 1000;
            while (p < s.size() && std::isdigit(static_cast<unsigned char>(s[p]))) {
              // Keep millisecond precision; finer digits narrow nothing we store.
              if (digits < 3) {
                frac_ms = frac_ms * 10 + (s[p] - '0');
                frac_span /= 10;
              }
              ++digits;
              ++p;
            }
            if (digits == 0) return std::nullopt;
            frac_ms *= frac_span;
            prec = kFraction;
          }
        }
      }
    }
  }
  int64_t offset_ms = 0;
  if (p < s.size()) {
    if (prec < kMinute) return std::nullopt;  // a zone needs a time
    if (s[p] == 'Z') {
      ++p;
    } else if (s[p] == '+' || s[p] == '-') {
      int oh = 0, om = 0;
      if (!Digits(s, p + 1, 2, oh) || s.size() < p + 6 || s[p + 3] != ':' ||
          !Digits(s, p + 4, 2, om) || oh > 14 || om > 59)
        return std::nullopt;
      offset_ms = (oh * 60 + om) * 60000LL * (s[p] == '-' ? -1 : 1);
      p += 6;
    } else {
      return std::nullopt;
    }
    if (p != s.size()) return std::nullopt;
  }
  int64_t low = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400000LL +
                (h * 3600LL + mi * 60LL + sec) * 1000LL + frac_ms - offset_ms;
  int64_t high = 0;
  switch (prec) {
    case kYear: high = DaysFromCivil(y + 1, 1, 1) * 86400000LL; break;
    case kMonth:
      high = (mo == 12 ? DaysFromCivil(y + 1, 1, 1) : DaysFromCivil(y, static_cast<unsigned>(mo + 1), 1)) *
             86400000LL;
      break;
    case kDay: high = low + 86400000LL; break;
    case kMinute: high = low + 60000; break;
    case kSecond: high = low + 1000; break;
    case kFraction: high = low + frac_span; break;
  }
  return DateRange{low, high};
}

StatusOr<std::vector<IndexEntry>> ExtractParam(const SearchParamDef& def, const boost::json::object& resource) {
  std::vector<IndexEntry> out;
  const auto all = AllSearchParams();
  std::optional<FhirPath> local;
  const FhirPath* path = nullptr;
  // std::less gives a total order even for pointers into different arrays.
  std::less<const SearchParamDef*> lt;
  if (!lt(&def, all.data()) && lt(&def, all.data() + all.size())) {
    const auto& compiled = CompiledPaths()[static_cast<size_t>(&def - all.data())];
    if (compiled) path = &*compiled;
  } else {  // a definition not from the table (tests)
    auto p = FhirPath::Compile(def.expression);
    if (p.ok()) local = std::move(p).value();
    if (local) path = &*local;
  }
  if (!path) return out;
  auto items = path->Evaluate(resource);
  if (!items.ok()) {
    // Names the parameter only: the message reaches logs and clients.
    const std::string param = "search parameter '" + std::string(def.code) + "'";
    if (items.status().code() == StatusCode::kResourceExhausted) {
      return InvalidArgument("the resource cannot be indexed: " + param + " needs more than " +
                             std::to_string(FhirPath::kMaxResultItems) + " items to evaluate");
    }
    return InvalidArgument("the resource cannot be indexed: " + param + " could not be evaluated");
  }
  for (const auto& it : *items) {
    switch (def.type) {
      case ParamType::kString: StringValues(def, it.value(), out); break;
      case ParamType::kToken: TokenValues(def, it, out); break;
      case ParamType::kReference: ReferenceValues(def, it, out); break;
      case ParamType::kDate: DateValues(def, it, out); break;
      case ParamType::kNumber: NumberValues(def, it.value(), out); break;
      case ParamType::kQuantity: QuantityValues(def, it, out); break;
      case ParamType::kUri:
        if (it.value().is_string()) {
          IndexEntry e = Base(def);
          e.value = std::string(it.value().get_string());
          out.push_back(std::move(e));
        }
        break;
    }
  }
  return out;
}

StatusOr<std::vector<IndexEntry>> ExtractIndexEntries(const boost::json::object& resource) {
  std::vector<IndexEntry> out;
  std::string_view type = Str(resource, "resourceType");
  for (const SearchParamDef* d : SearchParamsFor(type)) {
    PV_ASSIGN_OR_RETURN(std::vector<IndexEntry> e, ExtractParam(*d, resource));
    for (auto& x : e) out.push_back(std::move(x));
  }
  return out;
}

}  // namespace phivault::search
