// Batch and transaction processing, shared by POST /fhir and `phivault import`.
//
// PlanBundle turns a parsed Bundle into store writes: it assigns ids to
// POSTed resources, rewrites urn:uuid references (transactions) to the ids
// assigned, computes each resource's patient link, and orders the writes as
// FHIR requires (DELETE, POST, PUT, GET). The caller commits `ops` (atomically
// for a transaction) and RenderBundleResponse shapes the outcome into a
// batch-response or transaction-response Bundle, executing GET entries last.
//
// Thread-safety: stateless functions.
#ifndef PHIVAULT_API_BUNDLE_PROCESSOR_H_
#define PHIVAULT_API_BUNDLE_PROCESSOR_H_

#include <cstddef>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"
#include "fhir/bundle.h"
#include "store/resource_store.h"

namespace phivault::api {

struct BundlePlan {
  bool transaction = false;
  struct Item {
    fhir::BundleEntryRequest request;  // resource moved into ops for writes
    size_t op_index = std::numeric_limits<size_t>::max();  // index into ops / CommitOutcome::results
    Status error;                                           // batch entry that failed validation
  };
  std::vector<Item> items;          // Bundle order
  std::vector<store::WriteOp> ops;  // processing order
};

// Errors: InvalidArgument / Unsupported / TooLarge for a bad Bundle, or for a
// transaction with any bad entry.
StatusOr<BundlePlan> PlanBundle(boost::json::object bundle, size_t max_entries);

// Decides whether the caller may see a version a GET entry returns (`vread`:
// the entry asked for a version); a non-OK status becomes that entry's
// outcome (NotFound when hidden).
using ReadAuthorizer = std::function<Status(const store::ResourceVersion&, bool vread)>;
// The type-level gate of a GET entry (role and scope: `vread` for a
// versioned GET), checked before the store is asked, so a refusal cannot
// depend on whether the record exists.
using ReadTypeAuthorizer = std::function<Status(const std::string& type, bool vread)>;

// REQUIRES: `outcome` is the result of committing plan.ops (moved out of plan).
std::string RenderBundleResponse(const BundlePlan& plan, const store::CommitOutcome& outcome,
                                 store::ResourceStore* store, const std::string& base_url,
                                 const ReadTypeAuthorizer& authorize_type, const ReadAuthorizer& authorize_read);

// "201 Created" etc.
std::string StatusLine(int status);

}  // namespace phivault::api

#endif  // PHIVAULT_API_BUNDLE_PROCESSOR_H_
