#include "store/sqlite_search.h"

#include <algorithm>
#include <cstring>
#include <variant>

#include <unordered_map>

#include "fhir/resource_types.h"
#include "search/index_values.h"
#include "search/search_params.h"
#include "store/sqlite_util.h"

namespace phivault::store::sqlite_search {
namespace {

using search::ParamType;

constexpr int kIndexLayoutVersion = 4;
constexpr const char* kFile = "vault.db";
// Bounds the SQL a hostile query can make the engine build and run.
constexpr size_t kMaxNestingDepth = 3;

// The upper bound of a prefix range: every string starting with `p` sorts
// below p + 0xFF under BINARY collation (0xFF never occurs in UTF-8).
std::string PrefixEnd(std::string_view p) {
  std::string s(p);
  s += '\xff';
  return s;
}

// The parameter key stored in every row: unique per (resource type,
// parameter), so rows need no type column (the "Resource" rows such as _id
// are shared by all types in the table but get one key per type here).
// The part of a parameter key that stands for the resource type: the same
// for every row of a resource, so the writer computes it once per resource.
int64_t TypeKeyBase(std::string_view type) {
  static const auto* types = [] {
    auto* m = new std::unordered_map<std::string_view, int64_t>();
    int64_t i = 0;
    for (std::string_view t : fhir::AllResourceTypes()) m->emplace(t, ++i);
    return m;
  }();
  auto it = types->find(type);
  const int64_t rows = static_cast<int64_t>(search::AllSearchParams().size());
  return (it == types->end() ? 0 : it->second) * rows;
}

int64_t ParamKey(int64_t type_base, const search::SearchParamDef* def) {
  return type_base + static_cast<int64_t>(def - search::AllSearchParams().data());
}

int64_t ParamKey(std::string_view type, const search::SearchParamDef* def) {
  return ParamKey(TypeKeyBase(type), def);
}

const char* TableOf(ParamType t) {
  switch (t) {
    case ParamType::kString: return "sx_string";
    case ParamType::kToken: return "sx_token";
    case ParamType::kReference: return "sx_ref";
    case ParamType::kDate: return "sx_date";
    case ParamType::kNumber:
    case ParamType::kQuantity: return "sx_number";
    case ParamType::kUri: return "sx_uri";
  }
  return "sx_string";
}

// The name SQLite gives a WITHOUT ROWID table's primary key, the
// (seq, p, n) B-tree that holds the rows.
std::string PrimaryKeyOf(const std::string& table) { return "sqlite_autoindex_" + table + "_1"; }

// `table x` forced onto its (seq, p) primary key: per-resource probes must
// not let the planner pick a (p, value) index and scan a whole parameter
// (for MIN/MAX it would, as that index delivers the values in order).
std::string BySeq(ParamType t) {
  std::string table = TableOf(t);
  return table + " x INDEXED BY " + PrimaryKeyOf(table);
}

using BindValue = std::variant<std::monostate, int64_t, double, std::string>;

// Collects bound values while SQL text is assembled; "?N" placeholders.
class Sql {
 public:
  std::string text;
  std::vector<BindValue> binds;

