// Patient/{id}/$everything: the whole record of one patient as a paged
// searchset Bundle.
//
// What it returns (docs/DECISIONS.md, "$everything"):
//  - every resource in the patient's compartment, i.e. the current,
//    non-deleted version of each resource whose stored patient link names
//    the patient (store::ResourceStore::Compartment; nothing is recomputed
//    here), the Patient itself included, as search mode "match", oldest
//    write first;
//  - plus, on each page, the resources those matches reference that belong
//    to no patient compartment at all (Practitioner, Organization, Location,
//    Medication, ...), one level deep, as search mode "include". Only
//    relative references ("Type/id", "Type/id/_history/v") are followed.
//    A shared resource referenced from several pages appears on each.
// `_type` (comma-separated) and `_since` (an instant; resources last updated
// at or after it) filter both; `_count` sizes a page in matches.
//
// Authorization: the caller must be allowed to see the Patient (otherwise
// 404, exactly as for a missing patient) and every returned resource passes
// AccessControl::DecideType + Decide (interaction "search"), as History does;
// pages are refilled past hidden resources so each holds `_count` visible
// matches whenever that many exist (up to a drawn number examined, see
// api/noisy_bound.h), and the cursor points past everything examined so
// paging stays consistent. The cursor is sealed (PagingCursor)
// to this patient, `_type`, `_since` and `_count`.
//
// Thread-safety: stateless; safe from any thread. Lifetime: the context's
// references must outlive the call only.
#ifndef PHIVAULT_API_EVERYTHING_H_
#define PHIVAULT_API_EVERYTHING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "api/access_control.h"
#include "api/paging_cursor.h"
#include "api/request_context.h"
#include "common/status.h"
#include "http/types.h"
#include "store/resource_store.h"

namespace phivault::api {

struct EverythingContext {
  store::ResourceStore& store;
  AccessControl& access;
  const Caller& caller;
  const http::HttpRequest& request;
  const PagingCursor& cursors;  // seals the `next` link's position
  int64_t now_ms = 0;
  std::string_view base_url;
  int default_count = 50;
  int max_count = 1000;
  // Base of the drawn bound on compartment entries examined, hidden ones
  // included, to fill one page (ServiceOptions::join_examined_limit; at
  // least 64 * _count).
  int64_t refill_examined_limit = 20000;
};

struct EverythingResult {
  std::string bundle;  // the searchset Bundle JSON
  // What the Bundle discloses (matches, then includes), for the audit
  // trail's "each resource returned": type, id, version and patient link.
  struct Returned {
    std::string type, id;
    int64_t version = 0;
    std::vector<std::string> patients;
  };
  std::vector<Returned> returned;
  bool break_glass = false;  // something was let through by a break-glass grant
};

// The result, or the error to answer with.
// REQUIRES: `patient_id` is a valid FHIR id.
StatusOr<EverythingResult> PatientEverything(const EverythingContext& ctx, const QueryParams& params,
                                        const std::string& patient_id);

}  // namespace phivault::api

#endif  // PHIVAULT_API_EVERYTHING_H_
