// Summary views of a resource for `_summary=true` and `_summary=text`
// (FHIR R4 3.1.1.5.8), from a compiled table of the R4 StructureDefinitions'
// summary and mandatory flags (tools/gen_summary_table.py ->
// src/fhir/generated/summary_elements.inc). Nothing is read at run time.
//
//  - kTrue keeps resourceType, id, meta and the elements flagged isSummary,
//    at every depth (into data types, backbone elements and contained
//    resources such as Bundle.entry.resource), plus the mandatory (min >= 1)
//    elements inside whatever is kept, plus every modifier element (isModifier;
//    R4 leaves a few out of the summary, e.g. each resource's
//    modifierExtension, and a view without them can reverse what it shows).
//    Extensions, once kept, are kept whole. A
//    primitive's `_name` sibling (its id/extensions) follows `name`. An
//    object or array left empty by the filter is dropped (FHIR JSON has no
//    empty objects).
//  - kText keeps resourceType, id, meta, text and the top-level mandatory
//    elements (whole).
// Unknown elements (not R4) are dropped in both modes; an unknown resource
// type keeps only resourceType. The SUBSETTED tag is the
// caller's business (it depends on the context: search results, reads).
//
// Thread-safety: pure functions over static tables. Lifetime: results own
// their data.
#ifndef PHIVAULT_FHIR_SUMMARY_H_
#define PHIVAULT_FHIR_SUMMARY_H_

#include <string_view>

#include <boost/json/object.hpp>

namespace phivault::fhir {

enum class SummaryView { kTrue, kText };

boost::json::object Summarize(const boost::json::object& resource, SummaryView view);

// Flags of one element in the table; `context` is a resource or data type
// name or a backbone element path ("Patient.contact"), `name` the JSON name.
// Exposed for tests.
struct SummaryFlags {
  bool known = false;
  bool summary = false;
  bool mandatory = false;
  bool modifier = false;
};
SummaryFlags SummaryElement(std::string_view context, std::string_view name);

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_SUMMARY_H_
