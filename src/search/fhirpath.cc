#include "search/fhirpath.h"

#include <cctype>
#include <charconv>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace phivault::search {

// AST. Kinds cover the grammar subset described in the header.
struct FhirPathNode {
  enum Kind {
    kMember,     // focus.name (name in `name`); `lhs` null means the context
    kFunction,   // focus.name(args...); `lhs` null means the context
    kIndex,      // lhs[args[0]]
    kUnion,      // lhs | rhs
    kEq,         // lhs = rhs
    kNe,         // lhs != rhs
    kAnd,        // lhs and rhs
    kOr,         // lhs or rhs
    kIs,         // lhs is name
    kAs,         // lhs as name
    kString,     // literal in `name`
    kInteger,    // literal in `number`
    kBool,       // literal in `number` (0/1)
  };
  Kind kind;
  std::string name;
  int64_t number = 0;
  std::shared_ptr<const FhirPathNode> lhs, rhs;
  std::vector<std::shared_ptr<const FhirPathNode>> args;
};

namespace {

using NodePtr = std::shared_ptr<const FhirPathNode>;
using Node = FhirPathNode;
using Items = std::vector<PathItem>;

// ---------------------------------------------------------------- lexer

struct Token {
  enum Kind { kEnd, kIdent, kString, kInteger, kSymbol } kind = kEnd;
  std::string text;
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  // Returns false (with `error` set) on a malformed token.
  bool Next(Token& t, std::string& error) {
    while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    t = Token{};
    if (pos_ >= s_.size()) return true;
    char c = s_[pos_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t b = pos_;
      while (pos_ < s_.size() &&
             (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
        ++pos_;
      t.kind = Token::kIdent;
      t.text = std::string(s_.substr(b, pos_ - b));
      return true;
    }
    if (c == '`') {  // delimited identifier, e.g. `div`
      size_t e = s_.find('`', pos_ + 1);
      if (e == std::string_view::npos) return Fail(error, "unterminated identifier");
      t.kind = Token::kIdent;
      t.text = std::string(s_.substr(pos_ + 1, e - pos_ - 1));
      pos_ = e + 1;
      return true;
    }
    if (c == '\'') {
      ++pos_;
      t.kind = Token::kString;
      while (pos_ < s_.size() && s_[pos_] != '\'') {
        if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) {
          char e = s_[pos_ + 1];
          // Only the escapes search expressions could need; others are literal.
          t.text.push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
          pos_ += 2;
          continue;
        }
        t.text.push_back(s_[pos_++]);
      }
      if (pos_ >= s_.size()) return Fail(error, "unterminated string");
      ++pos_;
      return true;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t b = pos_;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      if (pos_ < s_.size() && s_[pos_] == '.' && pos_ + 1 < s_.size() &&
          std::isdigit(static_cast<unsigned char>(s_[pos_ + 1])))
        return Fail(error, "decimal literals are not supported");
      t.kind = Token::kInteger;
      t.text = std::string(s_.substr(b, pos_ - b));
      return true;
    }
    if (c == '!' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '=') {
      t.kind = Token::kSymbol;
      t.text = "!=";
      pos_ += 2;
      return true;
    }
    if (std::string_view(".()[]|=,").find(c) != std::string_view::npos) {
      t.kind = Token::kSymbol;
      t.text = std::string(1, c);
      ++pos_;
      return true;
    }
    return Fail(error, "unsupported character");
  }

 private:
  static bool Fail(std::string& error, const char* m) {
    error = m;
    return false;
  }
  std::string_view s_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------- parser

// Recursive descent, one function per precedence level (FHIRPath order:
// invocation, is/as, |, =/!=, and, or). Depth is counted on every descent
// through parentheses or arguments, so hostile nesting fails cleanly.
class Parser {
 public:
  explicit Parser(std::string_view s) : lex_(s) {}

  StatusOr<NodePtr> ParseAll() {
    if (!Advance()) return Err();
    NodePtr n = ParseOr();
    if (!n) return Err();
    if (tok_.kind != Token::kEnd) return InvalidArgument("fhirpath: trailing input");
    return n;
  }

 private:
  Status Err() {
    return Status(unsupported_ ? StatusCode::kUnsupported : StatusCode::kInvalidArgument,
                  "fhirpath: " + error_);
  }
  NodePtr Fail(std::string m, bool unsupported = false) {
    if (error_.empty()) {
      error_ = std::move(m);
      unsupported_ = unsupported;
    }
    return nullptr;
  }
  bool Advance() { return lex_.Next(tok_, error_); }
  bool IsSym(std::string_view s) const { return tok_.kind == Token::kSymbol && tok_.text == s; }
  bool IsWord(std::string_view s) const { return tok_.kind == Token::kIdent && tok_.text == s; }

  static NodePtr Bin(Node::Kind k, NodePtr l, NodePtr r) {
    auto n = std::make_shared<Node>();
    n->kind = k;
    n->lhs = std::move(l);
    n->rhs = std::move(r);
    return n;
  }

  NodePtr ParseOr() {
    if (++depth_ > FhirPath::kMaxNesting) return Fail("nesting too deep");
    NodePtr l = ParseAnd();
    while (l && IsWord("or")) {
      if (!Advance()) return nullptr;
      NodePtr r = ParseAnd();
      if (!r) return nullptr;
      l = Bin(Node::kOr, l, r);
    }
    --depth_;
    return l;
  }
  NodePtr ParseAnd() {
    NodePtr l = ParseEq();
    while (l && IsWord("and")) {
      if (!Advance()) return nullptr;
      NodePtr r = ParseEq();
      if (!r) return nullptr;
      l = Bin(Node::kAnd, l, r);
    }
    if (l && (IsWord("xor") || IsWord("implies"))) return Fail("operator " + tok_.text, true);
    return l;
  }
  NodePtr ParseEq() {
    NodePtr l = ParseUnion();
    while (l && (IsSym("=") || IsSym("!="))) {
      Node::Kind k = IsSym("=") ? Node::kEq : Node::kNe;
      if (!Advance()) return nullptr;
      NodePtr r = ParseUnion();
      if (!r) return nullptr;
      l = Bin(k, l, r);
    }
    return l;
  }
  NodePtr ParseUnion() {
    NodePtr l = ParseType();
    while (l && IsSym("|")) {
      if (!Advance()) return nullptr;
      NodePtr r = ParseType();
      if (!r) return nullptr;
      l = Bin(Node::kUnion, l, r);
    }
    return l;
  }
  NodePtr ParseType() {
    NodePtr l = ParsePostfix();
    while (l && (IsWord("is") || IsWord("as"))) {
      Node::Kind k = IsWord("is") ? Node::kIs : Node::kAs;
      if (!Advance()) return nullptr;
      std::string type;
      if (!ParseTypeName(type)) return nullptr;
      auto n = std::make_shared<Node>();
      n->kind = k;
      n->lhs = l;
      n->name = type;
      l = n;
    }
    return l;
  }
  // TypeName, optionally qualified (FHIR.Patient, System.String): the
  // qualifier is dropped because FHIR and System names do not collide here.
  bool ParseTypeName(std::string& out) {
    if (tok_.kind != Token::kIdent) return Fail("expected a type name") != nullptr;
    out = tok_.text;
    if (!Advance()) return false;
    while (IsSym(".")) {
      if (!Advance()) return false;
      if (tok_.kind != Token::kIdent) return Fail("expected a type name") != nullptr;
      out = tok_.text;
      if (!Advance()) return false;
    }
    return true;
  }
  NodePtr ParsePostfix() {
    NodePtr l = ParsePrimary();
    while (l) {
      if (IsSym(".")) {
        if (!Advance()) return nullptr;
        if (tok_.kind != Token::kIdent) return Fail("expected a name after '.'");
        l = ParseInvocation(l);
      } else if (IsSym("[")) {
        if (!Advance()) return nullptr;
        NodePtr idx = ParseOr();
        if (!idx) return nullptr;
        if (!IsSym("]")) return Fail("expected ']'");
        if (!Advance()) return nullptr;
        auto n = std::make_shared<Node>();
        n->kind = Node::kIndex;
        n->lhs = l;
        n->args.push_back(idx);
        l = n;
      } else {
        break;
      }
    }
    return l;
  }
  // At an identifier: a member name or a function call on `focus`.
  NodePtr ParseInvocation(NodePtr focus) {
    auto n = std::make_shared<Node>();
    n->lhs = std::move(focus);
    n->name = tok_.text;
    if (!Advance()) return nullptr;
    if (!IsSym("(")) {
      n->kind = Node::kMember;
      return n;
    }
    n->kind = Node::kFunction;
    if (!Advance()) return nullptr;
    static constexpr std::string_view kTypeArg[] = {"as", "ofType", "is"};
    bool type_arg = false;
    for (auto f : kTypeArg) type_arg |= n->name == f;
    if (type_arg) {
      // The argument is a type specifier, not an expression: keep its name.
      std::string type;
      if (!ParseTypeName(type)) return nullptr;
      auto t = std::make_shared<Node>();
      t->kind = Node::kString;
      t->name = type;
      n->args.push_back(t);
    } else {
      while (!IsSym(")")) {
        NodePtr a = ParseOr();
        if (!a) return nullptr;
        n->args.push_back(a);
        if (IsSym(",")) {
          if (!Advance()) return nullptr;
        } else if (!IsSym(")")) {
          return Fail("expected ')'");
        }
      }
    }
    if (!IsSym(")")) return Fail("expected ')'");
    if (!Advance()) return nullptr;
    static constexpr std::string_view kKnown[] = {"where", "exists", "empty", "first", "not",
                                                   "as", "ofType", "is", "resolve"};
    bool known = false;
    for (auto f : kKnown) known |= n->name == f;
    if (!known) return Fail("function " + n->name + "()", true);
    size_t want = (n->name == "where" || type_arg) ? 1 : 0;
    if (n->args.size() != want && !(n->name == "exists" && n->args.size() == 1))
      return Fail("wrong argument count for " + n->name + "()");
    return n;
  }
  NodePtr ParsePrimary() {
    if (IsSym("(")) {
      if (!Advance()) return nullptr;
      NodePtr e = ParseOr();
      if (!e) return nullptr;
      if (!IsSym(")")) return Fail("expected ')'");
      if (!Advance()) return nullptr;
      return e;
    }
    auto n = std::make_shared<Node>();
    switch (tok_.kind) {
      case Token::kString:
        n->kind = Node::kString;
        n->name = tok_.text;
        break;
      case Token::kInteger: {
        n->kind = Node::kInteger;
        auto r = std::from_chars(tok_.text.data(), tok_.text.data() + tok_.text.size(), n->number);
        if (r.ec != std::errc()) return Fail("integer out of range");
        break;
      }
      case Token::kIdent:
        if (tok_.text == "true" || tok_.text == "false") {
          n->kind = Node::kBool;
          n->number = tok_.text == "true";
          break;
        }
        return ParseInvocation(nullptr);
      default:
        if (tok_.kind == Token::kSymbol && (tok_.text == "%" || tok_.text == "$"))
          return Fail("variables", true);
        return Fail("unexpected token");
    }
    if (!Advance()) return nullptr;
    return n;
  }

  Lexer lex_;
  Token tok_;
  std::string error_;
  bool unsupported_ = false;
  int depth_ = 0;
};

// ---------------------------------------------------------------- evaluator

// FHIR primitive type names, as choice suffixes spell them (capitalized).
bool IsPrimitiveType(std::string_view t) {
  static constexpr std::string_view kPrimitives[] = {
      "base64Binary", "boolean", "canonical", "code",        "date",    "dateTime",
      "decimal",      "id",      "instant",   "integer",     "markdown", "oid",
      "positiveInt",  "string",  "time",      "unsignedInt", "uri",     "url",
      "uuid"};
  for (auto p : kPrimitives) {
    if (p.size() == t.size() && std::tolower(static_cast<unsigned char>(t[0])) == p[0] &&
        t.substr(1) == p.substr(1))
      return true;
  }
  return false;
}

// Choice suffix -> FHIR type name ("DateTime" -> "dateTime", "Quantity" stays).
std::string TypeFromSuffix(std::string_view suffix) {
  std::string t(suffix);
  if (IsPrimitiveType(suffix)) t[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(t[0])));
  return t;
}

// Does `item` have FHIR type `type`? Known types compare exactly; unknown
// ones are inferred from the JSON kind, which is all we have without a
// schema: strings match every string-shaped primitive, objects every complex
// type.
bool HasType(const PathItem& item, std::string_view type) {
  if (!item.type.empty()) return item.type == type;
  const auto& v = item.value();
  if (item.root) return item.root->contains("resourceType") &&
                        item.root->at("resourceType").is_string() &&
                        item.root->at("resourceType").get_string() == type;
  if (v.is_bool()) return type == "boolean" || type == "Boolean";
  if (v.is_int64() || v.is_uint64()) return type == "integer" || type == "decimal" ||
                                            type == "positiveInt" || type == "unsignedInt" ||
                                            type == "Integer" || type == "Decimal";
  if (v.is_double()) return type == "decimal" || type == "Decimal";
  if (v.is_string()) {
    if (type == "String") return true;
    return IsPrimitiveType(type) && type != "boolean" && type != "integer" && type != "decimal" &&
           type != "positiveInt" && type != "unsignedInt";
  }
  if (v.is_object()) {
    if (auto* rt = v.get_object().if_contains("resourceType"); rt && rt->is_string())
      return rt->get_string() == type;
    return !type.empty() && std::isupper(static_cast<unsigned char>(type[0]));
  }
  return false;
}

// The target type of a literal reference ("Patient/1", ".../Patient/1",
// "Patient/1/_history/2"), or "" when it has none.
std::string ReferenceTargetType(const boost::json::object& ref) {
  if (auto* t = ref.if_contains("type"); t && t->is_string()) return std::string(t->get_string());
  auto* r = ref.if_contains("reference");
  if (!r || !r->is_string()) return {};
  std::string_view s = r->get_string();
  if (s.starts_with("#") || s.starts_with("urn:")) return {};
  size_t h = s.find("/_history/");
  if (h != std::string_view::npos) s = s.substr(0, h);
  size_t slash = s.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return {};
  std::string_view head = s.substr(0, slash);
  size_t prev = head.rfind('/');
  std::string_view type = prev == std::string_view::npos ? head : head.substr(prev + 1);
  if (type.empty() || !std::isupper(static_cast<unsigned char>(type[0]))) return {};
  return std::string(type);
}

PathItem Literal(boost::json::value v) {
  PathItem it;
  it.owned = std::move(v);
  return it;
}

class Evaluator {
 public:
  explicit Evaluator(const boost::json::object& root) : root_(root) {}

