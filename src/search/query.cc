#include "search/query.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "fhir/json_reader.h"
#include "fhir/resource_types.h"
#include "search/index_values.h"
#include "search/search_params.h"

namespace phivault::search {
namespace {

using store::SearchCondition;
using store::SearchModifier;
using store::SearchPrefix;
using store::SearchValue;

constexpr size_t kMaxValuesPerParam = 100;
constexpr size_t kMaxParams = 64;
// Across all parameters. Each value is one more predicate on every
// candidate row, and `ne` values narrow nothing: 63 parameters of 100 `ne`
// dates each took 54 s on a small vault.
constexpr size_t kMaxValuesInAll = 256;
constexpr int kMaxHasDepth = 2;
constexpr int64_t kDayMs = 86400000;

// Parameters that shape the result rather than select resources (their
// commas separate keys or paths, not values).
bool IsResultParameter(std::string_view key) {
  static constexpr std::string_view kResult[] = {"_count", "_sort", "_elements", "_summary", "_total",
                                                 "_format", "_pretty", "_contained", "_containedType"};
  return std::find(std::begin(kResult), std::end(kResult), key) != std::end(kResult) ||
         key.starts_with("_include") || key.starts_with("_revinclude");
}

Status Bad(std::string_view what, std::string_view param) {
  // The parameter name is the client's own key; its value is never echoed.
  std::string name(param.substr(0, 64));
  for (char& c : name)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return InvalidArgument(std::string(what) + ": " + name);
}

std::vector<std::string> SplitRaw(std::string_view value, char sep, bool unescape) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\\' && i + 1 < value.size() &&
        (value[i + 1] == ',' || value[i + 1] == '|' || value[i + 1] == '$' || value[i + 1] == '\\')) {
      if (!unescape) out.back() += c;
      out.back() += value[++i];
      continue;
    }
    if (c == sep) {
      out.emplace_back();
      continue;
    }
    out.back() += c;
  }
  return out;
}

std::string Unescape(std::string_view v) { return SplitRaw(v, '\0', true).front(); }

std::optional<SearchModifier> ParseModifier(std::string_view m) {
  if (m.empty()) return SearchModifier::kNone;
  if (m == "exact") return SearchModifier::kExact;
  if (m == "contains") return SearchModifier::kContains;
  if (m == "text") return SearchModifier::kText;
  if (m == "not") return SearchModifier::kNot;
  if (m == "of-type") return SearchModifier::kOfType;
  if (m == "missing") return SearchModifier::kMissing;
  if (m == "below") return SearchModifier::kBelow;
  if (m == "above") return SearchModifier::kAbove;
  if (m == "identifier") return SearchModifier::kIdentifier;
  return std::nullopt;
}

bool ModifierAllowed(ParamType t, SearchModifier m) {
  if (m == SearchModifier::kNone || m == SearchModifier::kMissing) return true;
  switch (t) {
    case ParamType::kString: return m == SearchModifier::kExact || m == SearchModifier::kContains;
    case ParamType::kToken:
      return m == SearchModifier::kText || m == SearchModifier::kNot || m == SearchModifier::kOfType;
    case ParamType::kReference: return m == SearchModifier::kIdentifier;
    case ParamType::kUri: return m == SearchModifier::kBelow || m == SearchModifier::kAbove;
    default: return false;
  }
}

// Splits a leading two-letter prefix off a date/number/quantity value.
SearchPrefix TakePrefix(std::string& v) {
  static constexpr std::pair<std::string_view, SearchPrefix> kPrefixes[] = {
      {"eq", SearchPrefix::kEq}, {"ne", SearchPrefix::kNe}, {"gt", SearchPrefix::kGt},
      {"lt", SearchPrefix::kLt}, {"ge", SearchPrefix::kGe}, {"le", SearchPrefix::kLe},
      {"sa", SearchPrefix::kSa}, {"eb", SearchPrefix::kEb}, {"ap", SearchPrefix::kAp}};
  if (v.size() >= 2) {
    for (const auto& [text, p] : kPrefixes) {
      if (v.compare(0, 2, text) == 0) {
        v.erase(0, 2);
        return p;
      }
    }
  }
  return SearchPrefix::kEq;
}

