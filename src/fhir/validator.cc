#include "fhir/validator.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include "fhir/json_reader.h"
#include "fhir/resource_types.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;

enum class Kind : uint8_t {
  kObject, kResource, kResourceType, kEnum,
  kBoolean, kInteger, kPositiveInt, kUnsignedInt, kDecimal,
  kString, kCode, kId, kUri, kDate, kDateTime, kInstant, kTime, kBase64, kOid, kUuid, kXhtml,
};

struct ElementInfo {
  std::string_view name;
  Kind kind;
  uint32_t target;  // kTypes index (kObject) or kEnums index (kEnum)
  bool array;
};
struct TypeInfo {
  std::string_view name;
  uint32_t first, count;  // run of kElements
};
struct EnumInfo {
  uint32_t first, count;  // run of kEnumCodes
};

constexpr std::string_view kEnumCodes[] = {
#define PHIVAULT_ENUM_CODES
#include "fhir/generated/element_types.inc"
#undef PHIVAULT_ENUM_CODES
};
constexpr EnumInfo kEnums[] = {
#define PHIVAULT_ENUMS
#include "fhir/generated/element_types.inc"
#undef PHIVAULT_ENUMS
};
constexpr ElementInfo kElements[] = {
#define PHIVAULT_ELEMENTS
#include "fhir/generated/element_types.inc"
#undef PHIVAULT_ELEMENTS
};
constexpr TypeInfo kTypes[] = {
#define PHIVAULT_TYPES
#include "fhir/generated/element_types.inc"
#undef PHIVAULT_TYPES
};
constexpr uint32_t kNoType = std::numeric_limits<uint32_t>::max();

uint32_t FindType(std::string_view name) {
  auto it = std::lower_bound(std::begin(kTypes), std::end(kTypes), name,
                             [](const TypeInfo& t, std::string_view n) { return t.name < n; });
  return it != std::end(kTypes) && it->name == name ? static_cast<uint32_t>(it - std::begin(kTypes)) : kNoType;
}

const ElementInfo* FindElement(uint32_t type, std::string_view name) {
  const ElementInfo* first = kElements + kTypes[type].first;
  const ElementInfo* last = first + kTypes[type].count;
  auto it = std::lower_bound(first, last, name, [](const ElementInfo& e, std::string_view n) { return e.name < n; });
  return it != last && it->name == name ? it : nullptr;
}

bool IsPrimitive(Kind k) { return k >= Kind::kEnum; }

// Whitespace as the FHIR regexes mean it (\s in the Java regex flavour of
// the reference validator): ASCII space, tab, LF, VT, FF, CR.
bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool Digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!IsDigit(s[i])) return false;
  }
  return true;
}
int Num(std::string_view s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

// "hh:mm:ss[.f+]" at `pos` (seconds up to 60, as the schema allows a leap
// second); returns the end, or npos.
size_t TimeOfDay(std::string_view s, size_t pos) {
  if (!Digits(s, pos, 2) || Num(s, pos, 2) > 23 || pos + 2 >= s.size() || s[pos + 2] != ':') return std::string_view::npos;
  if (!Digits(s, pos + 3, 2) || Num(s, pos + 3, 2) > 59 || pos + 5 >= s.size() || s[pos + 5] != ':') {
    return std::string_view::npos;
  }
  if (!Digits(s, pos + 6, 2) || Num(s, pos + 6, 2) > 60) return std::string_view::npos;
  pos += 8;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && IsDigit(s[pos])) ++pos;
    if (pos == start) return std::string_view::npos;
  }
  return pos;
}