  std::string Bind(BindValue v) {
    binds.push_back(std::move(v));
    return "?" + std::to_string(binds.size());
  }
};

StatusOr<const search::SearchParamDef*> Def(std::string_view type, const std::string& code, ParamType want) {
  const search::SearchParamDef* def = search::FindSearchParam(type, code);
  if (!def) return InvalidArgument("unknown search parameter for this resource type");
  bool numeric = (def->type == ParamType::kNumber || def->type == ParamType::kQuantity) &&
                 (want == ParamType::kNumber || want == ParamType::kQuantity);
  if (def->type != want && !numeric) return InvalidArgument("search parameter used with the wrong type");
  return def;
}

std::string DatePredicate(Sql& q, const SearchValue& v) {
  std::string a = q.Bind(v.low_ms), b = q.Bind(v.high_ms);
  std::string contained = "(x.low >= " + a + " AND x.high <= " + b + ")";
  switch (v.prefix) {
    case SearchPrefix::kEq: return contained;
    case SearchPrefix::kNe: return "NOT " + contained;
    case SearchPrefix::kGt: return "x.high > " + b;
    case SearchPrefix::kLt: return "x.low < " + a;
    case SearchPrefix::kGe: return "(x.high > " + b + " OR " + contained + ")";
    case SearchPrefix::kLe: return "(x.low < " + a + " OR " + contained + ")";
    case SearchPrefix::kSa: return "x.low >= " + b;
    case SearchPrefix::kEb: return "x.high <= " + a;
    case SearchPrefix::kAp: return "(x.low < " + b + " AND x.high > " + a + ")";
  }
  return contained;
}

std::string NumberPredicate(Sql& q, const SearchValue& v) {
  std::string n = q.Bind(v.number);
  switch (v.prefix) {
    case SearchPrefix::kEq:
    case SearchPrefix::kAp:
      return "(x.value >= " + q.Bind(v.number_low) + " AND x.value < " + q.Bind(v.number_high) + ")";
    case SearchPrefix::kNe:
      return "NOT (x.value >= " + q.Bind(v.number_low) + " AND x.value < " + q.Bind(v.number_high) + ")";
    case SearchPrefix::kGt:
    case SearchPrefix::kSa: return "x.value > " + n;
    case SearchPrefix::kLt:
    case SearchPrefix::kEb: return "x.value < " + n;
    case SearchPrefix::kGe: return "x.value >= " + n;
    case SearchPrefix::kLe: return "x.value <= " + n;
  }
  return "x.value = " + n;
}

StatusOr<std::string> ValuePredicate(Sql& q, const SearchCondition& c, const SearchValue& v) {
  switch (c.type) {
    case ParamType::kString:
      if (c.modifier == SearchModifier::kExact) return "x.exact = " + q.Bind(v.text);
      if (c.modifier == SearchModifier::kContains) return "instr(x.folded, " + q.Bind(v.text) + ") > 0";
      return "(x.folded >= " + q.Bind(v.text) + " AND x.folded < " + q.Bind(PrefixEnd(v.text)) + ")";
    case ParamType::kToken:
      if (c.modifier == SearchModifier::kText) {
        return "(x.text >= " + q.Bind(v.text) + " AND x.text < " + q.Bind(PrefixEnd(v.text)) + ")";
      }
      if (c.modifier == SearchModifier::kOfType) {
        return "(x.type_system = " + q.Bind(v.type_system) + " AND x.type_code = " + q.Bind(v.type_code) +
               " AND x.code = " + q.Bind(v.code) + ")";
      }
      if (v.has_system && v.code.empty()) return "x.system = " + q.Bind(v.system);
      if (v.has_system) return "(x.code = " + q.Bind(v.code) + " AND x.system = " + q.Bind(v.system) + ")";
      return "x.code = " + q.Bind(v.code);
    case ParamType::kReference:
      if (c.modifier == SearchModifier::kIdentifier) {
        std::string p = "x.idval = " + q.Bind(v.code);
        if (v.has_system) p = "(" + p + " AND x.idsys = " + q.Bind(v.system) + ")";
        return p;
      }
      if (!v.url.empty() && v.ref_id.empty()) return "x.url = " + q.Bind(v.url);
      if (v.ref_type.empty()) return "x.ref_id = " + q.Bind(v.ref_id);
      return "(x.ref_id = " + q.Bind(v.ref_id) + " AND x.ref_type = " + q.Bind(v.ref_type) + ")";
    case ParamType::kDate: return DatePredicate(q, v);
    case ParamType::kNumber: return NumberPredicate(q, v);
    case ParamType::kQuantity: {
      std::string p = NumberPredicate(q, v);
      if (v.has_system) {
        p += " AND x.system = " + q.Bind(v.system) + " AND x.code = " + q.Bind(v.code);
      } else if (!v.code.empty()) {
        std::string u = q.Bind(v.code);
        p += " AND (x.code = " + u + " OR x.unit = " + u + ")";
      }
      return "(" + p + ")";
    }
    case ParamType::kUri:
      if (c.modifier == SearchModifier::kBelow) {
        return "(x.uri >= " + q.Bind(v.text) + " AND x.uri < " + q.Bind(PrefixEnd(v.text)) + ")";
      }
      if (c.modifier == SearchModifier::kAbove) return "instr(" + q.Bind(v.text) + ", x.uri) = 1";
      return "x.uri = " + q.Bind(v.text);
  }
  return InvalidArgument("unsupported search parameter type");
}

// The values [first, last) OR-ed as a balanced tree: a flat chain of n ORs
// nests n deep in SQLite's parser, and past its expression depth limit
// (1,000) a valid search failed to prepare (a chain or _revinclude resolves
// to up to 1,000 ids).
StatusOr<std::string> OrTree(Sql& q, const SearchCondition& c, size_t first, size_t last) {
  if (last - first == 1) return ValuePredicate(q, c, c.values[first]);
  const size_t mid = first + (last - first) / 2;
  PV_ASSIGN_OR_RETURN(std::string left, OrTree(q, c, first, mid));
  PV_ASSIGN_OR_RETURN(std::string right, OrTree(q, c, mid, last));
  return "(" + left + " OR " + right + ")";
}

StatusOr<std::string> ValuesPredicate(Sql& q, const SearchCondition& c) {
  if (c.values.empty()) return InvalidArgument("a search condition without values");
  PV_ASSIGN_OR_RETURN(std::string tree, OrTree(q, c, 0, c.values.size()));
  return "(" + tree + ")";
}

// Charges a search's virtual machine steps to its budget while installed
// (SearchBudget); SQLite then stops the statement with SQLITE_INTERRUPT.
class BudgetGuard {
 public:
  static constexpr int kStepsPerUnit = 100;
  BudgetGuard(sqlite3* db, SearchBudget* budget) : db_(budget != nullptr ? db : nullptr) {
    if (db_ != nullptr) sqlite3_progress_handler(db_, kStepsPerUnit, &Charge, budget);
  }
  ~BudgetGuard() {
    if (db_ != nullptr) sqlite3_progress_handler(db_, 0, nullptr, nullptr);
  }
  BudgetGuard(const BudgetGuard&) = delete;
  BudgetGuard& operator=(const BudgetGuard&) = delete;

