#include "fhir/json_reader.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <new>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/error.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value_stack.hpp>

#include "fhir/resource_types.h"

namespace phivault::fhir {
namespace {

namespace json = boost::json;

// SAX handler: builds the value with a value_stack (exactly like
// boost::json::parser does) and rejects duplicate keys as they are seen.
class StrictHandler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  json::value_stack st;
  bool duplicate_key = false;
  bool number_out_of_range = false;

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    if (keys_.size() <= depth_) keys_.emplace_back();
    keys_[depth_].clear();
    ++depth_;
    return true;
  }
  bool on_object_end(std::size_t n, json::error_code&) {
    --depth_;
    st.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    key_.append(s.data(), s.size());
    st.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
    key_.append(s.data(), s.size());
    // depth_ >= 1 here: keys only occur inside objects.
    if (!keys_[depth_ - 1].insert(std::move(key_)).second) {
      duplicate_key = true;
      ec = json::error::syntax;
      key_.clear();
      return false;
    }
    key_.clear();
    st.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(json::string_view s, json::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number_.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number_.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code& ec) {
    // Boost.JSON 1.81 converts decimals imprecisely (off by an ulp at times);
    // std::from_chars rounds correctly, so what Serialize writes reads back
    // bit-identical. The text is plain JSON number syntax, which from_chars
    // accepts (no leading '+', no hex).
    number_.append(s.data(), s.size());
    double precise = d;
    const char* first = number_.data();
    const char* last = first + number_.size();
    auto r = std::from_chars(first, last, precise);
    if (r.ec != std::errc() || r.ptr != last) precise = d;
    number_.clear();
    if (!std::isfinite(precise)) {
      number_out_of_range = true;
      ec = json::error::exponent_overflow;
      return false;
    }
    st.push_double(precise);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  std::vector<std::unordered_set<std::string>> keys_;  // one set per open object
  std::size_t depth_ = 0;                               // open objects
  std::string key_;
  std::string number_;  // text of the number being parsed
};

StatusOr<json::value> ParseJsonImpl(std::string_view body, const ParseLimits& limits, json::storage_ptr sp) {
  if (body.size() > limits.max_bytes) {
    return Status(StatusCode::kTooLarge,
                  "JSON body exceeds the limit of " + std::to_string(limits.max_bytes) + " bytes");
  }
  json::parse_options opts;
  opts.max_depth = limits.max_depth;
  opts.allow_comments = false;
  opts.allow_trailing_commas = false;
  opts.allow_invalid_utf8 = false;
  json::basic_parser<StrictHandler> p(opts);
  p.handler().st.reset(std::move(sp));
  json::error_code ec;
  std::size_t n = p.write_some(false, body.data(), body.size(), ec);
  if (p.handler().duplicate_key) {
    return InvalidArgument("invalid JSON: duplicate key in an object");
  }
  if (p.handler().number_out_of_range) {
    return InvalidArgument("invalid JSON: number out of the range of a double");
  }
  if (ec == json::error::too_deep) {
    return InvalidArgument("invalid JSON: nesting deeper than " + std::to_string(limits.max_depth));
  }
  if (ec) {
    // ec.message() names the rule ("syntax error", "illegal leading
    // surrogate", ...) and never contains input bytes; the offset is safe.
    return InvalidArgument("invalid JSON at byte " + std::to_string(n) + ": " + ec.message());
  }
  if (!p.done()) return InvalidArgument("invalid JSON: incomplete document");
  if (n < body.size()) return InvalidArgument("invalid JSON: extra data after the value");
  return p.handler().st.release();
}

// --- serialization -------------------------------------------------------

void AppendEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(kHex[u >> 4]);
          out.push_back(kHex[u & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

template <typename T>
void AppendNumber(std::string& out, T v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void AppendDouble(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  // Shortest round-trip form; may be "1e+21" or "5e-07", both valid JSON. An
  // integral value gets ".0" so that it parses back as a double ("1.0").
  size_t start = out.size();
  AppendNumber(out, d);
  if (out.find_first_of(".e", start) == std::string::npos) out += ".0";
}

class Writer {
 public:
  Writer(std::string& out, bool pretty) : out_(out), pretty_(pretty) {}

  void Value(const json::value& v, int indent) {
    switch (v.kind()) {
      case json::kind::null: out_ += "null"; break;
      case json::kind::bool_: out_ += v.get_bool() ? "true" : "false"; break;
      case json::kind::int64: AppendNumber(out_, v.get_int64()); break;
      case json::kind::uint64: AppendNumber(out_, v.get_uint64()); break;
      case json::kind::double_: AppendDouble(out_, v.get_double()); break;
      case json::kind::string: {
        const json::string& s = v.get_string();
        AppendEscaped(out_, std::string_view(s.data(), s.size()));
        break;
      }
      case json::kind::array: Array(v.get_array(), indent); break;
      case json::kind::object: Object(v.get_object(), indent); break;
    }
  }

  void Object(const json::object& o, int indent) {
    if (o.empty()) {
      out_ += "{}";
      return;
    }
    out_.push_back('{');
    bool first = true;
    for (const auto& kv : o) {
      if (!first) out_.push_back(',');
      first = false;
      Newline(indent + 1);
      AppendEscaped(out_, std::string_view(kv.key().data(), kv.key().size()));
      out_ += pretty_ ? ": " : ":";
      Value(kv.value(), indent + 1);
    }
    Newline(indent);
    out_.push_back('}');
  }

  void Array(const json::array& a, int indent) {
    if (a.empty()) {
      out_ += "[]";
      return;
    }
    out_.push_back('[');
    bool first = true;
    for (const auto& e : a) {
      if (!first) out_.push_back(',');
      first = false;
      Newline(indent + 1);
      Value(e, indent + 1);
    }
    Newline(indent);
    out_.push_back(']');
  }

 private:
  void Newline(int indent) {
    if (!pretty_) return;
    out_.push_back('\n');
    out_.append(static_cast<size_t>(indent) * 2, ' ');
  }

  std::string& out_;
  bool pretty_;
};

}  // namespace

StatusOr<boost::json::value> ParseJson(std::string_view body, const ParseLimits& limits, json::storage_ptr sp) {
  try {
    return ParseJsonImpl(body, limits, std::move(sp));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kResourceExhausted, "out of memory while parsing JSON");
  } catch (const std::exception&) {
    // value_stack only throws on allocation failure or a size beyond the
    // container maxima, which the parser bounds; this is a safety net.
    return InvalidArgument("invalid JSON: value exceeds implementation limits");
  }
}

StatusOr<boost::json::object> ParseResource(std::string_view body, const ParseLimits& limits, json::storage_ptr sp) {
  PV_ASSIGN_OR_RETURN(json::value v, ParseJson(body, limits, std::move(sp)));
  json::object* obj = v.if_object();
  if (obj == nullptr) return InvalidArgument("a FHIR resource must be a JSON object");
  const json::value* rt = obj->if_contains("resourceType");
  if (rt == nullptr) return InvalidArgument("resource has no resourceType");
  const json::string* rts = rt->if_string();
  if (rts == nullptr) return InvalidArgument("resourceType must be a string");
  std::string_view type(rts->data(), rts->size());
  if (!IsKnownResourceType(type)) return InvalidArgument("unknown resourceType");
  if (const json::value* id = obj->if_contains("id")) {
    const json::string* ids = id->if_string();
    if (ids == nullptr || !IsValidId(std::string_view(ids->data(), ids->size()))) {
      return InvalidArgument(std::string(type) + ".id is not a valid FHIR id");
    }
  }
  return std::move(*obj);
}

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::string Serialize(const boost::json::value& v, bool pretty) {
  std::string out;
  Writer(out, pretty).Value(v, 0);
  return out;
}

std::string Serialize(const boost::json::object& o, bool pretty) {
  std::string out;
  Writer(out, pretty).Object(o, 0);
  return out;
}

}  // namespace phivault::fhir
