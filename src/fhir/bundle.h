// Batch and transaction Bundles: parsing into a typed plan, processing order,
// and reference rewriting.
//
// ParseBatchOrTransaction validates the Bundle envelope and every entry's
// request (method GET/POST/PUT/DELETE, url `Type`, `Type?query`, `Type/id`,
// `Type/id/_history/vid`, known types, valid ids, resource present and of the
// url's type for POST/PUT, absent for GET/DELETE). For a transaction the first
// bad entry fails the whole Bundle; for a batch a bad entry only gets its own
// `status`, as each batch entry succeeds or fails alone (FHIR R4 3.1.0.11).
// Messages name the entry index and the rule, never entry content.
//
// Thread-safety: pure functions; distinct objects may be used concurrently.
// Lifetime: results own copies of everything they hold.
#ifndef PHIVAULT_FHIR_BUNDLE_H_
#define PHIVAULT_FHIR_BUNDLE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/status.h"

namespace phivault::fhir {

struct BundleEntryRequest {
  std::string method;    // "GET", "POST", "PUT" or "DELETE"
  std::string type;      // resource type named by the url
  std::string id;        // from `Type/id...`; empty otherwise
  std::string vid;       // from `Type/id/_history/vid`; empty otherwise
  std::string query;     // raw (still percent-encoded) text after '?'; empty if none
  std::string full_url;  // entry.fullUrl, e.g. "urn:uuid:..."; empty if absent
  std::optional<boost::json::object> resource;  // set for POST and PUT
  std::string if_match, if_none_exist, if_none_match;  // request.ifMatch etc.
  // Batch only: non-OK if this entry is invalid (its other fields may then be
  // partly filled). Always OK in a transaction's plan.
  Status status;
};

enum class BundleKind { kBatch, kTransaction };

struct ParsedBundle {
  BundleKind kind = BundleKind::kBatch;
  std::vector<BundleEntryRequest> entries;  // in Bundle order
};

struct BundleLimits {
  size_t max_entries = 10000;  // more entries fail with kTooLarge
};

// REQUIRES: `bundle` came from ParseResource (bounded depth).
// Errors: kInvalidArgument (envelope or, for transactions, an entry),
// kUnsupported (e.g. PATCH, operations, history/system-level urls in a
// transaction), kTooLarge (entry count).
StatusOr<ParsedBundle> ParseBatchOrTransaction(const boost::json::object& bundle,
                                               const BundleLimits& limits = {});

// The order in which a transaction's entries are processed (FHIR R4 3.1.0.11.2):
// DELETE, then POST, then PUT, then GET, each group in Bundle order. Entries
// with a non-OK status come last. Returns indices into `bundle.entries`.
std::vector<size_t> TransactionOrder(const ParsedBundle& bundle);

// Replaces, anywhere inside `v`, every string member named "reference" whose
// value is a key of `map` with the mapped value (e.g. "urn:uuid:..." ->
// "Patient/123").
void RewriteReferences(boost::json::value& v,
                       const std::unordered_map<std::string, std::string>& map);
void RewriteReferences(boost::json::object& o,
                       const std::unordered_map<std::string, std::string>& map);

// Sorted, unique "reference" strings inside `v` that start with "urn:uuid:" or
// "urn:oid:" (references to other entries of the Bundle).
std::vector<std::string> CollectUrnReferences(const boost::json::value& v);

}  // namespace phivault::fhir

#endif  // PHIVAULT_FHIR_BUNDLE_H_
