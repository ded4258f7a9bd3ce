// Internal to the store: small helpers shared by the SQLite engines (the
// resource store and the account store). Not part of the store's public API.
//
// Thread-safety: a Statement belongs to one connection and one thread at a time.
#ifndef PHIVAULT_STORE_SQLITE_UTIL_H_
#define PHIVAULT_STORE_SQLITE_UTIL_H_

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace phivault::store::sqlite {

// Maps an SQLite result code to a Status an operator can act on; `file` names
// the database in the message. Authentication failures in the encrypting VFS
// and corruption are DataLoss; a full or failing disk is Unavailable; a
// constraint violation is AlreadyExists.
Status Error(int rc, std::string_view file, std::string_view what);

// Runs `sql` (one or more statements, no results).
Status Exec(sqlite3* db, const char* sql, std::string_view file);

// Runs `body` (returning Status) inside BEGIN IMMEDIATE ... COMMIT and rolls
// back if it or the COMMIT fails. IMMEDIATE takes the write lock up front, so
// another process writing the file makes this wait (busy timeout) instead of
// failing half-way.
template <typename F>
Status InTransaction(sqlite3* db, std::string_view file, F&& body) {
  PV_RETURN_IF_ERROR(Exec(db, "BEGIN IMMEDIATE", file));
  Status s = body();
  if (s.ok()) s = Exec(db, "COMMIT", file);
  if (!s.ok()) Exec(db, "ROLLBACK", file).IgnoreError();
  return s;
}

// Binds parameters and reads columns of a prepared statement. Owning
// statements (Prepare) are finalized on destruction; borrowed ones (from a
// connection's cache) are reset and their bindings cleared.
class Statement {
 public:
  Statement() = default;
  // REQUIRES: `s` outlives this object (a cached statement).
  explicit Statement(sqlite3_stmt* s) : s_(s) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Prepares `sql` on `db` for one use (owned).
  Status Prepare(sqlite3* db, const char* sql, std::string_view file);

  Statement& Bind(int i, std::string_view v);
  Statement& BindBlob(int i, std::string_view v);
  Statement& Bind(int i, int64_t v);
  Statement& BindNull(int i);
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(s_); }
  // Makes the statement ready to run again (bindings stay until rebound).
  void Reset() { sqlite3_reset(s_); }
  int64_t Int(int col) { return sqlite3_column_int64(s_, col); }
  bool IsNull(int col) { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  std::string Text(int col);
  std::string Blob(int col);

 private:
  sqlite3_stmt* s_ = nullptr;
  bool owned_ = false;
};

}  // namespace phivault::store::sqlite

#endif  // PHIVAULT_STORE_SQLITE_UTIL_H_