  // Evaluates `n` with `focus` as the input collection. Returns false when a
  // limit is hit (status_ set).
  bool Eval(const Node& n, const Items& focus, Items& out) {
    if (++depth_ > 4 * FhirPath::kMaxNesting) return Limit();
    bool ok = EvalInner(n, focus, out);
    --depth_;
    if (!ok) return false;
    if (out.size() > FhirPath::kMaxResultItems) return Limit();
    return true;
  }

  Status status() const { return status_; }
  Items RootCollection() const {
    PathItem it;
    it.root = &root_;
    Items v;
    v.push_back(std::move(it));
    return v;
  }

 private:
  bool Limit() {
    if (status_.ok()) status_ = Status(StatusCode::kResourceExhausted, "fhirpath: evaluation limit");
    return false;
  }

  static void AddValue(const boost::json::value& v, std::string type, Items& out) {
    if (v.is_array()) {  // FHIRPath collections flatten JSON arrays
      for (const auto& e : v.get_array()) {
        if (e.is_null()) continue;
        PathItem it;
        it.ptr = &e;
        it.type = type;
        out.push_back(std::move(it));
      }
      return;
    }
    if (v.is_null()) return;
    PathItem it;
    it.ptr = &v;
    it.type = std::move(type);
    out.push_back(std::move(it));
  }