// A decimal with its implied precision range: "100" = [99.5, 100.5),
// "1.50" = [1.495, 1.505), "1e2" = [50, 150).
bool ParseNumber(std::string_view s, SearchValue& out) {
  if (s.empty() || s.size() > 64) return false;
  size_t i = 0;
  if (s[i] == '+' || s[i] == '-') ++i;
  size_t digits = 0, decimals = 0;
  bool dot = false;
  for (; i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'); ++i) {
    if (s[i] == '.') {
      if (dot) return false;
      dot = true;
      continue;
    }
    ++digits;
    if (dot) ++decimals;
  }
  if (digits == 0) return false;
  int exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    auto [p, ec] = std::from_chars(s.data() + i + (i < s.size() && s[i] == '+' ? 1 : 0), s.data() + s.size(), exponent);
    if (ec != std::errc() || p != s.data() + s.size() || exponent > 300 || exponent < -300) return false;
    i = s.size();
  }
  if (i != s.size()) return false;
  std::string text(s);
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v)) return false;
  // The bounds are (D*10 -+ 5) x 10^(exponent - decimals - 1) for the digit
  // string D, built as decimal text so that strtod rounds them exactly once
  // (0.2 + 0.05 in binary is above 0.25, which would wrongly match 0.25).
  std::string d;
  for (char c : s.substr(0, s.find_first_of("eE")))
    if (std::isdigit(static_cast<unsigned char>(c))) d += c;
  std::string up = d + "5";
  std::string down = d;
  // down = D - 1 (then "5" appended); D == 0 gives -0.5 x scale.
  bool zero = d.find_first_not_of('0') == std::string::npos;
  if (!zero) {
    for (size_t k = down.size(); k-- > 0;) {
      if (down[k] != '0') {
        --down[k];
        break;
      }
      down[k] = '9';
    }
  }
  const std::string scale = "e" + std::to_string(exponent - static_cast<int>(decimals) - 1);
  double a = std::strtod((down + "5" + scale).c_str(), nullptr);
  if (zero) a = -std::strtod(("5" + scale).c_str(), nullptr);
  double b = std::strtod((up + scale).c_str(), nullptr);
  bool negative = s[0] == '-';
  out.number = v;
  out.number_low = negative ? -b : a;
  out.number_high = negative ? -a : b;
  return true;
}

class Parser {
 public:
  Parser(std::string_view type, const SearchParseOptions& o) : type_(type), o_(o) {}

  Status ParseParam(const std::string& key, const std::string& value, SearchRequest& req);

  // One condition on `type` from a key (below the chain/has prefix) and value.
  Status Condition(std::string_view type, std::string_view key, const std::string& value, int has_depth,
                   SearchCondition& out);

 private:
  Status Values(std::string_view type, const SearchParamDef& def, SearchModifier mod, std::string_view type_mod,
                const std::string& value, std::string_view key, SearchCondition& out);
  Status OneValue(const SearchParamDef& def, SearchModifier mod, std::string_view type_mod, const std::string& raw,
                  std::string_view key, SearchValue& v);

  std::string_view type_;
  const SearchParseOptions& o_;
  size_t values_in_all_ = 0;  // values accepted so far, chained and _has included
};

