#include "auth/scopes.h"

#include "fhir/resource_types.h"

namespace phivault::auth {
namespace {

constexpr uint8_t kAll = 0x1f;
constexpr size_t kMaxScopeLength = 512;
constexpr size_t kMaxScopes = 256;

bool IsQueryNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ':';
}

// Printable ASCII, no space and none of the query separators.
bool IsQueryValueChar(char c) { return c > 0x20 && c < 0x7f && c != '&' && c != '='; }

std::optional<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view q) {
  std::vector<std::pair<std::string, std::string>> out;
  if (q.empty()) return std::nullopt;
  while (true) {
    size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0 || eq + 1 == part.size()) return std::nullopt;
    std::string_view name = part.substr(0, eq), value = part.substr(eq + 1);
    for (char c : name) {
      if (!IsQueryNameChar(c)) return std::nullopt;
    }
    for (char c : value) {
      if (!IsQueryValueChar(c)) return std::nullopt;
    }
    out.emplace_back(std::string(name), std::string(value));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

std::optional<uint8_t> ParseV2Permissions(std::string_view p) {
  static constexpr char kOrder[] = {'c', 'r', 'u', 'd', 's'};
  static constexpr Interaction kBits[] = {Interaction::kCreate, Interaction::kRead, Interaction::kUpdate,
                                          Interaction::kDelete, Interaction::kSearch};
  if (p.empty() || p.size() > 5) return std::nullopt;
  uint8_t bits = 0;
  size_t next = 0;  // letters must appear in order, each at most once
  for (char c : p) {
    size_t i = next;
    while (i < 5 && kOrder[i] != c) ++i;
    if (i == 5) return std::nullopt;
    bits |= static_cast<uint8_t>(kBits[i]);
    next = i + 1;
  }
  return bits;
}

}  // namespace

std::string_view ScopeContextName(ScopeContext c) {
  switch (c) {
    case ScopeContext::kPatient:
      return "patient";
    case ScopeContext::kUser:
      return "user";
    case ScopeContext::kSystem:
      return "system";
  }
  return "?";
}

bool IsNonDataScope(std::string_view t) {
  if (t == "openid" || t == "fhirUser" || t == "profile" || t == "launch" || t == "online_access" ||
      t == "offline_access") {
    return true;
  }
  if (t.starts_with("launch/") && t.size() > 7) {
    for (char c : t.substr(7)) {
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return false;
    }
    return true;
  }
  return false;
}

std::optional<Scope> ParseScope(std::string_view text) {
  if (text.empty() || text.size() > kMaxScopeLength) return std::nullopt;
  Scope s;
  std::string_view rest = text;
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view ctx = rest.substr(0, slash);
  if (ctx == "patient") {
    s.context = ScopeContext::kPatient;
  } else if (ctx == "user") {
    s.context = ScopeContext::kUser;
  } else if (ctx == "system") {
    s.context = ScopeContext::kSystem;
  } else {
    return std::nullopt;
  }
  rest.remove_prefix(slash + 1);
  std::string_view query;
  bool has_query = false;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
    has_query = true;
  }
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view type = rest.substr(0, dot);
  std::string_view perms = rest.substr(dot + 1);
  if (type != "*" && !fhir::IsKnownResourceType(type)) return std::nullopt;
  s.resource_type = std::string(type);
  if (perms == "read") {
    s.interactions = static_cast<uint8_t>(Interaction::kRead) | static_cast<uint8_t>(Interaction::kSearch);
    s.v1 = true;
  } else if (perms == "write") {
    s.interactions = static_cast<uint8_t>(Interaction::kCreate) | static_cast<uint8_t>(Interaction::kUpdate) |
                     static_cast<uint8_t>(Interaction::kDelete);
    s.v1 = true;
  } else if (perms == "*") {
    s.interactions = kAll;
    s.v1 = true;
  } else {
    auto bits = ParseV2Permissions(perms);
    if (!bits) return std::nullopt;
    s.interactions = *bits;
  }
  if (has_query) {
    if (s.v1) return std::nullopt;  // query restrictions are a v2 feature
    auto q = ParseQuery(query);
    if (!q) return std::nullopt;
    s.query = std::move(*q);
  }
  s.text = std::string(text);
  return s;
}

std::vector<Scope> ParseScopes(std::string_view scope_string, size_t* ignored) {
  std::vector<Scope> out;
  size_t unknown = 0;
  size_t seen = 0;
  size_t i = 0;
  while (i < scope_string.size()) {
    if (scope_string[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = scope_string.find(' ', i);
    if (end == std::string_view::npos) end = scope_string.size();
    std::string_view tok = scope_string.substr(i, end - i);
    i = end;
    if (++seen > kMaxScopes) {
      ++unknown;
      continue;
    }
    if (auto s = ParseScope(tok)) {
      out.push_back(std::move(*s));
    } else if (!IsNonDataScope(tok)) {
      ++unknown;
    }
  }
  if (ignored != nullptr) *ignored = unknown;
  return out;
}

namespace {
bool Matches(const Scope& s, ScopeContext context, std::string_view type, Interaction interaction) {
  return s.context == context && (s.resource_type == "*" || s.resource_type == type) && s.Grants(interaction);
}
}  // namespace

bool Permits(const std::vector<Scope>& scopes, ScopeContext context, std::string_view resource_type,
             Interaction interaction) {
  if (resource_type.empty() || resource_type == "*") return false;
  for (const Scope& s : scopes) {
    if (!s.Restricted() && Matches(s, context, resource_type, interaction)) return true;
  }
  return false;
}

std::vector<std::vector<std::pair<std::string, std::string>>> RestrictedGrants(const std::vector<Scope>& scopes,
                                                                              ScopeContext context,
                                                                              std::string_view resource_type,
                                                                              Interaction interaction) {
  std::vector<std::vector<std::pair<std::string, std::string>>> out;
  if (resource_type.empty() || resource_type == "*") return out;
  for (const Scope& s : scopes) {
    if (s.Restricted() && Matches(s, context, resource_type, interaction)) out.push_back(s.query);
  }
  return out;
}

}  // namespace phivault::auth