  bool Member(const Items& focus, const std::string& name, bool at_root, Items& out) {
    for (const auto& it : focus) {
      // The first step may name the resource type (or Resource/DomainResource).
      if (at_root && it.root) {
        auto* rt = it.root->if_contains("resourceType");
        if (name == "Resource" || name == "DomainResource" ||
            (rt && rt->is_string() && rt->get_string() == name)) {
          out.push_back(it);
          continue;
        }
      }
      const boost::json::object* o = it.object();
      if (!o) continue;
      if (auto* v = o->if_contains(name)) {
        AddValue(*v, "", out);
        continue;
      }
      // Choice element: value[x] appears as valueQuantity, valueString, ...
      for (const auto& kv : *o) {
        std::string_view k = kv.key();
        if (k.size() > name.size() && k.starts_with(name) &&
            std::isupper(static_cast<unsigned char>(k[name.size()])))
          AddValue(kv.value(), TypeFromSuffix(k.substr(name.size())), out);
      }
      if (out.size() > FhirPath::kMaxResultItems) return Limit();
    }
    return true;
  }

  static bool Truthy(const Items& c) {
    return c.size() == 1 && c[0].value().is_bool() && c[0].value().get_bool();
  }
  static bool JsonEqual(const PathItem& a, const PathItem& b) {
    if (a.root || b.root) return a.root == b.root;
    const auto& x = a.value();
    const auto& y = b.value();
    if (x.is_number() && y.is_number()) {
      boost::json::error_code e1, e2;
      double dx = x.to_number<double>(e1), dy = y.to_number<double>(e2);
      return !e1 && !e2 && dx == dy;
    }
    return x == y;  // deep equality for strings, bools, objects
  }

