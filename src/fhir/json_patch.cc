#include "fhir/json_patch.h"

#include <algorithm>
#include <optional>
#include <utility>

#include <boost/json.hpp>

namespace phivault::fhir {

namespace json = boost::json;

namespace {

// Fixed cost per node so that many tiny values still count against the budget.
constexpr size_t kNodeBytes = 16;

struct Size {
  size_t bytes = 0;
  size_t depth = 0;  // levels below and including the value itself
};

// Measures `v`, refusing (nullopt) anything deeper than `cap` so the
// recursion itself stays bounded whatever the caller hands in.
bool MeasureInto(const json::value& v, size_t cap, size_t level, Size& out) {
  if (level > cap) return false;
  out.bytes += kNodeBytes;
  out.depth = std::max(out.depth, level);
  if (const json::object* o = v.if_object()) {
    for (const auto& kv : *o) {
      out.bytes += kv.key().size();
      if (!MeasureInto(kv.value(), cap, level + 1, out)) return false;
    }
  } else if (const json::array* a = v.if_array()) {
    for (const json::value& e : *a) {
      if (!MeasureInto(e, cap, level + 1, out)) return false;
    }
  } else if (const json::string* s = v.if_string()) {
    out.bytes += s->size();
  }
  return true;
}

std::optional<Size> Measure(const json::value& v, size_t cap) {
  Size s;
  if (!MeasureInto(v, cap, 1, s)) return std::nullopt;
  return s;
}

// RFC 6901 array index: "0" or digits without a leading zero. '-' and
// anything else are not indexes (the caller handles '-').
std::optional<size_t> ArrayIndex(std::string_view token) {
  if (token.empty() || token.size() > 9) return std::nullopt;  // 9 digits: no overflow, far past any array
  if (token.size() > 1 && token[0] == '0') return std::nullopt;
  size_t n = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return n;
}

template <typename Value>
Value* Child(Value& parent, const std::string& token) {
  if (auto* o = parent.if_object()) {
    auto it = o->find(token);
    return it == o->end() ? nullptr : &it->value();
  }
  if (auto* a = parent.if_array()) {
    auto i = ArrayIndex(token);
    return i && *i < a->size() ? &(*a)[*i] : nullptr;
  }
  return nullptr;
}

template <typename Value>
Value* Resolve(Value& doc, const std::vector<std::string>& tokens, size_t n) {
  Value* cur = &doc;
  for (size_t i = 0; i < n && cur; ++i) cur = Child(*cur, tokens[i]);
  return cur;
}

enum class Op { kAdd, kRemove, kReplace, kMove, kCopy, kTest };

struct Operation {
  Op op;
  std::vector<std::string> path;
  std::vector<std::string> from;
  const json::value* value = nullptr;  // points into the patch document
};

std::string At(size_t index, std::string_view what) {
  return "JSON Patch operation " + std::to_string(index) + ": " + std::string(what);
}

StatusOr<std::vector<Operation>> ParseOperations(const json::value& patch, const JsonPatchLimits& limits) {
  const json::array* ops = patch.if_array();
  if (!ops) return InvalidArgument("a JSON Patch document must be a JSON array of operations");
  if (ops->size() > limits.max_operations) {
    return InvalidArgument("a JSON Patch document may hold at most " + std::to_string(limits.max_operations) +
                           " operations");
  }
  std::vector<Operation> out;
  out.reserve(ops->size());
  for (size_t i = 0; i < ops->size(); ++i) {
    const json::object* o = (*ops)[i].if_object();
    if (!o) return InvalidArgument(At(i, "must be a JSON object"));
    const json::value* name = o->if_contains("op");
    if (!name || !name->is_string()) return InvalidArgument(At(i, "needs a string member \"op\""));
    static constexpr std::pair<std::string_view, Op> kOps[] = {{"add", Op::kAdd},   {"remove", Op::kRemove},
                                                               {"replace", Op::kReplace}, {"move", Op::kMove},
                                                               {"copy", Op::kCopy}, {"test", Op::kTest}};
    auto known = std::find_if(std::begin(kOps), std::end(kOps),
                              [&](const auto& k) { return k.first == std::string_view(name->get_string()); });
    if (known == std::end(kOps)) return InvalidArgument(At(i, "unknown \"op\""));
    Operation op{known->second, {}, {}, nullptr};
    const json::value* path = o->if_contains("path");
    if (!path || !path->is_string()) return InvalidArgument(At(i, "needs a string member \"path\""));
    // A pointer deeper than the document may nest cannot name anything in it.
    auto tokens = ParseJsonPointer(path->get_string(), limits.max_depth);
    if (!tokens.ok()) return InvalidArgument(At(i, "\"path\" " + tokens.status().message()));
    op.path = std::move(*tokens);
    if (op.op == Op::kMove || op.op == Op::kCopy) {
      const json::value* from = o->if_contains("from");
      if (!from || !from->is_string()) return InvalidArgument(At(i, "needs a string member \"from\""));
      auto ft = ParseJsonPointer(from->get_string(), limits.max_depth);
      if (!ft.ok()) return InvalidArgument(At(i, "\"from\" " + ft.status().message()));
      op.from = std::move(*ft);
    }
    if (op.op == Op::kAdd || op.op == Op::kReplace || op.op == Op::kTest) {
      op.value = o->if_contains("value");  // null is a value; absence is the error
      if (!op.value) return InvalidArgument(At(i, "needs a member \"value\""));
    }
    out.push_back(std::move(op));
  }
  return out;
}

// Applies operations to one working copy, keeping the size accounting that
// bounds memory and work.
class Patcher {
 public:
  Patcher(json::value doc, size_t doc_bytes, const JsonPatchLimits& limits)
      : doc_(std::move(doc)), doc_bytes_(doc_bytes), limits_(limits) {}

