#include "api/capability.h"

#include <boost/json.hpp>

#include "fhir/json_reader.h"
#include "fhir/resource_types.h"
#include "fhir/time.h"

namespace phivault::api {

std::string BuildCapabilityStatement(const std::string& base_url) {
  namespace json = boost::json;
  json::array resources;
  for (std::string_view type : fhir::AllResourceTypes()) {
    json::array interactions;
    for (const char* code : {"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create"}) {
      interactions.push_back(json::object{{"code", code}});
    }
    resources.push_back(json::object{
        {"type", json::string(type.data(), type.size())},
        {"interaction", std::move(interactions)},
        {"versioning", "versioned-update"},
        {"readHistory", true},
        {"updateCreate", true},
        {"conditionalCreate", true},
        {"conditionalRead", "not-supported"},
        {"conditionalUpdate", false},
        {"conditionalDelete", "not-supported"},
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
            "Search is not implemented in this version. If-None-Exist supports the _id and identifier "
            "parameters only. All data is encrypted at rest; every version is kept."},
           {"resource", std::move(resources)},
           {"interaction", json::array{json::object{{"code", "transaction"}}, json::object{{"code", "batch"}},
                                       json::object{{"code", "history-system"}}}},
       }}},
  };
  return json::serialize(cs);
}

}  // namespace phivault::api