 private:
  static int Charge(void* arg) {
    auto* budget = static_cast<SearchBudget*>(arg);
    return --budget->units_left < 0 ? 1 : 0;
  }
  sqlite3* const db_;
};

StatusOr<std::string> MatchSql(Sql& q, const std::string& type, const std::vector<SearchCondition>& conds,
                               size_t depth);

// A boolean SQL expression: does the resource with sequence `seq` (an SQL
// expression) satisfy `c`?
StatusOr<std::string> FilterSql(Sql& q, const std::string& type, const SearchCondition& c, const std::string& seq,
                                size_t depth) {
  if (depth > kMaxNestingDepth) return InvalidArgument("search conditions nested too deeply");
  switch (c.kind) {
    case SearchCondition::Kind::kPlain: {
      PV_ASSIGN_OR_RETURN(const search::SearchParamDef* def, Def(type, c.param, c.type));
      std::string probe = "SELECT 1 FROM " + BySeq(c.type) + " WHERE x.seq = " + seq +
                          " AND x.p = " + q.Bind(ParamKey(type, def));
      if (c.modifier == SearchModifier::kMissing) {
        bool missing = !c.values.empty() && c.values[0].missing;
        return std::string(missing ? "NOT EXISTS (" : "EXISTS (") + probe + ")";
      }
      PV_ASSIGN_OR_RETURN(std::string values, ValuesPredicate(q, c));
      return std::string(c.modifier == SearchModifier::kNot ? "NOT EXISTS (" : "EXISTS (") + probe + " AND " +
             values + ")";
    }
    case SearchCondition::Kind::kChain: {
      PV_ASSIGN_OR_RETURN(const search::SearchParamDef* def, Def(type, c.param, ParamType::kReference));
      if (c.nested.size() != 1) return InvalidArgument("a chained parameter needs one condition");
      std::string target = q.Bind(c.target_type);
      std::string probe = "EXISTS (SELECT 1 FROM sx_ref x INDEXED BY " + PrimaryKeyOf("sx_ref") + " JOIN current_versions c" + std::to_string(depth) +
                          " ON c" + std::to_string(depth) + ".type = " + target + " AND c" + std::to_string(depth) +
                          ".id = x.ref_id AND c" + std::to_string(depth) + ".deleted = 0 WHERE x.seq = " + seq +
                          " AND x.p = " + q.Bind(ParamKey(type, def)) + " AND x.ref_type = " + target + " AND ";
      PV_ASSIGN_OR_RETURN(std::string inner,
                          FilterSql(q, c.target_type, c.nested[0], "c" + std::to_string(depth) + ".seq", depth + 1));
      return probe + inner + ")";
    }
    case SearchCondition::Kind::kHas: {
      PV_ASSIGN_OR_RETURN(const search::SearchParamDef* def, Def(c.target_type, c.has_param, ParamType::kReference));
      if (c.nested.size() != 1) return InvalidArgument("_has needs one condition");
      std::string d = std::to_string(depth);
      std::string probe = "EXISTS (SELECT 1 FROM current_versions me" + d + " INDEXED BY current_versions_by_seq JOIN sx_ref h" + d + " ON h" + d +
                          ".p = " + q.Bind(ParamKey(c.target_type, def)) + " AND h" +
                          d + ".ref_type = " + q.Bind(type) + " AND h" + d + ".ref_id = me" + d + ".id WHERE me" + d +
                          ".seq = " + seq + " AND ";
      PV_ASSIGN_OR_RETURN(std::string inner, FilterSql(q, c.target_type, c.nested[0], "h" + d + ".seq", depth + 1));
      return probe + inner + ")";
    }
  }
  return InvalidArgument("unsupported search condition");
}

// How well a condition narrows the candidates when it drives; 0 = cannot
// drive (negative conditions match by absence).
int DriverRank(const SearchCondition& c) {
  if (c.kind == SearchCondition::Kind::kHas) return 1;
  if (c.kind == SearchCondition::Kind::kChain) return 6;
  if (c.modifier == SearchModifier::kNot) return 0;
  if (c.modifier == SearchModifier::kMissing) return (!c.values.empty() && c.values[0].missing) ? 0 : 1;
  for (const SearchValue& v : c.values) {
    if (v.prefix == SearchPrefix::kNe) return 0;
  }
  switch (c.type) {
    case ParamType::kReference: return 9;
    case ParamType::kToken:
      if (c.modifier == SearchModifier::kText) return 3;
      if (c.param == "_id") return 10;
      for (const SearchValue& v : c.values)
        if (v.code.empty()) return 3;
      return 8;
    case ParamType::kString: return c.modifier == SearchModifier::kContains ? 2 : 7;
    case ParamType::kUri: return c.modifier == SearchModifier::kAbove ? 2 : 7;
    case ParamType::kDate:
    case ParamType::kNumber:
    case ParamType::kQuantity: return 4;
  }
  return 1;
}

// A SELECT of the sequence numbers satisfying `c` (column `seq`), or "" when
// `c` cannot drive.
StatusOr<std::string> DriverSql(Sql& q, const std::string& type, const SearchCondition& c, size_t depth) {
  if (DriverRank(c) == 0) return std::string();
  if (c.kind == SearchCondition::Kind::kPlain) {
    PV_ASSIGN_OR_RETURN(const search::SearchParamDef* def, Def(type, c.param, c.type));
    std::string sql = "SELECT x.seq AS seq FROM " + std::string(TableOf(c.type)) + " x WHERE x.p = " +
                      q.Bind(ParamKey(type, def));
    if (c.modifier == SearchModifier::kMissing) return sql;
    PV_ASSIGN_OR_RETURN(std::string values, ValuesPredicate(q, c));
    return sql + " AND " + values;
  }
  if (c.kind == SearchCondition::Kind::kChain) {
    PV_ASSIGN_OR_RETURN(const search::SearchParamDef* def, Def(type, c.param, ParamType::kReference));
    if (c.nested.size() != 1) return InvalidArgument("a chained parameter needs one condition");
    std::string sql = "SELECT x.seq AS seq FROM sx_ref x WHERE x.p = " +
                      q.Bind(ParamKey(type, def)) + " AND x.ref_type = " + q.Bind(c.target_type) +
                      " AND x.ref_id IN (SELECT tv.id FROM current_versions tv INDEXED BY current_versions_by_seq WHERE tv.seq IN (";
    PV_ASSIGN_OR_RETURN(std::string inner, MatchSql(q, c.target_type, c.nested, depth + 1));
    return sql + inner + "))";
  }
  // _has drives only when nothing better exists: from the referencing
  // resources that match to the current resources they point at.
  PV_ASSIGN_OR_RETURN(const search::SearchParamDef* def, Def(c.target_type, c.has_param, ParamType::kReference));
  if (c.nested.size() != 1) return InvalidArgument("_has needs one condition");
  std::string t = q.Bind(type);
  std::string sql = "SELECT hc.seq AS seq FROM sx_ref hx JOIN current_versions hc ON hc.type = " + t +
                    " AND hc.id = hx.ref_id AND hc.deleted = 0 WHERE hx.p = " +
                    q.Bind(ParamKey(c.target_type, def)) + " AND hx.ref_type = " + t + " AND hx.seq IN (";
  PV_ASSIGN_OR_RETURN(std::string inner, MatchSql(q, c.target_type, c.nested, depth + 1));
  return sql + inner + ")";
}

// A SELECT of the distinct sequence numbers (column `seq`) of current
// resources of `type` satisfying every condition.
StatusOr<std::string> MatchSql(Sql& q, const std::string& type, const std::vector<SearchCondition>& conds,
                               size_t depth) {
  if (depth > kMaxNestingDepth) return InvalidArgument("search conditions nested too deeply");
  size_t best = conds.size();
  int best_rank = 0;
  for (size_t i = 0; i < conds.size(); ++i) {
    int r = DriverRank(conds[i]);
    if (r > best_rank) {
      best_rank = r;
      best = i;
    }
  }
  std::string driver;
  if (best < conds.size()) {
    PV_ASSIGN_OR_RETURN(driver, DriverSql(q, type, conds[best], depth));
  } else {
    driver = "SELECT c.seq AS seq FROM current_versions c WHERE c.type = " + q.Bind(type) + " AND c.deleted = 0";
  }
  std::string d = "d" + std::to_string(depth);
  std::string sql = "SELECT DISTINCT " + d + ".seq AS seq FROM (" + driver + ") " + d;
  bool first = true;
  for (size_t i = 0; i < conds.size(); ++i) {
    if (i == best) continue;
    PV_ASSIGN_OR_RETURN(std::string f, FilterSql(q, type, conds[i], d + ".seq", depth));
    sql += first ? " WHERE " : " AND ";
    sql += f;
    first = false;
  }
  return sql;
}

StatusOr<std::string> SortKeySql(Sql& q, const std::string& type, const SearchSortKey& k) {
  PV_ASSIGN_OR_RETURN(const search::SearchParamDef* def, Def(type, k.param, k.type));
  const char* agg = k.descending ? "MAX" : "MIN";
  std::string col;
  switch (k.type) {
    case ParamType::kString: col = "x.folded"; break;
    case ParamType::kToken: col = "x.code"; break;
    case ParamType::kReference: col = "x.ref_type || '/' || x.ref_id"; break;
    case ParamType::kDate: col = k.descending ? "x.high" : "x.low"; break;
    case ParamType::kNumber:
    case ParamType::kQuantity: col = "x.value"; break;
    case ParamType::kUri: col = "x.uri"; break;
  }
  return "(SELECT " + std::string(agg) + "(" + col + ") FROM " + BySeq(k.type) + " WHERE x.seq = m.seq AND x.p = " +
         q.Bind(ParamKey(type, def)) + ")";
}

// Positions: per sort key a tag ('n' null, 'i' integer, 'r' real, 's'
// text) with a length-prefixed payload, then the id. Opaque to callers.
void AppendField(std::string& out, char tag, std::string_view payload) {
  out += tag;
  out += std::to_string(payload.size());
  out += ':';
  out += payload;
}

std::string EncodePosition(const std::vector<BindValue>& keys, const std::string& id) {
  std::string out;
  for (const BindValue& k : keys) {
    if (std::holds_alternative<int64_t>(k)) {
      AppendField(out, 'i', std::to_string(std::get<int64_t>(k)));
    } else if (std::holds_alternative<double>(k)) {
      double d = std::get<double>(k);
      char buf[sizeof(double)];
      std::memcpy(buf, &d, sizeof d);
      AppendField(out, 'r', std::string_view(buf, sizeof buf));
    } else if (std::holds_alternative<std::string>(k)) {
      AppendField(out, 's', std::get<std::string>(k));
    } else {
      AppendField(out, 'n', "");
    }
  }
  AppendField(out, 's', id);
  return out;
}

StatusOr<std::vector<BindValue>> DecodePosition(std::string_view s, size_t fields) {
  std::vector<BindValue> out;
  while (!s.empty()) {
    if (out.size() > fields) break;
    char tag = s[0];
    size_t colon = s.find(':');
    if (colon == std::string_view::npos || colon < 2 || colon > 8) return InvalidArgument("malformed page position");
    size_t len = 0;
    for (size_t i = 1; i < colon; ++i) {
      if (s[i] < '0' || s[i] > '9') return InvalidArgument("malformed page position");
      len = len * 10 + static_cast<size_t>(s[i] - '0');
    }
    s.remove_prefix(colon + 1);
    if (len > s.size()) return InvalidArgument("malformed page position");
    std::string_view payload = s.substr(0, len);
    s.remove_prefix(len);
    switch (tag) {
      case 'n': out.emplace_back(std::monostate{}); break;
      case 's': out.emplace_back(std::string(payload)); break;
      case 'i': {
        int64_t v = 0;
        bool neg = !payload.empty() && payload[0] == '-';
        std::string_view digits = neg ? payload.substr(1) : payload;
        if (digits.empty() || digits.size() > 19) return InvalidArgument("malformed page position");
        for (char ch : digits) {
          if (ch < '0' || ch > '9') return InvalidArgument("malformed page position");
          v = v * 10 + (ch - '0');
        }
        out.emplace_back(neg ? -v : v);
        break;
      }
      case 'r': {
        if (payload.size() != sizeof(double)) return InvalidArgument("malformed page position");
        double d;
        std::memcpy(&d, payload.data(), sizeof d);
        out.emplace_back(d);
        break;
      }
      default: return InvalidArgument("malformed page position");
    }
  }
  if (out.size() != fields || !std::holds_alternative<std::string>(out.back())) {
    return InvalidArgument("malformed page position");
  }
  return out;
}

BindValue Column(sqlite3_stmt* s, int col) {
  switch (sqlite3_column_type(s, col)) {
    case SQLITE_INTEGER: return static_cast<int64_t>(sqlite3_column_int64(s, col));
    case SQLITE_FLOAT: return sqlite3_column_double(s, col);
    case SQLITE_NULL: return std::monostate{};
    default: {
      const unsigned char* p = sqlite3_column_text(s, col);
      return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s, col)));
    }
  }
}