  Status Apply(size_t i, const Operation& op) {
    switch (op.op) {
      case Op::kAdd: {
        PV_ASSIGN_OR_RETURN(Size s, Charge(i, *op.value));
        return Add(i, op.path, json::value(*op.value), s);
      }
      case Op::kRemove:
        return Remove(i, op.path).status();
      case Op::kReplace: {
        json::value* target = Resolve(doc_, op.path, op.path.size());
        if (!target) return Conflict(i, "the target of \"replace\" does not exist");
        PV_ASSIGN_OR_RETURN(Size s, Charge(i, *op.value));
        PV_RETURN_IF_ERROR(CheckDepth(i, op.path.size(), s));
        PV_ASSIGN_OR_RETURN(Size old, Charge(i, *target));
        doc_bytes_ -= std::min(doc_bytes_, old.bytes);
        PV_RETURN_IF_ERROR(Grow(i, s.bytes));
        *target = *op.value;
        return Status::Ok();
      }
      case Op::kMove: {
        if (op.from.size() < op.path.size() && std::equal(op.from.begin(), op.from.end(), op.path.begin())) {
          return Conflict(i, "\"move\" cannot move a value into one of its own children");
        }
        if (!Resolve(doc_, op.from, op.from.size())) return Conflict(i, "the \"from\" of \"move\" does not exist");
        if (op.from == op.path) return Status::Ok();
        PV_ASSIGN_OR_RETURN(json::value moved, Remove(i, op.from));
        PV_ASSIGN_OR_RETURN(Size s, Charge(i, moved));
        return Add(i, op.path, std::move(moved), s);
      }
      case Op::kCopy: {
        const json::value* src = Resolve(std::as_const(doc_), op.from, op.from.size());
        if (!src) return Conflict(i, "the \"from\" of \"copy\" does not exist");
        PV_ASSIGN_OR_RETURN(Size s, Charge(i, *src));
        return Add(i, op.path, json::value(*src), s);
      }
      case Op::kTest: {
        const json::value* target = Resolve(std::as_const(doc_), op.path, op.path.size());
        if (!target) return Conflict(i, "the target of \"test\" does not exist");
        PV_RETURN_IF_ERROR(Charge(i, *target).status());
        PV_RETURN_IF_ERROR(Charge(i, *op.value).status());
        if (!JsonEqual(*target, *op.value)) return Conflict(i, "\"test\" failed: the value differs");
        return Status::Ok();
      }
    }
    return Status(StatusCode::kInternal, "unhandled JSON Patch operation");
  }

  json::value Take() { return std::move(doc_); }

 private:
  static Status Conflict(size_t i, std::string_view what) { return Status(StatusCode::kConflict, At(i, what)); }

  // Measures a value the operation touches and charges it to the work budget.
  StatusOr<Size> Charge(size_t i, const json::value& v) {
    auto s = Measure(v, limits_.max_depth);
    if (!s) return Conflict(i, "the value nests too deeply");
    work_ += s->bytes;
    if (work_ > limits_.max_work_bytes) return Conflict(i, "the patch copies or compares too much data");
    return *s;
  }

  Status CheckDepth(size_t i, size_t tokens, const Size& s) {
    if (tokens + s.depth > limits_.max_depth) return Conflict(i, "the patched document would nest too deeply");
    return Status::Ok();
  }

  Status Grow(size_t i, size_t bytes) {
    doc_bytes_ += bytes;
    if (doc_bytes_ > limits_.max_document_bytes) return Conflict(i, "the patched document would be too large");
    return Status::Ok();
  }

  Status Add(size_t i, const std::vector<std::string>& path, json::value v, const Size& s) {
    PV_RETURN_IF_ERROR(CheckDepth(i, path.size(), s));
    if (path.empty()) {
      doc_ = std::move(v);
      doc_bytes_ = s.bytes;
      return Status::Ok();
    }
    json::value* parent = Resolve(doc_, path, path.size() - 1);
    if (!parent) return Conflict(i, "the parent of the target does not exist");
    const std::string& last = path.back();
    if (json::object* o = parent->if_object()) {
      auto it = o->find(last);
      if (it != o->end()) {
        PV_ASSIGN_OR_RETURN(Size old, Charge(i, it->value()));
        doc_bytes_ -= std::min(doc_bytes_, old.bytes);
        PV_RETURN_IF_ERROR(Grow(i, s.bytes));
        it->value() = std::move(v);
      } else {
        PV_RETURN_IF_ERROR(Grow(i, s.bytes + last.size()));
        o->emplace(last, std::move(v));
      }
      return Status::Ok();
    }
    if (json::array* a = parent->if_array()) {
      size_t at = a->size();
      if (last != "-") {
        auto idx = ArrayIndex(last);
        if (!idx) return Conflict(i, "an array index must be a non-negative integer or '-'");
        if (*idx > a->size()) return Conflict(i, "the array index is past the end of the array");
        at = *idx;
      }
      PV_RETURN_IF_ERROR(Grow(i, s.bytes));
      a->insert(a->begin() + static_cast<std::ptrdiff_t>(at), std::move(v));
      return Status::Ok();
    }
    return Conflict(i, "the parent of the target is neither an object nor an array");
  }