// Z, or +hh:mm / -hh:mm up to 14:00, filling exactly s[pos..].
bool Zone(std::string_view s, size_t pos) {
  if (pos + 1 == s.size() && s[pos] == 'Z') return true;
  if (pos + 6 != s.size() || (s[pos] != '+' && s[pos] != '-') || s[pos + 3] != ':') return false;
  if (!Digits(s, pos + 1, 2) || !Digits(s, pos + 4, 2)) return false;
  int h = Num(s, pos + 1, 2), m = Num(s, pos + 4, 2);
  return (h <= 13 && m <= 59) || (h == 14 && m == 0);
}

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// YYYY, YYYY-MM or YYYY-MM-DD at the start of `s` (a real calendar date,
// year 0001 or later); returns the number of date parts (1-3) and the end.
int DatePrefix(std::string_view s, size_t* end) {
  if (!Digits(s, 0, 4) || Num(s, 0, 4) == 0) return 0;
  int y = Num(s, 0, 4);
  *end = 4;
  if (s.size() == 4 || s[4] != '-') return 1;
  if (!Digits(s, 5, 2)) return 0;
  int m = Num(s, 5, 2);
  if (m < 1 || m > 12) return 0;
  *end = 7;
  if (s.size() == 7 || s[7] != '-') return 2;
  if (!Digits(s, 8, 2)) return 0;
  int d = Num(s, 8, 2);
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int max = kDays[m - 1] + (m == 2 && IsLeap(y) ? 1 : 0);
  if (d < 1 || d > max) return 0;
  *end = 10;
  return 3;
}

bool IsDate(std::string_view s) {
  size_t end = 0;
  return DatePrefix(s, &end) > 0 && end == s.size();
}
bool IsDateTime(std::string_view s, bool instant) {
  size_t end = 0;
  int parts = DatePrefix(s, &end);
  if (parts == 0) return false;
  if (end == s.size()) return !instant;
  if (parts != 3 || s[end] != 'T') return false;
  size_t t = TimeOfDay(s, end + 1);
  return t != std::string_view::npos && Zone(s, t);
}
bool IsTime(std::string_view s) { return TimeOfDay(s, 0) == s.size(); }