Status Parser::OneValue(const SearchParamDef& def, SearchModifier mod, std::string_view type_mod,
                        const std::string& raw, std::string_view key, SearchValue& v) {
  switch (def.type) {
    case ParamType::kString: {
      std::string s = Unescape(raw);
      v.text = mod == SearchModifier::kExact ? s : FoldString(s);
      if (v.text.empty()) return Bad("empty string value", key);
      return Status::Ok();
    }
    case ParamType::kUri:
      v.text = Unescape(raw);
      return Status::Ok();
    case ParamType::kToken: {
      if (mod == SearchModifier::kText) {
        v.text = FoldString(Unescape(raw));
        return Status::Ok();
      }
      auto parts = SplitRaw(raw, '|', true);
      if (mod == SearchModifier::kOfType) {
        if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[2].empty()) {
          return Bad(":of-type needs system|code|value", key);
        }
        v.type_system = parts[0];
        v.type_code = parts[1];
        v.code = parts[2];
        return Status::Ok();
      }
      if (parts.size() > 2) return Bad("malformed token", key);
      if (parts.size() == 2) {
        v.has_system = true;
        v.system = parts[0];
        v.code = parts[1];
        if (v.system.empty() && v.code.empty()) return Bad("malformed token", key);
      } else {
        v.code = parts[0];
      }
      return Status::Ok();
    }
    case ParamType::kReference: {
      std::string s = Unescape(raw);
      if (mod == SearchModifier::kIdentifier) {
        auto parts = SplitRaw(raw, '|', true);
        if (parts.size() > 2) return Bad("malformed identifier", key);
        if (parts.size() == 2) {
          v.has_system = true;
          v.system = parts[0];
          v.code = parts[1];
        } else {
          v.code = parts[0];
        }
        return Status::Ok();
      }
      if (size_t h = s.find("/_history/"); h != std::string::npos) s.resize(h);
      std::string local_base = o_.base_url + "/fhir/";
      bool absolute = s.starts_with("http://") || s.starts_with("https://") || s.starts_with("urn:");
      if (absolute && !o_.base_url.empty() && s.starts_with(local_base)) {
        s = s.substr(local_base.size());
        absolute = false;
      }
      if (absolute) {
        v.url = s;
        return Status::Ok();
      }
      size_t slash = s.find('/');
      if (slash == std::string::npos) {
        if (!fhir::IsValidId(s)) return Bad("malformed reference", key);
        v.ref_id = s;
        v.ref_type = std::string(type_mod);
        if (v.ref_type.empty() && def.targets.find(',') == std::string_view::npos) v.ref_type = std::string(def.targets);
        return Status::Ok();
      }
      std::string t = s.substr(0, slash), id = s.substr(slash + 1);
      if (!fhir::IsKnownResourceType(t) || !fhir::IsValidId(id)) return Bad("malformed reference", key);
      if (!type_mod.empty() && type_mod != t) return Bad("reference type contradicts the modifier", key);
      v.ref_type = t;
      v.ref_id = id;
      return Status::Ok();
    }
    case ParamType::kDate: {
      std::string s = Unescape(raw);
      v.prefix = TakePrefix(s);
      auto r = ParseDateRange(s);
      if (!r) return Bad("malformed date", key);
      v.low_ms = r->low_ms;
      v.high_ms = r->high_ms;
      if (v.prefix == SearchPrefix::kAp) {
        int64_t gap = o_.now_ms > v.low_ms ? o_.now_ms - v.low_ms : v.low_ms - o_.now_ms;
        int64_t fuzz = std::max<int64_t>(gap / 10, kDayMs);
        v.low_ms -= fuzz;
        v.high_ms += fuzz;
      }
      return Status::Ok();
    }
    case ParamType::kNumber:
    case ParamType::kQuantity: {
      auto parts = SplitRaw(raw, '|', true);
      if (parts.size() != 1 && parts.size() != 3) return Bad("malformed quantity", key);
      if (def.type == ParamType::kNumber && parts.size() != 1) return Bad("malformed number", key);
      std::string n = parts[0];
      v.prefix = TakePrefix(n);
      if (!ParseNumber(n, v)) return Bad("malformed number", key);
      if (v.prefix == SearchPrefix::kAp) {
        double fuzz = std::fabs(v.number) * 0.1;
        v.number_low = std::min(v.number_low, v.number - fuzz);
        v.number_high = std::max(v.number_high, v.number + fuzz);
      }
      if (parts.size() == 3) {
        v.has_system = !parts[1].empty();
        v.system = parts[1];
        v.code = parts[2];
        if (v.has_system && v.code.empty()) return Bad("malformed quantity", key);
      }
      return Status::Ok();
    }
  }
  return Bad("unsupported parameter type", key);
}

Status Parser::Values(std::string_view /*type*/, const SearchParamDef& def, SearchModifier mod,
                      std::string_view type_mod, const std::string& value, std::string_view key,
                      SearchCondition& out) {
  out.param = std::string(def.code);
  out.type = def.type;
  out.modifier = mod;
  if (mod == SearchModifier::kMissing) {
    if (value != "true" && value != "false") return Bad(":missing takes true or false", key);
    SearchValue v;
    v.missing = value == "true";
    out.values.push_back(v);
    return Status::Ok();
  }
  auto parts = SplitRaw(value, ',', false);
  if (parts.size() > kMaxValuesPerParam) return Bad("too many values", key);
  if (values_in_all_ + parts.size() > kMaxValuesInAll) return Bad("too many values across all parameters", key);
  for (const std::string& raw : parts) {
    if (raw.empty()) return Bad("empty value", key);
    SearchValue v;
    PV_RETURN_IF_ERROR(OneValue(def, mod, type_mod, raw, key, v));
    out.values.push_back(std::move(v));
  }
  values_in_all_ += parts.size();
  return Status::Ok();
}

