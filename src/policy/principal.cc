#include "policy/principal.h"

#include "fhir/resource_types.h"
#include "policy/values.h"

namespace phivault::policy {

namespace {
struct RoleNameRow {
  Role role;
  std::string_view name;
};
constexpr RoleNameRow kRoleNames[] = {
    {Role::kClinician, "clinician"},   {Role::kRegistration, "registration"},
    {Role::kPrivacyOfficer, "privacy-officer"}, {Role::kSecurityAdmin, "security-admin"},
    {Role::kDevice, "device"},         {Role::kSystem, "system"},
    {Role::kPatient, "patient"},
};
}  // namespace

std::optional<Role> ParseRole(std::string_view name) {
  for (const auto& row : kRoleNames) {
    if (row.name == name) return row.role;
  }
  return std::nullopt;
}

std::string_view RoleName(Role role) {
  for (const auto& row : kRoleNames) {
    if (row.role == role) return row.name;
  }
  return "unknown";
}

std::optional<ScopeGrant> ParseScopeGrant(std::string_view text) {
  ScopeGrant g;
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view ctx = text.substr(0, slash);
  if (ctx == "patient") {
    g.context = ScopeGrant::kPatient;
  } else if (ctx == "user") {
    g.context = ScopeGrant::kUser;
  } else if (ctx == "system") {
    g.context = ScopeGrant::kSystem;
  } else {
    return std::nullopt;
  }
  std::string_view rest = text.substr(slash + 1);
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view type = rest.substr(0, dot);
  std::string_view perms = rest.substr(dot + 1);
  if (type != "*" && !fhir::IsKnownResourceType(type)) return std::nullopt;
  g.type = std::string(type);
  if (perms == "read") {
    g.r = g.s = true;
  } else if (perms == "write") {
    g.c = g.u = g.d = true;
  } else if (perms == "*") {
    g.c = g.r = g.u = g.d = g.s = true;
  } else {
    // v2: a non-empty subsequence of "cruds" in that order; a '?' restriction is refused (see header).
    static constexpr std::string_view kOrder = "cruds";
    size_t next = 0;
    if (perms.empty()) return std::nullopt;
    for (char ch : perms) {
      size_t at = kOrder.find(ch, next);
      if (at == std::string_view::npos) return std::nullopt;
      next = at + 1;
      switch (ch) {
        case 'c': g.c = true; break;
        case 'r': g.r = true; break;
        case 'u': g.u = true; break;
        case 'd': g.d = true; break;
        case 's': g.s = true; break;
      }
    }
  }
  return g;
}

std::string AuthorId(const Principal& p) {
  if (auto ref = NormalizeReference(p.fhir_user)) return *ref;
  return "subject:" + p.subject;
}

}  // namespace phivault::policy