// ^[^\s]+(\s[^\s]+)*$
bool IsCode(std::string_view s) {
  if (s.empty() || IsSpace(s.front()) || IsSpace(s.back())) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    if (IsSpace(s[i]) && IsSpace(s[i - 1])) return false;
  }
  return true;
}
// ^[ \r\n\t\S]+$ : any character but VT and FF.
bool IsFhirString(std::string_view s) {
  return !s.empty() && s.find_first_of("\v\f") == std::string_view::npos;
}
// ^\S*$ (and non-empty: FHIR JSON has no empty primitive values).
bool IsUri(std::string_view s) { return !s.empty() && std::none_of(s.begin(), s.end(), IsSpace); }
// ^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$
bool IsBase64(std::string_view s) {
  size_t in_group = 0, groups = 0;
  bool space_ok = true;  // whitespace only between groups of four
  for (char c : s) {
    if (IsSpace(c)) {
      if (!space_ok) return false;
      continue;
    }
    bool alpha = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
                 c == '/' || c == '=';
    if (!alpha) return false;
    in_group = (in_group + 1) % 4;
    if (in_group == 0) ++groups;
    space_ok = in_group == 0;
  }
  return groups > 0 && in_group == 0;
}
// ^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$
bool IsOid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:oid:";
  if (s.substr(0, kPrefix.size()) != kPrefix) return false;
  s.remove_prefix(kPrefix.size());
  if (s.size() < 3 || s[0] < '0' || s[0] > '2') return false;
  size_t i = 1;
  while (i < s.size()) {
    if (s[i] != '.' || i + 1 >= s.size() || !IsDigit(s[i + 1])) return false;
    size_t start = ++i;
    while (i < s.size() && IsDigit(s[i])) ++i;
    if (s[start] == '0' && i - start > 1) return false;
  }
  return true;
}
// ^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$
bool IsUuid(std::string_view s) {
  constexpr std::string_view kPrefix = "urn:uuid:";
  if (s.size() != kPrefix.size() + 36 || s.substr(0, kPrefix.size()) != kPrefix) return false;
  s.remove_prefix(kPrefix.size());
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = s[i];
    if (dash ? c != '-' : !(IsDigit(c) || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A 32-bit FHIR integer at least `min` (FHIR R4 integer range).
bool IsInt32(const json::value& v, int64_t min) {
  return v.is_int64() && v.get_int64() >= min && v.get_int64() <= std::numeric_limits<int32_t>::max();
}

// What a primitive value must be, for messages ("invalid dateTime").
std::string_view KindName(Kind k) {
  switch (k) {
    case Kind::kEnum: return "code (not in the required value set)";
    case Kind::kBoolean: return "boolean";
    case Kind::kInteger: return "integer";
    case Kind::kPositiveInt: return "positiveInt";
    case Kind::kUnsignedInt: return "unsignedInt";
    case Kind::kDecimal: return "decimal";
    case Kind::kString: return "string";
    case Kind::kCode: return "code";
    case Kind::kId: return "id";
    case Kind::kUri: return "uri";
    case Kind::kDate: return "date";
    case Kind::kDateTime: return "dateTime";
    case Kind::kInstant: return "instant";
    case Kind::kTime: return "time";
    case Kind::kBase64: return "base64Binary";
    case Kind::kOid: return "oid";
    case Kind::kUuid: return "uuid";
    case Kind::kXhtml: return "xhtml";
    default: return "value";
  }
}

bool PrimitiveOk(Kind k, const json::value& v, uint32_t target) {
  if (k == Kind::kBoolean) return v.is_bool();
  if (k == Kind::kInteger) return IsInt32(v, std::numeric_limits<int32_t>::min());
  if (k == Kind::kPositiveInt) return IsInt32(v, 1);
  if (k == Kind::kUnsignedInt) return IsInt32(v, 0);
  if (k == Kind::kDecimal) return v.is_number();
  if (!v.is_string()) return false;
  std::string_view s = v.get_string();
  switch (k) {
    case Kind::kEnum: {
      const EnumInfo& e = kEnums[target];
      return std::find(kEnumCodes + e.first, kEnumCodes + e.first + e.count, s) != kEnumCodes + e.first + e.count;
    }
    case Kind::kString: return IsFhirString(s);
    case Kind::kCode: return IsCode(s);
    case Kind::kId: return IsValidId(s);
    case Kind::kUri: return IsUri(s);
    case Kind::kDate: return IsDate(s);
    case Kind::kDateTime: return IsDateTime(s, false);
    case Kind::kInstant: return IsDateTime(s, true);
    case Kind::kTime: return IsTime(s);
    case Kind::kBase64: return IsBase64(s);
    case Kind::kOid: return IsOid(s);
    case Kind::kUuid: return IsUuid(s);
    case Kind::kXhtml: return !s.empty();
    default: return false;
  }
}

// An element name safe to repeat in an expression: a plain identifier (any
// other key could be content the client did not mean to have echoed).
bool PlainName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return IsDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  });
}

// Whether `o` has the `_key` companion of `key`.
bool HasExtensions(const json::object& o, std::string_view key) {
  std::string name;
  name.reserve(key.size() + 1);
  name += '_';
  name += key;
  return o.contains(name);
}

class Walker {
 public:
  explicit Walker(std::string_view root) : root_(root) {}

  Status Resource(const json::object& o) {
    const json::value* rt = o.if_contains("resourceType");
    if (!rt || !rt->is_string() || !IsKnownResourceType(rt->get_string())) {
      return Fail("resourceType", "missing or unknown resourceType");
    }
    uint32_t type = FindType(rt->get_string());
    if (type == kNoType) return Fail("resourceType", "unknown resourceType");
    if (root_.empty() && path_.empty()) root_ = kTypes[type].name;
    return Object(o, type);
  }

 private:
  struct Frame {
    std::string_view name;
    size_t index;  // npos: not an array item
  };