  StatusOr<json::value> Remove(size_t i, const std::vector<std::string>& path) {
    if (path.empty()) return Conflict(i, "the whole document cannot be removed");
    json::value* parent = Resolve(doc_, path, path.size() - 1);
    json::value* target = parent ? Child(*parent, path.back()) : nullptr;
    if (!target) return Conflict(i, "the target of the removal does not exist");
    PV_ASSIGN_OR_RETURN(Size s, Charge(i, *target));
    doc_bytes_ -= std::min(doc_bytes_, s.bytes);
    json::value out = std::move(*target);
    if (json::object* o = parent->if_object()) {
      o->erase(path.back());
    } else {
      json::array& a = parent->as_array();
      a.erase(a.begin() + static_cast<std::ptrdiff_t>(*ArrayIndex(path.back())));
    }
    return out;
  }

  json::value doc_;
  size_t doc_bytes_;
  size_t work_ = 0;
  const JsonPatchLimits& limits_;
};

}  // namespace

StatusOr<std::vector<std::string>> ParseJsonPointer(std::string_view pointer, size_t max_tokens) {
  std::vector<std::string> tokens;
  if (pointer.empty()) return tokens;
  if (pointer[0] != '/') return InvalidArgument("is not a JSON Pointer: it must be empty or start with '/'");
  if (static_cast<size_t>(std::count(pointer.begin(), pointer.end(), '/')) > max_tokens) {
    return InvalidArgument("is deeper than a document may nest");
  }
  pointer.remove_prefix(1);
  std::string cur;
  for (size_t i = 0; i <= pointer.size(); ++i) {
    if (i == pointer.size() || pointer[i] == '/') {
      tokens.push_back(std::move(cur));
      cur.clear();
      continue;
    }
    char c = pointer[i];
    if (c == '~') {
      char next = i + 1 < pointer.size() ? pointer[i + 1] : '\0';
      if (next != '0' && next != '1') return InvalidArgument("has a '~' not followed by '0' or '1'");
      cur += next == '0' ? '~' : '/';
      ++i;
    } else {
      cur += c;
    }
  }
  return tokens;
}

const json::value* ResolveJsonPointer(const json::value& doc, const std::vector<std::string>& tokens) {
  return Resolve(doc, tokens, tokens.size());
}

bool JsonEqual(const json::value& a, const json::value& b) {
  bool a_num = a.is_number(), b_num = b.is_number();
  if (a_num || b_num) {
    if (!a_num || !b_num) return false;
    if (a.is_double() || b.is_double()) return a.to_number<double>() == b.to_number<double>();
    if (a.is_int64() && b.is_int64()) return a.get_int64() == b.get_int64();
    if (a.is_uint64() && b.is_uint64()) return a.get_uint64() == b.get_uint64();
    // One signed, one unsigned: equal only if the signed one is non-negative.
    int64_t s = a.is_int64() ? a.get_int64() : b.get_int64();
    uint64_t u = a.is_uint64() ? a.get_uint64() : b.get_uint64();
    return s >= 0 && static_cast<uint64_t>(s) == u;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::object: {
      const json::object& x = a.get_object();
      const json::object& y = b.get_object();
      if (x.size() != y.size()) return false;
      for (const auto& kv : x) {
        const json::value* other = y.if_contains(kv.key());
        if (!other || !JsonEqual(kv.value(), *other)) return false;
      }
      return true;
    }
    case json::kind::array: {
      const json::array& x = a.get_array();
      const json::array& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!JsonEqual(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::string:
      return a.get_string() == b.get_string();
    case json::kind::bool_:
      return a.get_bool() == b.get_bool();
    default:
      return true;  // null (numbers were handled above)
  }
}

StatusOr<json::value> ApplyJsonPatch(const json::value& patch, const json::value& doc, const JsonPatchLimits& limits) {
  PV_ASSIGN_OR_RETURN(std::vector<Operation> ops, ParseOperations(patch, limits));
  auto size = Measure(doc, limits.max_depth);
  if (!size) return Status(StatusCode::kConflict, "the document to patch nests too deeply");
  Patcher p(doc, size->bytes, limits);
  for (size_t i = 0; i < ops.size(); ++i) PV_RETURN_IF_ERROR(p.Apply(i, ops[i]));
  return p.Take();
}

}  // namespace phivault::fhir
