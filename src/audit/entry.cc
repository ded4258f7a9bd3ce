#include "audit/entry.h"

#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "fhir/json_reader.h"

namespace phivault::audit {
namespace {

constexpr std::array<std::string_view, kAuditActionCount> kActionCodes = {
    "read",         "vread",   "search",      "history",     "create",        "update",
    "delete",       "batch",   "transaction", "operation",   "login",         "login-failure",
    "token-issued", "lockout", "break-glass", "user-change", "device-change", "consent-change",
    "key-change",   "backup",  "restore",     "export",      "access-report", "audit-query",
    "system",
};

// 9999-12-31T23:59:59.999Z: the last instant FHIR can write with a
// four-digit year; anything later (or negative) in a log is corruption.
constexpr int64_t kMaxTimeMs = 253402300799999;

// Decodes one UTF-8 sequence at s[i]; returns the code point and advances i,
// or returns U+FFFD and advances one byte for anything invalid (overlong,
// surrogate, > U+10FFFF, truncated), so every input maps to valid text.
uint32_t NextCodePoint(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  size_t len = 0;
  uint32_t cp = 0, min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++i;
    return 0xFFFD;
  }
  if (i + len > s.size()) {
    ++i;
    return 0xFFFD;
  }
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return 0xFFFD;
  }
  i += len;
  return cp;
}

void AppendHex4(std::string& out, uint32_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(v >> shift) & 0xF];
}

// A JSON string literal in printable ASCII: why not boost::json::serialize?
// It writes raw UTF-8 (a syslog MSG with UTF-8 needs a BOM and many SIEM
// parsers mangle it) and assumes valid UTF-8, which header values are not.
void AppendString(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    // Ids, codes and most header values are plain ASCII: copy such runs
    // whole (this runs for every request, on the request path).
    size_t run = i;
    while (run < s.size() && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"' && s[run] != '\\') ++run;
    if (run > i) {
      out.append(s.data() + i, run - i);
      i = run;
      continue;
    }
    const uint32_t cp = NextCodePoint(s, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (cp >= 0x20 && cp < 0x7F) {
          out += static_cast<char>(cp);
        } else if (cp < 0x10000) {
          AppendHex4(out, cp);
        } else {  // UTF-16 surrogate pair, as JSON requires
          const uint32_t v = cp - 0x10000;
          AppendHex4(out, 0xD800 + (v >> 10));
          AppendHex4(out, 0xDC00 + (v & 0x3FF));
        }
    }
  }
  out += '"';
}

// Writes `,"key":"value"` (or without the comma first), skipping empty values.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string& out) : out_(out) { out_ += '{'; }
  void Str(std::string_view key, std::string_view value) {
    if (value.empty()) return;
    Key(key);
    AppendString(out_, value);
  }
  void Int(std::string_view key, int64_t value) {
    Key(key);
    out_ += std::to_string(value);
  }
  void True(std::string_view key) {
    Key(key);
    out_ += "true";
  }
  // REQUIRES: `key` is one of this file's member names (plain ASCII, nothing to escape).
  void Key(std::string_view key) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += '"';
    out_.append(key);
    out_ += "\":";
  }
  void End() { out_ += '}'; }

 private:
  std::string& out_;
  bool first_ = true;
};

Status Bad(std::string_view what) { return InvalidArgument("audit entry: " + std::string(what)); }

// Reads an optional string member into *out. Missing = "".
Status GetString(const boost::json::object& o, std::string_view key, std::string* out) {
  const boost::json::value* v = o.if_contains(key);
  if (v == nullptr) return Status::Ok();
  const boost::json::string* s = v->if_string();
  if (s == nullptr) return Bad(std::string(key) + " is not a string");
  out->assign(s->data(), s->size());
  return Status::Ok();
}

// Reads an integer member (int64 or uint64 as Boost.JSON parsed it).
Status GetInt(const boost::json::object& o, std::string_view key, bool required, int64_t lo, int64_t hi, int64_t* out) {
  const boost::json::value* v = o.if_contains(key);
  if (v == nullptr) return required ? Bad(std::string(key) + " is missing") : Status::Ok();
  int64_t n = 0;
  if (const int64_t* i = v->if_int64()) {
    n = *i;
  } else if (const uint64_t* u = v->if_uint64()) {
    if (*u > static_cast<uint64_t>(hi)) return Bad(std::string(key) + " is out of range");
    n = static_cast<int64_t>(*u);
  } else {
    return Bad(std::string(key) + " is not an integer");
  }
  if (n < lo || n > hi) return Bad(std::string(key) + " is out of range");
  *out = n;
  return Status::Ok();
}

}  // namespace

