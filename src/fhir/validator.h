// Type-aware validation of FHIR R4 resources against the official R4 JSON
// schema (compiled in: generated/element_types.inc, from fhir.schema.json by
// tools/gen_fhir_tables.py).
//
// ValidateResource walks a parsed resource with the schema's types and
// rejects, at the first problem found:
//   - unknown elements (`_x` primitive extensions are allowed where `x` is a
//     primitive; `contained`, Bundle.entry.resource and other resource-valued
//     elements are validated recursively as the resource they name);
//   - codes outside the required value set where the schema has an `enum`
//     (Observation.status, Patient.gender, ...);
//   - primitive values that do not match their type (boolean, integer,
//     positiveInt, unsignedInt, decimal, string, code, id, uri/url/canonical,
//     date, dateTime, instant, time, base64Binary, oid, uuid, xhtml);
//   - a JSON array where the element is single, and the reverse.
// It does not check cardinality minimums, invariants or profiles.
// docs/DECISIONS.md ("Resource validation") lists the exact rules.
//
// Failures are kInvalidArgument (HTTP 400, issue code `invalid`) whose
// Status::expression() is the FHIRPath of the element (for example
// "Observation.status" or "Observation.component[1].valueQuantity.value").
// The message names the rule and that path, never a value; an unknown
// element is named only when its key is a plain identifier.
//
// Thread-safety: pure function over immutable tables; safe from any thread.
// Lifetime: nothing retained.
#ifndef PHIVAULT_FHIR_VALIDATOR_H_
#define PHIVAULT_FHIR_VALIDATOR_H_

#include <string_view>

#include <boost/json/object.hpp>

#include "common/status.h"

namespace phivault::fhir {

// Validates `resource` as the R4 resource its `resourceType` names.
// `root` prefixes every expression (for example "Bundle.entry[2].resource");
// empty means the resource type itself.
// REQUIRES: `resource` has bounded nesting (values from ParseJson/
// ParseResource do): the walk recurses once per nesting level.
Status ValidateResource(const boost::json::object& resource, std::string_view root = {});

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_VALIDATOR_H_
