// SMART on FHIR scopes (App Launch 1.0 "v1" and 2.0 "v2") and the decision
// whether a set of scopes permits one interaction on one resource type.
//
// Grammar of a data-access scope (anything else is not one):
//   context "/" type "." permissions [ "?" query ]
//   context     = "patient" | "user" | "system"
//   type        = an R4 resource type name | "*"
//   permissions = "read" | "write" | "*"                      (v1)
//               | one or more of "c" "r" "u" "d" "s", in that order, each
//                 at most once                                 (v2)
//   query       = name "=" value *( "&" name "=" value )       (v2 only)
// v1 "read" grants read+search, "write" create+update+delete, "*" all five.
// "openid", "fhirUser", "profile", "launch", "launch/patient",
// "launch/encounter", "online_access" and "offline_access" are recognised
// and grant no data access. Unknown or malformed scopes are ignored (never an
// error for the token): they grant nothing.
//
// Query restrictions (e.g. patient/Observation.rs?category=laboratory) narrow
// a grant to matching resources. Permits() cannot see the resource, so it
// counts ONLY unrestricted scopes (fail closed); RestrictedGrants() returns
// the restrictions of the scopes that would grant the interaction, for a
// caller that applies them as search filters / per-resource checks.
//
// Thread-safety: pure functions over values. Lifetime: results own their data.
#ifndef PHIVAULT_AUTH_SCOPES_H_
#define PHIVAULT_AUTH_SCOPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace phivault::auth {

enum class ScopeContext { kPatient, kUser, kSystem };
std::string_view ScopeContextName(ScopeContext c);

enum class Interaction : uint8_t {
  kCreate = 1 << 0,
  kRead = 1 << 1,
  kUpdate = 1 << 2,
  kDelete = 1 << 3,
  kSearch = 1 << 4,
};

struct Scope {
  ScopeContext context = ScopeContext::kUser;
  std::string resource_type;  // an R4 type name, or "*"
  uint8_t interactions = 0;   // bitwise OR of Interaction values
  bool v1 = false;            // written in v1 syntax (read/write/*)
  // v2 query restrictions, in order, as written (not percent-decoded).
  std::vector<std::pair<std::string, std::string>> query;
  std::string text;  // the scope as written

  bool Grants(Interaction i) const { return (interactions & static_cast<uint8_t>(i)) != 0; }
  bool Restricted() const { return !query.empty(); }
  bool operator==(const Scope&) const = default;
};

// Parses one data-access scope; nullopt if `text` is not one (including the
// non-data scopes such as "openid").
std::optional<Scope> ParseScope(std::string_view text);

// True for openid, fhirUser, profile, launch, launch/<x>, online_access,
// offline_access.
bool IsNonDataScope(std::string_view text);

// Splits a space-separated scope string (the OAuth "scope" claim) and parses
// every data-access scope. If `ignored` is given it receives the number of
// tokens that were neither a data scope nor a recognised non-data scope.
std::vector<Scope> ParseScopes(std::string_view scope_string, size_t* ignored = nullptr);

// True if some UNRESTRICTED scope with this context and type (or "*") grants
// `interaction`. `resource_type` must be a concrete type name.
bool Permits(const std::vector<Scope>& scopes, ScopeContext context, std::string_view resource_type,
             Interaction interaction);

// The query restrictions of every restricted scope that would grant the
// interaction; each inner vector is one alternative (the grant is their OR).
std::vector<std::vector<std::pair<std::string, std::string>>> RestrictedGrants(const std::vector<Scope>& scopes,
                                                                              ScopeContext context,
                                                                              std::string_view resource_type,
                                                                              Interaction interaction);

}  // namespace phivault::auth

#endif  // PHIVAULT_AUTH_SCOPES_H_
