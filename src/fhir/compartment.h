// The patient link: which Patient compartments a resource belongs to.
//
// Computed from the official FHIR R4 Patient CompartmentDefinition, whose
// search parameters tools/gen_fhir_tables.py translated into element paths
// (src/fhir/generated/patient_compartment.inc). A resource is in the
// compartment of patient P if any of its paths holds a Reference whose
// `reference` denotes Patient P: "Patient/P", "Patient/P/_history/V", or an
// absolute "http(s)://host/base/Patient/P[/_history/V]" (the base is not
// compared with ours). A Patient is in its own compartment (its `id`) and in
// those of the Patients in `link.other`. urn:uuid/urn:oid references, contained
// ("#x") and conditional ("Patient?identifier=") references are not patient
// ids: callers resolve them (RewriteReferences) before calling.
//
// This is the single definition of the patient link (see DESIGN-NOTES): store
// it at write time and never recompute it another way.
//
// Thread-safety: pure functions, safe from any thread. Lifetime: returned
// views point at static storage.
#ifndef PHIVAULT_FHIR_COMPARTMENT_H_
#define PHIVAULT_FHIR_COMPARTMENT_H_

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

namespace phivault::fhir {

// Sorted, unique ids of the patients whose compartment `resource` is in.
// Empty for types outside the compartment and for malformed input.
// One addition to the CompartmentDefinition: a Binary whose securityContext
// references a Patient is in that Patient's compartment (FHIR makes the
// securityContext stand in for the Binary in access decisions).
std::vector<std::string> PatientCompartment(const boost::json::object& resource);

// What a stored Binary's securityContext points at (see PatientCompartment):
// nullopt when `binary_json` has none (or is not a Binary); otherwise the
// relative reference "Type/id" (a trailing /_history/V ignored) as type and
// id, or an empty `type` when the reference is of any other form (absolute,
// contained, conditional, identifier only), which callers cannot follow and
// must treat as unresolvable.
struct ResourceRef {
  std::string type;
  std::string id;
};
std::optional<ResourceRef> BinarySecurityContext(std::string_view binary_json);
std::optional<ResourceRef> BinarySecurityContext(const boost::json::object& binary);

// True if resources of `type` can be in a Patient compartment (Patient and the
// types the CompartmentDefinition lists with parameters).
bool HasPatientCompartment(std::string_view type);

// One generated row: a dotted JSON element path of `type` (arrays are walked
// transparently) whose Reference may point at the patient, and the
// comma-separated search parameter codes it came from.
struct CompartmentPath {
  std::string_view type;
  std::string_view path;
  std::string_view params;
};

// The rows for `type` (empty if none), or with an empty `type` every row.
std::span<const CompartmentPath> PatientCompartmentPaths(std::string_view type);

// The patient id a reference string denotes (forms above), or nullopt.
std::optional<std::string> PatientIdFromReference(std::string_view reference);

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_COMPARTMENT_H_