void BindAll(sqlite3_stmt* s, const std::vector<BindValue>& binds) {
  for (size_t i = 0; i < binds.size(); ++i) {
    int idx = static_cast<int>(i + 1);
    const BindValue& b = binds[i];
    if (std::holds_alternative<int64_t>(b)) {
      sqlite3_bind_int64(s, idx, std::get<int64_t>(b));
    } else if (std::holds_alternative<double>(b)) {
      sqlite3_bind_double(s, idx, std::get<double>(b));
    } else if (std::holds_alternative<std::string>(b)) {
      const std::string& t = std::get<std::string>(b);
      sqlite3_bind_text(s, idx, t.data(), static_cast<int>(t.size()), SQLITE_TRANSIENT);
    } else {
      sqlite3_bind_null(s, idx);
    }
  }
}

}  // namespace

const char* const kIndexSchema = R"sql(
-- seq -> (type, id) of current versions without touching resource_versions
-- (a secondary index of a WITHOUT ROWID table carries its primary key).
CREATE INDEX IF NOT EXISTS current_versions_by_seq ON current_versions(seq);
-- Rows are keyed by (seq, p, n), n numbering a resource's rows, so the table
-- itself serves per-resource probes and removal, and each lookup index
-- carries (seq, n) instead of a rowid: two B-trees per row, not three.
CREATE TABLE IF NOT EXISTS sx_string(seq INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL,
  folded TEXT NOT NULL, exact TEXT NOT NULL, PRIMARY KEY(seq, p, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sx_string_lookup ON sx_string(p, folded);
CREATE TABLE IF NOT EXISTS sx_token(seq INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL,
  system TEXT NOT NULL, code TEXT NOT NULL, text TEXT NOT NULL, type_system TEXT NOT NULL, type_code TEXT NOT NULL,
  PRIMARY KEY(seq, p, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sx_token_lookup ON sx_token(p, code, system);
CREATE TABLE IF NOT EXISTS sx_ref(seq INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL,
  ref_type TEXT NOT NULL, ref_id TEXT NOT NULL, url TEXT NOT NULL, idsys TEXT NOT NULL, idval TEXT NOT NULL,
  PRIMARY KEY(seq, p, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sx_ref_lookup ON sx_ref(p, ref_id, ref_type);
CREATE TABLE IF NOT EXISTS sx_date(seq INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL,
  low INTEGER NOT NULL, high INTEGER NOT NULL, PRIMARY KEY(seq, p, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sx_date_low ON sx_date(p, low);
CREATE INDEX IF NOT EXISTS sx_date_high ON sx_date(p, high);
CREATE TABLE IF NOT EXISTS sx_number(seq INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL,
  value REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL,
  PRIMARY KEY(seq, p, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sx_number_lookup ON sx_number(p, value);
CREATE TABLE IF NOT EXISTS sx_uri(seq INTEGER NOT NULL, p INTEGER NOT NULL, n INTEGER NOT NULL, uri TEXT NOT NULL,
  PRIMARY KEY(seq, p, n)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sx_uri_lookup ON sx_uri(p, uri);
)sql";

const char* const kDropIndexSchema = R"sql(
DROP TABLE IF EXISTS sx_string; DROP TABLE IF EXISTS sx_token; DROP TABLE IF EXISTS sx_ref;
DROP TABLE IF EXISTS sx_date; DROP TABLE IF EXISTS sx_number; DROP TABLE IF EXISTS sx_uri;
DROP INDEX IF EXISTS current_versions_by_seq;
)sql";

const char* const kDropLookupIndexSchema = R"sql(
DROP INDEX IF EXISTS sx_string_lookup; DROP INDEX IF EXISTS sx_token_lookup; DROP INDEX IF EXISTS sx_ref_lookup;
DROP INDEX IF EXISTS sx_date_low; DROP INDEX IF EXISTS sx_date_high; DROP INDEX IF EXISTS sx_number_lookup;
DROP INDEX IF EXISTS sx_uri_lookup;
)sql";

std::string Fingerprint() {
  // FNV-1a over the parameter table: a regenerated table changes row numbers
  // and expressions, and so invalidates every stored row. String rows hold
  // FoldString's output, so its version is part of the fingerprint too.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;
    h *= 1099511628211ull;
  };
  for (const auto& d : search::AllSearchParams()) {
    mix(d.base);
    mix(d.code);
    mix(search::ParamTypeName(d.type));
    mix(d.expression);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return "v" + std::to_string(kIndexLayoutVersion) + "-f" + std::to_string(search::kFoldVersion) + "-" + buf;
}

IndexWriter::~IndexWriter() {
  for (sqlite3_stmt* s : stmts_) sqlite3_finalize(s);
}

StatusOr<sqlite3_stmt*> IndexWriter::Stmt(int slot, const char* sql) {
  if (!stmts_[slot]) {
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmts_[slot], nullptr);
    if (rc != SQLITE_OK) return sqlite::Error(rc, kFile, "prepare search index statement");
  }
  return stmts_[slot];
}

namespace {

// Parameters whose values the writer can change after PreparedRows::Extract:
// it sets meta.versionId and meta.lastUpdated (and replaces a meta that is
// not an object, which has none of the members below either). Paths that
// walk a whole subtree could reach meta too.
bool ReadsWriterFields(const search::SearchParamDef& def) {
  // The caller's own meta members, extracted with the rest.
  static constexpr std::string_view kCallerMeta[] = {"Resource.meta.profile", "Resource.meta.security",
                                                     "Resource.meta.source", "Resource.meta.tag"};
  for (std::string_view m : kCallerMeta) {
    if (def.expression == m) return false;
  }
  return def.expression.find("meta") != std::string_view::npos ||
         def.expression.find("descendants") != std::string_view::npos ||
         def.expression.find("children") != std::string_view::npos;
}

// search::SearchParamsFor(type), built once per type: every write asks
// twice, and building the list is a scan and an allocation.
const std::vector<const search::SearchParamDef*>& ParamsOf(std::string_view type) {
  static const auto* by_type = [] {
    auto* m = new std::unordered_map<std::string_view, std::vector<const search::SearchParamDef*>>();
    for (std::string_view t : fhir::AllResourceTypes()) m->emplace(t, search::SearchParamsFor(t));
    return m;
  }();
  static const std::vector<const search::SearchParamDef*> kNone;
  auto it = by_type->find(type);
  return it == by_type->end() ? kNone : it->second;
}

}  // namespace

PreparedRows PreparedRows::Extract(std::string_view type, const boost::json::object& resource) {
  PreparedRows out;
  const auto& defs = ParamsOf(type);
  out.by_param_.resize(defs.size());
  out.writer_time_.resize(defs.size());
  for (size_t i = 0; i < defs.size(); ++i) {
    if (ReadsWriterFields(*defs[i])) {
      out.writer_time_[i] = true;
    } else {
      auto rows = search::ExtractParam(*defs[i], resource);
      if (!rows.ok()) {
        out.status_ = rows.status();
        out.by_param_.clear();
        return out;
      }
      out.by_param_[i] = std::move(*rows);
    }
  }
  return out;
}

Status IndexWriter::Add(std::string_view type, int64_t seq, const boost::json::object& resource,
                        const PreparedRows* prepared, int* unindexable_params) {
  static constexpr const char* kInsert[] = {
      "INSERT INTO sx_string(seq, p, folded, exact, n) VALUES (?1, ?2, ?3, ?4, ?9)",
      ("INSERT INTO sx_token(seq, p, system, code, text, type_system, type_code, n) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9)"),
      "INSERT INTO sx_ref(seq, p, ref_type, ref_id, url, idsys, idval, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9)",
      "INSERT INTO sx_date(seq, p, low, high, n) VALUES (?1, ?2, ?3, ?4, ?9)",
      "INSERT INTO sx_number(seq, p, value, system, code, unit, n) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?9)",
      "INSERT INTO sx_uri(seq, p, uri, n) VALUES (?1, ?2, ?3, ?9)",
  };
  int64_t row = 0;
  const int64_t type_base = TypeKeyBase(type);
  const auto& defs = ParamsOf(type);
  if (prepared && !prepared->status_.ok()) return prepared->status_;
  if (prepared && prepared->by_param_.size() != defs.size()) return Internal("prepared index rows of another type");
  // Extracted before the first insert, so a refusal leaves nothing behind.
  std::vector<std::vector<search::IndexEntry>> extracted(defs.size());
  for (size_t i = 0; i < defs.size(); ++i) {
    if (prepared && !prepared->writer_time_[i]) continue;
    auto rows = search::ExtractParam(*defs[i], resource);
    if (!rows.ok()) {
      if (!unindexable_params) return rows.status();
      ++*unindexable_params;
      continue;
    }
    extracted[i] = std::move(*rows);
  }
  for (size_t i = 0; i < defs.size(); ++i) {
    const search::SearchParamDef* def = defs[i];
    const int64_t key = ParamKey(type_base, def);
    const std::vector<search::IndexEntry>* entries = &extracted[i];
    if (prepared && !prepared->writer_time_[i]) entries = &prepared->by_param_[i];
    for (const search::IndexEntry& e : *entries) {
      int slot = 0;
      switch (e.type) {
        case ParamType::kString: slot = 0; break;
        case ParamType::kToken: slot = 1; break;
        case ParamType::kReference: slot = 2; break;
        case ParamType::kDate: slot = 3; break;
        case ParamType::kNumber:
        case ParamType::kQuantity: slot = 4; break;
        case ParamType::kUri: slot = 5; break;
      }
      PV_ASSIGN_OR_RETURN(sqlite3_stmt * raw, Stmt(slot, kInsert[slot]));
      // Every parameter of the slot's statement is bound on every use, and
      // the entry outlives the step: no copies, no clearing.
      auto text = [raw](int i, const std::string& v) {
        sqlite3_bind_text(raw, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
      };
      sqlite3_bind_int64(raw, 1, seq);
      sqlite3_bind_int64(raw, 2, key);
      sqlite3_bind_int64(raw, 9, row++);
      switch (e.type) {
        case ParamType::kString: text(3, e.folded), text(4, e.value); break;
        case ParamType::kToken:
          text(3, e.system), text(4, e.value), text(5, e.text), text(6, e.type_system), text(7, e.type_code);
          break;
        case ParamType::kReference:
          text(3, e.ref_type), text(4, e.ref_id), text(5, e.url), text(6, e.system), text(7, e.code);
          break;
        case ParamType::kDate:
          sqlite3_bind_int64(raw, 3, e.low_ms);
          sqlite3_bind_int64(raw, 4, e.high_ms);
          break;
        case ParamType::kNumber:
        case ParamType::kQuantity:
          sqlite3_bind_double(raw, 3, e.number);
          text(4, e.system), text(5, e.code), text(6, e.unit);
          break;
        case ParamType::kUri: text(3, e.value); break;
      }
      int rc = sqlite3_step(raw);
      sqlite3_reset(raw);
      if (rc != SQLITE_DONE) return sqlite::Error(rc, kFile, "write search index");
    }
  }
  return Status::Ok();
}

Status IndexWriter::Remove(int64_t seq) {
  static constexpr const char* kDelete[] = {
      "DELETE FROM sx_string WHERE seq = ?1", "DELETE FROM sx_token WHERE seq = ?1",
      "DELETE FROM sx_ref WHERE seq = ?1",    "DELETE FROM sx_date WHERE seq = ?1",
      "DELETE FROM sx_number WHERE seq = ?1", "DELETE FROM sx_uri WHERE seq = ?1",
  };
  for (int i = 0; i < 6; ++i) {
    PV_ASSIGN_OR_RETURN(sqlite3_stmt * raw, Stmt(6 + i, kDelete[i]));
    sqlite::Statement s(raw);
    s.Bind(1, seq);
    if (int rc = s.Step(); rc != SQLITE_DONE) return sqlite::Error(rc, kFile, "update search index");
  }
  return Status::Ok();
}

StatusOr<std::vector<Match>> FindMatches(sqlite3* db, const SearchQuery& query, int limit) {
  Sql q;
  const bool back = query.backward;
  if (back && query.after.empty()) return InvalidArgument("paging backwards needs a position");
  std::vector<BindValue> after;
  if (!query.after.empty()) {
    PV_ASSIGN_OR_RETURN(after, DecodePosition(query.after, query.sort.size() + 1));
  }
  if (query.conditions.empty() && query.sort.empty()) {
    // The whole type in id order: a walk of current_versions' primary key.
    q.text = "SELECT c.seq, c.id FROM current_versions c WHERE c.type = " + q.Bind(query.type) + " AND c.deleted = 0";
    if (!after.empty()) q.text += (back ? " AND c.id < " : " AND c.id > ") + q.Bind(after.back());
    q.text += (back ? " ORDER BY c.id DESC LIMIT " : " ORDER BY c.id LIMIT ") + q.Bind(static_cast<int64_t>(limit));
  } else {
    PV_ASSIGN_OR_RETURN(std::string match, MatchSql(q, query.type, query.conditions, 0));
    std::string inner = "SELECT m.seq AS seq, v.id AS id";
    for (size_t i = 0; i < query.sort.size(); ++i) {
      PV_ASSIGN_OR_RETURN(std::string k, SortKeySql(q, query.type, query.sort[i]));
      inner += ", " + k + " AS k" + std::to_string(i);
    }
    inner += " FROM (" + match + ") m JOIN current_versions v INDEXED BY current_versions_by_seq ON v.seq = m.seq";
    q.text = "SELECT r.* FROM (" + inner + ") r";
    if (!after.empty()) {
      // Keyset continuation: strictly after (or, backwards, before)
      // (k0, k1, ..., id) in the forward order below, where a missing key
      // sorts after every present one.
      std::string any;
      std::string equal_prefix;
      for (size_t i = 0; i < query.sort.size(); ++i) {
        std::string k = "r.k" + std::to_string(i);
        const BindValue& v = after[i];
        bool null = std::holds_alternative<std::monostate>(v);
        bool greater = query.sort[i].descending == back;  // the comparison that moves in our direction
        std::string beyond, same;
        if (null) {
          beyond = back ? k + " IS NOT NULL" : "0";
          same = k + " IS NULL";
        } else {
          std::string b = q.Bind(v);
          beyond = back ? "(" + k + " IS NOT NULL AND " + k + (greater ? " > " : " < ") + b + ")"
                        : "(" + k + " IS NULL OR " + k + (greater ? " > " : " < ") + b + ")";
          same = k + " = " + b;
        }
        any += (any.empty() ? "" : " OR ") + std::string("(") + equal_prefix + beyond + ")";
        equal_prefix += same + " AND ";
      }
      any += (any.empty() ? "" : " OR ") + std::string("(") + equal_prefix + "r.id" + (back ? " < " : " > ") +
             q.Bind(after.back()) + ")";
      q.text += " WHERE " + any;
    }
    q.text += " ORDER BY ";
    for (size_t i = 0; i < query.sort.size(); ++i) {
      std::string k = "r.k" + std::to_string(i);
      bool desc = query.sort[i].descending != back;
      q.text += k + (back ? " IS NULL DESC, " : " IS NULL, ") + k + (desc ? " DESC, " : " ASC, ");
    }
    q.text += (back ? "r.id DESC LIMIT " : "r.id LIMIT ") + q.Bind(static_cast<int64_t>(limit));
  }
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, q.text.c_str(), static_cast<int>(q.text.size()), &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    return sqlite::Error(rc, kFile, "prepare search");
  }
  // Finalized on every exit.
  struct Finalizer {
    sqlite3_stmt* p;
    ~Finalizer() { sqlite3_finalize(p); }
  } fin{raw};
  BindAll(raw, q.binds);
  if (query.budget != nullptr && query.budget->units_left <= 0) {
    return InvalidArgument("the search is too costly; narrow it");
  }
  const BudgetGuard charged(db, query.budget);
  std::vector<Match> out;
  while ((rc = sqlite3_step(raw)) == SQLITE_ROW) {
    Match m;
    m.seq = sqlite3_column_int64(raw, 0);
    m.id = std::string(reinterpret_cast<const char*>(sqlite3_column_text(raw, 1)),
                       static_cast<size_t>(sqlite3_column_bytes(raw, 1)));
    std::vector<BindValue> keys;
    for (size_t i = 0; i < query.sort.size(); ++i) keys.push_back(Column(raw, static_cast<int>(2 + i)));
    m.position = EncodePosition(keys, m.id);
    out.push_back(std::move(m));
  }
  if ((rc & 0xff) == SQLITE_INTERRUPT && query.budget != nullptr && query.budget->units_left < 0) {
    return InvalidArgument("the search is too costly; narrow it");
  }
  if (rc != SQLITE_DONE) return sqlite::Error(rc, kFile, "search");
  if (back) std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace phivault::store::sqlite_search