std::string_view ActionCode(AuditAction a) {
  const auto i = static_cast<size_t>(a);
  return i < kActionCodes.size() ? kActionCodes[i] : std::string_view("unknown");
}

std::optional<AuditAction> ParseActionCode(std::string_view code) {
  for (size_t i = 0; i < kActionCodes.size(); ++i) {
    if (kActionCodes[i] == code) return static_cast<AuditAction>(i);
  }
  return std::nullopt;
}

std::string_view OutcomeCode(AuditOutcome o) { return o == AuditOutcome::kDenied ? "denied" : "allowed"; }

std::string Serialize(const AuditEntry& e) {
  std::string out;
  out.reserve(256 + 64 * e.resources.size() + 24 * e.patients.size());
  ObjectWriter w(out);
  w.Int("v", kEntryFormatVersion);
  w.Int("time_ms", e.time_ms);
  w.Str("request_id", e.request_id);
  if (!(e.agent == AuditAgent{})) {
    w.Key("agent");
    ObjectWriter a(out);
    a.Str("subject", e.agent.subject);
    a.Str("role", e.agent.role);
    a.Str("fhir_user", e.agent.fhir_user);
    a.Str("client_id", e.agent.client_id);
    a.Str("device_id", e.agent.device_id);
    a.End();
  }
  w.Str("source_address", e.source_address);
  w.Str("user_agent", e.user_agent);
  w.Str("action", ActionCode(e.action));
  if (!e.resources.empty()) {
    w.Key("resources");
    out += '[';
    for (size_t i = 0; i < e.resources.size(); ++i) {
      if (i) out += ',';
      const AuditResource& r = e.resources[i];
      ObjectWriter rw(out);
      rw.Str("type", r.type);
      rw.Str("id", r.id);
      rw.Str("version", r.version);
      rw.Str("prior_version", r.prior_version);
      rw.End();
    }
    out += ']';
  }
  w.Str("query", e.query);
  if (!e.patients.empty()) {
    w.Key("patients");
    out += '[';
    for (size_t i = 0; i < e.patients.size(); ++i) {
      if (i) out += ',';
      AppendString(out, e.patients[i]);
    }
    out += ']';
  }
  w.Str("data_category", e.data_category);
  w.Str("purpose_of_use", e.purpose_of_use);
  if (e.break_glass) w.True("break_glass");
  w.Str("break_glass_reason", e.break_glass_reason);
  w.Str("outcome", OutcomeCode(e.outcome));
  w.Str("rule", e.rule);
  w.Str("decision", e.decision);
  w.Str("event", e.event);
  if (e.http_status != 0) w.Int("http_status", e.http_status);
  if (e.write_record != 0) w.Int("write_record", e.write_record);
  w.End();
  return out;
}

