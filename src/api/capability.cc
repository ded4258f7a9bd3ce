#include "api/capability.h"

#include <boost/json.hpp>

#include "fhir/json_reader.h"
#include "fhir/resource_types.h"
#include "fhir/time.h"
#include "search/search_params.h"

namespace phivault::api {
namespace {

// What each parameter type supports (search/query.h, store/sqlite_search.cc).
std::string_view ModifierDoc(search::ParamType t, std::string_view code) {
  switch (t) {
    case search::ParamType::kString: return "starts-with, case- and accent-insensitive; modifiers :exact :contains :missing";
    case search::ParamType::kToken:
      return code == "identifier" ? "system|code, |code, system|; modifiers :not :text :of-type :missing"
                                  : "system|code, |code, system|; modifiers :not :text :missing";
    case search::ParamType::kReference:
      return "Type/id, id, absolute URL; modifiers :[type] :identifier :missing; chaining one level deep; _has";
    case search::ParamType::kDate:
      return "prefixes eq ne gt lt ge le sa eb ap, the value's precision as a range; modifier :missing";
    case search::ParamType::kNumber:
      return "prefixes eq ne gt lt ge le sa eb ap, implied precision; modifier :missing";
    case search::ParamType::kQuantity:
      return "prefixes eq ne gt lt ge le sa eb ap; number|system|code or number||unit; modifier :missing";
    case search::ParamType::kUri: return "exact match; modifiers :below :above :missing";
  }
  return "";
}

}  // namespace

std::string BuildCapabilityStatement(const std::string& base_url) {
  namespace json = boost::json;
  json::array resources;
  for (std::string_view type : fhir::AllResourceTypes()) {
    json::array interactions;
    for (const char* code :
         {"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}) {
      interactions.push_back(json::object{{"code", code}});
    }
    // Exactly the indexed parameters: string, token, reference, date,
    // number, quantity and uri (composite and special ones are not).
    json::array params, includes, revincludes;
    for (const search::SearchParamDef* d : search::SearchParamsFor(type)) {
      params.push_back(json::object{{"name", json::string(d->code.data(), d->code.size())},
                                    {"type", json::string(search::ParamTypeName(d->type))},
                                    {"documentation", json::string(ModifierDoc(d->type, d->code))}});
      if (d->type == search::ParamType::kReference) {
        includes.push_back(json::string(std::string(type) + ":" + std::string(d->code)));
      }
    }
    for (const search::SearchParamDef& d : search::AllSearchParams()) {
      if (d.type != search::ParamType::kReference || d.base == "Resource") continue;
      std::string_view t = d.targets;
      bool targets_type = false;
      while (!t.empty()) {
        size_t comma = t.find(',');
        targets_type |= t.substr(0, comma) == type;
        t = comma == std::string_view::npos ? std::string_view() : t.substr(comma + 1);
      }
      if (targets_type) revincludes.push_back(json::string(std::string(d.base) + ":" + std::string(d.code)));
    }
    resources.push_back(json::object{
        {"searchParam", std::move(params)},
        {"searchInclude", std::move(includes)},
        {"searchRevInclude", std::move(revincludes)},
        {"type", json::string(type.data(), type.size())},
        {"interaction", std::move(interactions)},
        {"versioning", "versioned-update"},
        {"readHistory", true},
        {"updateCreate", true},
        {"conditionalCreate", true},
        {"conditionalRead", "not-supported"},
        {"conditionalUpdate", true},
        {"conditionalDelete", "single"},
    });
    if (type == "Patient") {
      resources.back().as_object()["operation"] = json::array{json::object{
          {"name", "everything"}, {"definition", "http://hl7.org/fhir/OperationDefinition/Patient-everything"}}};
    }
  }
  json::object cs{
      {"resourceType", "CapabilityStatement"},
      {"status", "active"},
      {"date", fhir::FormatInstant(fhir::NowMillis()).substr(0, 10)},
      {"kind", "instance"},
      {"software", json::object{{"name", "phivault"}, {"version", kSoftwareVersion}}},
      {"implementation",
       json::object{{"description", "phivault secure clinical data vault"}, {"url", base_url + "/fhir"}}},
      {"fhirVersion", "4.0.1"},
      {"format", json::array{"application/fhir+json", "application/json"}},
      {"patchFormat", json::array{"application/json-patch+json"}},
      {"rest",
       json::array{json::object{
           {"mode", "server"},
           {"documentation",
            "Search: every R4 parameter of type string, token, reference, date, number, quantity and uri "
            "(composite and special parameters, _text, _content, _list, _query and _filter are not supported). "
            "Results: _sort (several keys, -desc), _count, _summary=true|text|data|count|false, _elements, "
            "_total=none|estimate|accurate, _include and _revinclude (with :iterate), next/previous paging. "
            "Every match and included resource is authorized; Bundle.total counts only what the caller may see. "
            "Unknown parameters are an error unless Prefer: handling=lenient. "
            "If-None-Exist takes any search condition on the created type (no chains or _has). "
            "Conditional update and delete (single) count only resources the caller may see. "
            "All data, the search index "
            "included, is encrypted at rest; every version is kept."},
           {"resource", std::move(resources)},
           {"interaction", json::array{json::object{{"code", "transaction"}}, json::object{{"code", "batch"}},
                                       json::object{{"code", "history-system"}}}},
           // Bulk Data Access v2 (system, Patient and Group level; api/bulk_export.h).
           {"operation", json::array{json::object{
                             {"name", "export"},
                             {"definition", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}}}},
       }}},
  };
  return json::serialize(cs);
}

}  // namespace phivault::api
