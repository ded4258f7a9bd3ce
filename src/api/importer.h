// Importer: loads FHIR NDJSON files and Bundles into a store, for
// `phivault import` and `phivault demo`.
//
// NDJSON lines keep their ids (update-or-create), so bulk exports from other
// systems import with their references intact. transaction Bundles are
// committed all-or-nothing with urn:uuid references rewritten; batch Bundles
// entry by entry; other Bundles (collection, searchset) store each entry's
// resource under its id. Parsing runs on the calling thread while the store's
// writer commits earlier batches, so both cores stay busy.
//
// Rejections are counted with a reason that names the file and line or entry,
// never the content.
//
// Thread-safety: one ImportFiles call at a time per store is the intended use.
#ifndef PHIVAULT_API_IMPORTER_H_
#define PHIVAULT_API_IMPORTER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "api/audit_trail.h"
#include "common/status.h"
#include "store/resource_store.h"

namespace phivault::api {

struct ImportOptions {
  size_t batch_size = 1000;    // resources per group commit
  int max_in_flight = 4;       // batches queued at the writer at most
  size_t max_reasons = 50;     // rejection reasons kept for the summary
  // ImportFiles only: load through the store's bulk path
  // (ResourceStore::BeginBulkLoad); the search lookups are built once at the
  // end, which the summary's time includes. For a large load into a vault
  // that is not serving; see BulkLoadPays.
  bool bulk_load = false;
  // Each batch of writes is audited (one entry per batch, kept with the
  // writes in their transaction, as for API writes). Null only in tests.
  RequestAuditor* auditor = nullptr;
  // Called now and then with resources processed so far and files done.
  std::function<void(int64_t processed, size_t files_done, size_t files_total)> progress;
};

struct ImportSummary {
  int64_t loaded = 0;
  int64_t rejected = 0;
  std::vector<std::string> reasons;  // "file:line: reason", at most max_reasons
  double seconds = 0;
};

// Whether loading `input_bytes` of FHIR JSON into a store whose files hold
// `store_bytes` is cheaper through the bulk path. Building the lookups at the
// end costs in proportion to everything stored; inserting into them costs
// more per row once their B-trees outgrow memory. So: a load of some size
// (8 MB or more) that is at least a quarter of the store's size.
bool BulkLoadPays(uint64_t input_bytes, uint64_t store_bytes);

// Fails only when a file cannot be read or the store fails as a whole;
// bad records are rejected and counted.
StatusOr<ImportSummary> ImportFiles(store::ResourceStore* store, const std::vector<std::string>& files,
                                    const ImportOptions& options = {});

// The same for resources already in memory (ids kept, as PUT).
StatusOr<ImportSummary> ImportResources(store::ResourceStore* store, std::vector<boost::json::object> resources,
                                        const ImportOptions& options = {});

}  // namespace phivault::api

#endif  // PHIVAULT_API_IMPORTER_H_