  bool EvalInner(const Node& n, const Items& focus, Items& out) {
    switch (n.kind) {
      case Node::kString:
        out.push_back(Literal(boost::json::string(n.name)));
        return true;
      case Node::kInteger:
        out.push_back(Literal(n.number));
        return true;
      case Node::kBool:
        out.push_back(Literal(n.number != 0));
        return true;
      case Node::kMember: {
        if (!n.lhs) return Member(focus, n.name, focus_is_root_, out);
        Items l;
        if (!Eval(*n.lhs, focus, l)) return false;
        return Member(l, n.name, false, out);
      }
      case Node::kIndex: {
        Items l, idx;
        if (!Eval(*n.lhs, focus, l) || !Eval(*n.args[0], focus, idx)) return false;
        if (idx.size() == 1 && idx[0].value().is_int64()) {
          int64_t i = idx[0].value().get_int64();
          if (i >= 0 && static_cast<uint64_t>(i) < l.size()) out.push_back(l[static_cast<size_t>(i)]);
        }
        return true;
      }
      case Node::kUnion: {
        Items l, r;
        if (!Eval(*n.lhs, focus, l) || !Eval(*n.rhs, focus, r)) return false;
        // Union removes duplicates; items from the resource are compared by
        // identity, literals by value. Identities are hashed: a stored
        // resource may put 100,000 items on each side, and a pairwise scan
        // made one write of such a resource cost tens of seconds.
        std::unordered_set<const boost::json::value*> seen_values;
        std::unordered_set<const boost::json::object*> seen_roots;
        std::vector<size_t> literals;  // indices into out; only expressions make them, so few
        seen_values.reserve(out.size() + l.size() + r.size());
        auto add = [&](PathItem&& it) {
          if (it.ptr) {
            if (!seen_values.insert(it.ptr).second) return;
          } else if (it.root) {
            if (!seen_roots.insert(it.root).second) return;
          } else {
            for (size_t k : literals) {
              if (out[k].owned == it.owned) return;
            }
            literals.push_back(out.size());
          }
          out.push_back(std::move(it));
        };
        Items before;
        before.swap(out);
        for (Items* c : {&before, &l, &r}) {
          for (auto& it : *c) add(std::move(it));
        }
        return true;
      }
      case Node::kEq:
      case Node::kNe: {
        Items l, r;
        if (!Eval(*n.lhs, focus, l) || !Eval(*n.rhs, focus, r)) return false;
        if (l.empty() || r.empty()) return true;  // empty propagates
        bool eq = l.size() == r.size();
        for (size_t i = 0; eq && i < l.size(); ++i) eq = JsonEqual(l[i], r[i]);
        out.push_back(Literal(n.kind == Node::kEq ? eq : !eq));
        return true;
      }
      case Node::kAnd:
      case Node::kOr: {
        Items l, r;
        if (!Eval(*n.lhs, focus, l) || !Eval(*n.rhs, focus, r)) return false;
        // Three-valued logic: empty is "unknown".
        auto tri = [](const Items& c) -> int {
          if (c.size() != 1 || !c[0].value().is_bool()) return c.empty() ? -1 : 1;
          return c[0].value().get_bool() ? 1 : 0;
        };
        int a = tri(l), b = tri(r);
        if (n.kind == Node::kAnd) {
          if (a == 0 || b == 0) out.push_back(Literal(false));
          else if (a == 1 && b == 1) out.push_back(Literal(true));
        } else {
          if (a == 1 || b == 1) out.push_back(Literal(true));
          else if (a == 0 && b == 0) out.push_back(Literal(false));
        }
        return true;
      }
      case Node::kIs:
      case Node::kAs: {
        Items l;
        if (!Eval(*n.lhs, focus, l)) return false;
        return TypeOp(n.kind == Node::kIs ? "is" : "as", n.name, l, out);
      }
      case Node::kFunction: {
        Items l;
        if (n.lhs) {
          if (!Eval(*n.lhs, focus, l)) return false;
        } else {
          l = focus;
        }
        return Function(n, l, out);
      }
    }
    return true;
  }