Status Parser::Condition(std::string_view type, std::string_view key, const std::string& value, int has_depth,
                         SearchCondition& out) {
  if (key.starts_with("_has:")) {
    if (has_depth >= kMaxHasDepth) return Bad("_has nested too deeply", key);
    // _has:Type:param:rest
    std::string_view rest = key.substr(5);
    size_t c1 = rest.find(':');
    if (c1 == std::string_view::npos) return Bad("malformed _has", key);
    size_t c2 = rest.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return Bad("malformed _has", key);
    std::string target(rest.substr(0, c1));
    std::string param(rest.substr(c1 + 1, c2 - c1 - 1));
    if (!fhir::IsKnownResourceType(target)) return Bad("unknown resource type in _has", key);
    const SearchParamDef* def = FindSearchParam(target, param);
    if (!def || def->type != ParamType::kReference) return Bad("_has needs a reference parameter", key);
    out.kind = SearchCondition::Kind::kHas;
    out.target_type = target;
    out.has_param = param;
    out.nested.emplace_back();
    return Condition(target, rest.substr(c2 + 1), value, has_depth + 1, out.nested.back());
  }
  std::string_view name = key, chain;
  if (size_t dot = key.find('.'); dot != std::string_view::npos) {
    name = key.substr(0, dot);
    chain = key.substr(dot + 1);
  }
  std::string_view mod_text;
  if (size_t colon = name.find(':'); colon != std::string_view::npos) {
    mod_text = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  const SearchParamDef* def = FindSearchParam(type, name);
  if (!def) return Bad("unknown search parameter", key);
  std::string_view type_mod;
  SearchModifier mod = SearchModifier::kNone;
  if (!mod_text.empty() && def->type == ParamType::kReference && fhir::IsKnownResourceType(mod_text)) {
    type_mod = mod_text;
  } else {
    auto m = ParseModifier(mod_text);
    if (!m || !ModifierAllowed(def->type, *m)) return Bad("unsupported modifier", key);
    mod = *m;
  }
  if (!chain.empty()) {
    if (def->type != ParamType::kReference || mod != SearchModifier::kNone) return Bad("chaining needs a reference", key);
    std::string target(type_mod);
    if (target.empty()) {
      if (def->targets.empty() || def->targets.find(',') != std::string_view::npos) {
        return Bad("chained parameter needs a :Type modifier", key);
      }
      target = std::string(def->targets);
    }
    if (chain.find('.') != std::string_view::npos || chain.starts_with("_has")) {
      return Bad("chaining is supported one level deep", key);
    }
    out.kind = SearchCondition::Kind::kChain;
    out.param = std::string(def->code);
    out.type = ParamType::kReference;
    out.target_type = target;
    out.nested.emplace_back();
    return Condition(target, chain, value, kMaxHasDepth, out.nested.back());
  }
  return Values(type, *def, mod, type_mod, value, key, out);
}

Status ParseInclude(std::string_view type, std::string_view key, const std::string& value, SearchRequest& req) {
  IncludeSpec inc;
  inc.reverse = key.starts_with("_revinclude");
  std::string_view mod = key.substr(inc.reverse ? 11 : 8);
  if (mod == ":iterate" || mod == ":recurse") {
    inc.iterate = true;
  } else if (!mod.empty()) {
    return Bad("unsupported include modifier", key);
  }
  auto parts = SplitRaw(value, ':', true);
  if (parts.size() < 2 || parts.size() > 3) return Bad("malformed include", key);
  inc.source_type = parts[0];
  inc.param = parts[1];
  if (parts.size() == 3) inc.target_type = parts[2];
  if (!fhir::IsKnownResourceType(inc.source_type) ||
      (!inc.target_type.empty() && !fhir::IsKnownResourceType(inc.target_type))) {
    return Bad("unknown resource type in include", key);
  }
  const SearchParamDef* def = FindSearchParam(inc.source_type, inc.param);
  if (!def || def->type != ParamType::kReference) return Bad("include needs a reference parameter", key);
  if (!inc.iterate && !inc.reverse && inc.source_type != type) return Bad("_include source must be the searched type", key);
  req.includes.push_back(std::move(inc));
  return Status::Ok();
}

Status Parser::ParseParam(const std::string& key, const std::string& value, SearchRequest& req) {
  if (key == "_count") {
    int n = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || p != value.data() + value.size() || n < 0) return Bad("malformed value", key);
    if (n == 0) {
      req.summary = SummaryMode::kCount;
      n = 1;
    }
    req.query.count = std::min(n, o_.max_count);
    return Status::Ok();
  }
  if (key == "_summary") {
    if (value == "false") req.summary = SummaryMode::kFalse;
    else if (value == "true") req.summary = SummaryMode::kTrue;
    else if (value == "text") req.summary = SummaryMode::kText;
    else if (value == "data") req.summary = SummaryMode::kData;
    else if (value == "count") req.summary = SummaryMode::kCount;
    else return Bad("malformed value", key);
    return Status::Ok();
  }
  if (key == "_total") {
    if (value == "none") req.total = TotalMode::kNone;
    else if (value == "estimate") req.total = TotalMode::kEstimate;
    else if (value == "accurate") req.total = TotalMode::kAccurate;
    else return Bad("malformed value", key);
    return Status::Ok();
  }
  if (key == "_elements") {
    for (std::string& e : SplitRaw(value, ',', true)) {
      if (e.empty() || e.size() > 64 || !std::all_of(e.begin(), e.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); })) {
        return Bad("malformed value", key);
      }
      req.elements.push_back(std::move(e));
    }
    return Status::Ok();
  }
  if (key == "_sort") {
    for (std::string& s : SplitRaw(value, ',', true)) {
      store::SearchSortKey k;
      if (s.starts_with("-")) {
        k.descending = true;
        s.erase(0, 1);
      }
      const SearchParamDef* def = FindSearchParam(type_, s);
      if (!def) return Bad("unknown sort parameter", key);
      k.param = std::string(def->code);
      k.type = def->type;
      if (req.query.sort.size() >= 8) return Bad("too many sort keys", key);
      req.query.sort.push_back(std::move(k));
    }
    return Status::Ok();
  }
  if (key.starts_with("_include") || key.starts_with("_revinclude")) return ParseInclude(type_, key, value, req);
  SearchCondition c;
  PV_RETURN_IF_ERROR(Condition(type_, key, value, 0, c));
  req.query.conditions.push_back(std::move(c));
  return Status::Ok();
}

}  // namespace