  Status Object(const json::object& o, uint32_t type) {
    for (const auto& kv : o) {
      std::string_view key = kv.key();
      const json::value& v = kv.value();
      if (key.size() > 1 && key[0] == '_') {
        const ElementInfo* base = FindElement(type, key.substr(1));
        if (!base || !IsPrimitive(base->kind)) return Unknown(key);
        PV_RETURN_IF_ERROR(Extensions(key, v, base->array));
        continue;
      }
      const ElementInfo* e = FindElement(type, key);
      if (!e) return Unknown(key);
      if (e->kind == Kind::kResourceType) {
        if (!v.is_string() || v.get_string() != kTypes[type].name) return Fail(key, "resourceType does not match");
        continue;
      }
      if (!e->array) {
        if (v.is_array()) return Fail(key, "must be a single value, not an array");
        PV_RETURN_IF_ERROR(Value(*e, v, key, std::string_view::npos));
        continue;
      }
      if (!v.is_array()) return Fail(key, "must be an array");
      const json::array& a = v.get_array();
      for (size_t i = 0; i < a.size(); ++i) {
        // null holds the place of a primitive that has only extensions.
        if (a[i].is_null() && IsPrimitive(e->kind) && HasExtensions(o, key)) continue;
        PV_RETURN_IF_ERROR(Value(*e, a[i], key, i));
      }
    }
    return Status::Ok();
  }

  Status Value(const ElementInfo& e, const json::value& v, std::string_view key, size_t index) {
    if (IsPrimitive(e.kind)) {
      if (PrimitiveOk(e.kind, v, e.target)) return Status::Ok();
      return Fail(key, index, std::string("invalid ") + std::string(KindName(e.kind)));
    }
    if (!v.is_object()) return Fail(key, index, "must be a JSON object");
    path_.push_back({key, index});
    Status s = e.kind == Kind::kResource ? Resource(v.get_object()) : Object(v.get_object(), e.target);
    path_.pop_back();
    return s;
  }

  // `_x`: an Element (id, extension) or, for a repeating primitive, an
  // array of Element or null.
  Status Extensions(std::string_view key, const json::value& v, bool array) {
    static const uint32_t element_type = FindType("Element");
    auto one = [&](const json::value& item, size_t index) -> Status {
      if (!item.is_object()) return Fail(key, index, "must be a JSON object");
      path_.push_back({key, index});
      Status s = Object(item.get_object(), element_type);
      path_.pop_back();
      return s;
    };
    if (!array) {
      if (v.is_array()) return Fail(key, "must be a single value, not an array");
      return one(v, std::string_view::npos);
    }
    if (!v.is_array()) return Fail(key, "must be an array");
    const json::array& a = v.get_array();
    for (size_t i = 0; i < a.size(); ++i) {
      if (!a[i].is_null()) PV_RETURN_IF_ERROR(one(a[i], i));
    }
    return Status::Ok();
  }

  Status Unknown(std::string_view key) {
    if (PlainName(key)) return Fail(key, "unknown element");
    return Fail({}, std::string_view::npos, "unknown element (its name is not shown)");
  }
  Status Fail(std::string_view key, std::string_view what) { return Fail(key, std::string_view::npos, what); }
  Status Fail(std::string_view key, size_t index, std::string_view what) {
    std::string expr(root_);
    auto add = [&](std::string_view name, size_t i) {
      if (!expr.empty()) expr += '.';
      expr += name;
      if (i != std::string_view::npos) {
        expr += '[';
        expr += std::to_string(i);
        expr += ']';
      }
    };
    for (const Frame& f : path_) add(f.name, f.index);
    if (!key.empty()) add(key, index);
    std::string message = expr;
    message += ": ";
    message += what;
    return InvalidArgument(std::move(message)).WithExpression(std::move(expr));
  }

  std::string_view root_;
  std::vector<Frame> path_;
};

}  // namespace

Status ValidateResource(const boost::json::object& resource, std::string_view root) {
  return Walker(root).Resource(resource);
}

}  // namespace phivault::fhir
