// Internal to the store: the SQLite search index (issue 5) and the
// translation of a SearchQuery into index lookups.
//
// Layout: one table per value kind (sx_string, sx_token, sx_ref, sx_date,
// sx_number for numbers and quantities, sx_uri). A row holds the version
// sequence number of a current, non-deleted resource, a parameter key
// unique per (resource type, parameter) derived from the compiled R4 table
// (search_params.h), so no type column is needed, and the normalized value
// (search/index_values.h). Rows exist only for current
// versions: the writer removes the rows of the version a write replaces, in
// the same transaction, so "has index rows" implies "current". Each table is
// WITHOUT ROWID, keyed by (seq, param, row number) for per-resource probes
// and removal, with a lookup index (param key, value...) for drivers (two
// B-trees per row); current_versions gets an index
// on seq so a match's id is found without reading resource_versions.
// Everything lives in vault.db and
// so is encrypted at rest by the encrypting VFS.
//
// Query plan: the most selective condition drives (an index range scan); the
// other conditions are EXISTS / NOT EXISTS probes on the (seq, param) index
// of each candidate; sort keys are per-candidate probes; keyset pagination on
// (sort keys, id) keeps positions stable while writes happen.
//
// Thread-safety: an IndexWriter belongs to the writer connection's thread;
// FindMatches may run on any connection that its thread has to itself (with
// a query budget it installs the connection's progress handler while it
// steps).
// Lifetime: an IndexWriter must be destroyed before its connection closes.
#ifndef PHIVAULT_STORE_SQLITE_SEARCH_H_
#define PHIVAULT_STORE_SQLITE_SEARCH_H_

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "common/status.h"
#include "search/index_values.h"
#include "store/search_query.h"

namespace phivault::store::sqlite_search {

// Creates the index tables and indexes if missing.
extern const char* const kIndexSchema;
// Drops them (before a rebuild).
extern const char* const kDropIndexSchema;
// Drops the lookup B-trees (every index on the sx_* tables), leaving the
// rows: a bulk load inserts rows only and kIndexSchema builds the lookups
// afterwards by sorting. Queries stay correct without them, only slower.
extern const char* const kDropLookupIndexSchema;

// Identifies the index layout, the parameter table and the string folding
// (search::kFoldVersion) it was built with: "v<layout>-f<fold>-<table hash>".
// A vault whose stored fingerprint differs gets its index rebuilt on open.
std::string Fingerprint();

// The index rows of one resource extracted before it reaches the writer:
// FHIRPath evaluation is a good part of a write's cost, and the submitting
// threads run in parallel while the writer thread is single. Rows of
// parameters that read `meta` (set by the writer) are left to the writer.
// Thread-safety: a plain value. Lifetime: none beyond its own.
// REQUIRES: the resource is not changed between Extract and
// IndexWriter::Add, except for meta.
class PreparedRows {
 public:
  static PreparedRows Extract(std::string_view type, const boost::json::object& resource);

  // Not ok when the resource cannot be indexed whole (search::ExtractParam).
  const Status& status() const { return status_; }

 private:
  friend class IndexWriter;
  // Why the resource cannot be indexed (see search::ExtractParam); given
  // back by IndexWriter::Add, so the write fails in the writer like any
  // other refused op.
  Status status_;
  // One list per parameter of search::SearchParamsFor(type), in order;
  // empty (and `writer_time` set) for parameters left to the writer.
  std::vector<std::vector<search::IndexEntry>> by_param_;
  std::vector<bool> writer_time_;
};

class IndexWriter {
 public:
  explicit IndexWriter(sqlite3* db) : db_(db) {}
  ~IndexWriter();
  IndexWriter(const IndexWriter&) = delete;
  IndexWriter& operator=(const IndexWriter&) = delete;

  // Writes the rows of `resource` (a current version with sequence `seq`).
  // `prepared`, if given, must come from PreparedRows::Extract on `type`.
  // kInvalidArgument, with nothing written, if the resource cannot be
  // indexed whole; the caller must then not store it. With
  // `unindexable_params` (rebuilding the index of resources already
  // stored), parameters that cannot be indexed are left out instead and
  // counted there.
  Status Add(std::string_view type, int64_t seq, const boost::json::object& resource,
             const PreparedRows* prepared = nullptr, int* unindexable_params = nullptr);
  // Removes every row of version `seq`.
  Status Remove(int64_t seq);

 private:
  StatusOr<sqlite3_stmt*> Stmt(int slot, const char* sql);
  sqlite3* db_;
  sqlite3_stmt* stmts_[12] = {};
};

struct Match {
  int64_t seq = 0;
  std::string id;
  std::string position;  // resume after this match
};

// Up to `limit` matches of `query` after `query.after`, in order.
// InvalidArgument for parameters unknown for the type or a bad position.
StatusOr<std::vector<Match>> FindMatches(sqlite3* db, const SearchQuery& query, int limit);

}  // namespace phivault::store::sqlite_search

#endif  // PHIVAULT_STORE_SQLITE_SEARCH_H_