std::vector<std::string> SplitEscaped(std::string_view value, char sep) { return SplitRaw(value, sep, true); }

StatusOr<SearchRequest> ParseSearch(std::string_view type, const QueryPairs& params,
                                    const SearchParseOptions& options) {
  SearchRequest req;
  req.query.type = std::string(type);
  req.query.count = std::clamp(options.default_count, 1, std::max(1, options.max_count));
  if (!fhir::IsKnownResourceType(type)) return InvalidArgument("unknown resource type");
  if (params.size() > kMaxParams) return InvalidArgument("too many search parameters");
  // Counted before parsing, so that lenient handling cannot drop whichever
  // parameter crosses the cap and answer a different search than asked. An
  // escaped comma counts too; the bound only needs to be safe.
  size_t values = 0;
  for (const auto& [key, value] : params) {
    if (std::find(options.passthrough.begin(), options.passthrough.end(), key) != options.passthrough.end()) continue;
    if (value.empty() || IsResultParameter(key)) continue;
    values += 1 + static_cast<size_t>(std::count(value.begin(), value.end(), ','));
  }
  if (values > kMaxValuesInAll) return InvalidArgument("too many search values across all parameters");
  Parser parser(type, options);
  for (const auto& [key, value] : params) {
    if (std::find(options.passthrough.begin(), options.passthrough.end(), key) != options.passthrough.end()) continue;
    if (value.empty() && !key.starts_with("_")) continue;  // empty values are ignored (R4 3.1.1.5)
    SearchRequest before = req;  // a parameter that fails leaves no partial trace
    Status s = parser.ParseParam(key, value, req);
    if (!s.ok()) {
      if (!options.lenient) return s;
      req = std::move(before);
      req.ignored.push_back(key);
      continue;
    }
    req.applied.emplace_back(key, value);
  }
  return req;
}

}  // namespace phivault::search
