// SearchHandler: FHIR type-level search (GET /fhir/{type}?..., POST
// /fhir/{type}/_search with a form body) answered as a searchset Bundle.
//
// Authorization runs on what would be returned: the type gate first
// (AccessControl::DecideType, search interaction), then every match and
// every _include/_revinclude resource is judged by AccessControl::Decide
// exactly as a read of it would be; what the caller may not see is dropped
// silently (a denial must look like absence). Pages are refilled from
// further matches so a page holds _count visible matches whenever that many
// exist, and the cursor points past what was examined, so paging stays
// consistent however many matches were filtered out.
//
// Chained parameters and _has select by the content of other resources, so
// they are resolved first through authorized searches into conditions on
// the ids of resources the caller may see: hidden records never influence
// which matches are returned (a clinician cannot probe, say, which patients
// have a hidden result). Each resolves to at most 1,000 ids (400 beyond).
//
// Totals: Bundle.total counts only matches this caller may see. It is given
// when it is known without extra work (the first page holds every visible
// match), and for _total=accurate and _summary=count by authorizing every
// match (bounded by ServiceOptions::count_examined_limit; beyond that
// _total=accurate omits total and _summary=count answers 400). A hidden
// match is never counted, so total reveals nothing about records the caller
// cannot see. The bounds on matches examined (which do include hidden ones)
// are drawn anew for each request (api/noisy_bound.h), so where a search
// stops is a noisy, not an exact, signal of how many hidden matches exist.
//
// Paging cursors are opaque (PagingCursor): the direction and the store's
// position, sealed with the search's canonical parameters as AAD. A cursor
// cannot be forged, altered or reused with other parameters, and the
// sort-key values inside it (which may be health data) are not readable
// from the URL. Positions are keyset positions, so links stay valid while
// resources are written.
//
// Thread-safety: Search() may be called concurrently. Lifetime: the store
// and access control must outlive the handler.
#ifndef PHIVAULT_API_SEARCH_HANDLER_H_
#define PHIVAULT_API_SEARCH_HANDLER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "api/access_control.h"
#include "audit/entry.h"
#include "api/fhir_service.h"
#include "api/paging_cursor.h"
#include "api/request_context.h"
#include "crypto/aead.h"
#include "http/types.h"
#include "store/resource_store.h"

namespace phivault::api {

class SearchHandler {
 public:
  static constexpr size_t kMaxIncluded = 1000;  // included resources per page

  // REQUIRES: `cursors` outlives the handler.
  SearchHandler(store::ResourceStore* store, AccessControl* access, const ServiceOptions& options,
                const PagingCursor* cursors);

  // GET /fhir/{type}: `params` are the URL's. POST /fhir/{type}/_search:
  // pass `form_body` = true and the request's body is parsed as
  // application/x-www-form-urlencoded and appended to `params`.
  // `entry` (may be null) receives the audit view: the parameter names
  // and every resource the Bundle returns (matches and includes).
  http::HttpResponse Search(const http::HttpRequest& req, const Caller& caller, const std::string& type,
                            QueryParams params, bool form_body, const OutputFormat& fmt, int64_t now_ms,
                            audit::AuditEntry* entry = nullptr);

  // Conditional update and delete (PUT / DELETE /fhir/{type}?search, R4
  // 3.1.0.4.3 and 3.1.0.7.1): resolves the search among the resources the
  // caller may see (hidden ones never count) and tells the caller what to
  // do. `req` is rewritten for the ordinary update/delete it becomes: the
  // matched id goes into the body and If-Match pins the matched version, so
  // a write that raced the search fails with 412 rather than overwriting.
  struct Conditional {
    enum class Action { kCreate, kUpdate, kDelete, kNothing } action = Action::kNothing;
    std::string id;  // kUpdate (may be an update-as-create id), kDelete
  };
  StatusOr<Conditional> ResolveConditional(http::HttpRequest& req, const Caller& caller, const std::string& type,
                                           const QueryParams& params, int64_t now_ms);

 private:
  struct Run;
  store::ResourceStore* store_;
  AccessControl* access_;
  ServiceOptions options_;
  const PagingCursor* cursors_;
};

}  // namespace phivault::api

#endif  // PHIVAULT_API_SEARCH_HANDLER_H_