StatusOr<AuditEntry> ParseEntry(std::string_view json) {
  // Depth 4 is what v1 needs (entry > resources > resource); the strict
  // parser also refuses invalid UTF-8, duplicate keys and trailing data.
  fhir::ParseLimits limits;
  limits.max_depth = 4;
  limits.max_bytes = kMaxEntryBytes;
  auto parsed = fhir::ParseJson(json, limits);
  if (!parsed.ok()) return Bad("not valid JSON (" + std::string(StatusCodeName(parsed.status().code())) + ")");
  const boost::json::object* o = parsed->if_object();
  if (o == nullptr) return Bad("not a JSON object");

  int64_t version = 0;
  PV_RETURN_IF_ERROR(GetInt(*o, "v", true, 0, INT64_MAX, &version));
  if (version != kEntryFormatVersion) {
    return Status(StatusCode::kUnsupported, "audit entry: format version " + std::to_string(version) +
                                                " is not supported (this build reads version 1)");
  }
  AuditEntry e;
  PV_RETURN_IF_ERROR(GetInt(*o, "time_ms", true, 0, kMaxTimeMs, &e.time_ms));
  PV_RETURN_IF_ERROR(GetString(*o, "request_id", &e.request_id));
  if (const boost::json::value* a = o->if_contains("agent")) {
    const boost::json::object* ao = a->if_object();
    if (ao == nullptr) return Bad("agent is not an object");
    PV_RETURN_IF_ERROR(GetString(*ao, "subject", &e.agent.subject));
    PV_RETURN_IF_ERROR(GetString(*ao, "role", &e.agent.role));
    PV_RETURN_IF_ERROR(GetString(*ao, "fhir_user", &e.agent.fhir_user));
    PV_RETURN_IF_ERROR(GetString(*ao, "client_id", &e.agent.client_id));
    PV_RETURN_IF_ERROR(GetString(*ao, "device_id", &e.agent.device_id));
  }
  PV_RETURN_IF_ERROR(GetString(*o, "source_address", &e.source_address));
  PV_RETURN_IF_ERROR(GetString(*o, "user_agent", &e.user_agent));

  std::string code;
  PV_RETURN_IF_ERROR(GetString(*o, "action", &code));
  auto action = ParseActionCode(code);
  if (!action) return Bad("unknown or missing action");
  e.action = *action;

  if (const boost::json::value* rv = o->if_contains("resources")) {
    const boost::json::array* arr = rv->if_array();
    if (arr == nullptr) return Bad("resources is not an array");
    e.resources.reserve(arr->size());
    for (const boost::json::value& item : *arr) {
      const boost::json::object* ro = item.if_object();
      if (ro == nullptr) return Bad("a resource is not an object");
      AuditResource r;
      PV_RETURN_IF_ERROR(GetString(*ro, "type", &r.type));
      PV_RETURN_IF_ERROR(GetString(*ro, "id", &r.id));
      PV_RETURN_IF_ERROR(GetString(*ro, "version", &r.version));
      PV_RETURN_IF_ERROR(GetString(*ro, "prior_version", &r.prior_version));
      if (r.type.empty()) return Bad("a resource has no type");
      e.resources.push_back(std::move(r));
    }
  }
  PV_RETURN_IF_ERROR(GetString(*o, "query", &e.query));
  if (const boost::json::value* pv = o->if_contains("patients")) {
    const boost::json::array* arr = pv->if_array();
    if (arr == nullptr) return Bad("patients is not an array");
    e.patients.reserve(arr->size());
    for (const boost::json::value& item : *arr) {
      const boost::json::string* s = item.if_string();
      if (s == nullptr) return Bad("a patient id is not a string");
      e.patients.emplace_back(s->data(), s->size());
    }
  }
  PV_RETURN_IF_ERROR(GetString(*o, "data_category", &e.data_category));
  PV_RETURN_IF_ERROR(GetString(*o, "purpose_of_use", &e.purpose_of_use));
  if (const boost::json::value* bg = o->if_contains("break_glass")) {
    const bool* b = bg->if_bool();
    if (b == nullptr) return Bad("break_glass is not a boolean");
    e.break_glass = *b;
  }
  PV_RETURN_IF_ERROR(GetString(*o, "break_glass_reason", &e.break_glass_reason));

  PV_RETURN_IF_ERROR(GetString(*o, "outcome", &code));
  if (code == "allowed") {
    e.outcome = AuditOutcome::kAllowed;
  } else if (code == "denied") {
    e.outcome = AuditOutcome::kDenied;
  } else {
    return Bad("unknown or missing outcome");
  }
  PV_RETURN_IF_ERROR(GetString(*o, "rule", &e.rule));
  PV_RETURN_IF_ERROR(GetString(*o, "decision", &e.decision));
  PV_RETURN_IF_ERROR(GetString(*o, "event", &e.event));
  int64_t status = 0;
  PV_RETURN_IF_ERROR(GetInt(*o, "http_status", false, 0, 599, &status));
  if (status != 0 && status < 100) return Bad("http_status is out of range");
  e.http_status = static_cast<int>(status);
  PV_RETURN_IF_ERROR(GetInt(*o, "write_record", false, 0, INT64_MAX, &e.write_record));
  return e;
}

}  // namespace phivault::audit