  bool TypeOp(std::string_view op, const std::string& type, const Items& in, Items& out) {
    if (op == "is") {
      if (in.size() == 1) out.push_back(Literal(HasType(in[0], type)));
      return true;
    }
    // `as` and ofType() both filter here: for R4 search expressions the
    // difference (as errors on a collection of several) does not matter.
    for (const auto& it : in)
      if (HasType(it, type)) out.push_back(it);
    return true;
  }

  bool Function(const Node& n, const Items& in, Items& out) {
    const std::string& f = n.name;
    if (f == "where") {
      bool saved = focus_is_root_;
      focus_is_root_ = false;
      for (const auto& it : in) {
        Items one{it}, r;
        if (!Eval(*n.args[0], one, r)) return false;
        if (Truthy(r)) out.push_back(it);
      }
      focus_is_root_ = saved;
      return true;
    }
    if (f == "exists" || f == "empty") {
      bool any = !in.empty();
      if (f == "exists" && n.args.size() == 1) {
        any = false;
        focus_is_root_ = false;  // as in where(): the criteria see each item
        for (const auto& it : in) {
          Items one{it}, r;
          if (!Eval(*n.args[0], one, r)) return false;
          if (Truthy(r)) {
            any = true;
            break;
          }
        }
      }
      out.push_back(Literal(f == "exists" ? any : !any));
      return true;
    }
    if (f == "first") {
      if (!in.empty()) out.push_back(in[0]);
      return true;
    }
    if (f == "not") {
      if (in.size() == 1 && in[0].value().is_bool()) out.push_back(Literal(!in[0].value().get_bool()));
      return true;
    }
    if (f == "resolve") {
      // No store lookup: a Reference becomes an item typed by its target.
      for (const auto& it : in) {
        const auto* o = it.object();
        if (!o) continue;
        std::string t = ReferenceTargetType(*o);
        if (t.empty()) continue;
        PathItem r = it;
        r.type = std::move(t);
        out.push_back(std::move(r));
      }
      return true;
    }
    // as(T), ofType(T), is(T): the parser stored the type name as a literal.
    const std::string& type = n.args[0]->name;
    return TypeOp(f == "is" ? "is" : "as", type, in, out);
  }

  const boost::json::object& root_;
  Status status_;
  int depth_ = 0;
  // True while evaluating outside where(): only then may a leading name be
  // the resource type.
  bool focus_is_root_ = true;
};

}  // namespace

StatusOr<FhirPath> FhirPath::Compile(std::string_view expr) {
  if (expr.size() > kMaxExpressionBytes) return InvalidArgument("fhirpath: expression too long");
  Parser p(expr);
  auto root = p.ParseAll();
  if (!root.ok()) return root.status();
  FhirPath out;
  out.root_ = std::move(root).value();
  out.text_ = std::string(expr);
  return out;
}

StatusOr<std::vector<PathItem>> FhirPath::Evaluate(const boost::json::object& resource) const {
  if (!root_) return InvalidArgument("fhirpath: not compiled");
  Evaluator ev(resource);
  Items out;
  if (!ev.Eval(*root_, ev.RootCollection(), out)) return ev.status();
  return out;
}

}  // namespace phivault::search
