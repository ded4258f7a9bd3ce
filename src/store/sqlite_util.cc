#include "store/sqlite_util.h"

namespace phivault::store::sqlite {

Status Error(int rc, std::string_view file, std::string_view what) {
  std::string msg = std::string(file) + ": " + std::string(what) + ": " + sqlite3_errstr(rc);
  int primary = rc & 0xff;
  if (rc == SQLITE_IOERR_DATA || primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    return DataLoss("integrity check failed (" + msg + "); the file was modified outside phivault: restore it from a backup");
  }
  if (primary == SQLITE_FULL) return Unavailable("storage full (" + msg + ")");
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return Unavailable("storage busy (" + msg + ")");
  if (primary == SQLITE_IOERR) return Unavailable("storage I/O error (" + msg + ")");
  if (primary == SQLITE_CONSTRAINT) return Status(StatusCode::kAlreadyExists, msg);
  return Internal(msg);
}

Status Exec(sqlite3* db, const char* sql, std::string_view file) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (err) sqlite3_free(err);
  return rc == SQLITE_OK ? Status::Ok() : Error(rc, file, "exec");
}

Statement::~Statement() {
  if (!s_) return;
  if (owned_) {
    sqlite3_finalize(s_);
  } else {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
}

Status Statement::Prepare(sqlite3* db, const char* sql, std::string_view file) {
  int rc = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr);
  owned_ = true;
  return rc == SQLITE_OK ? Status::Ok() : Error(rc, file, "prepare");
}

Statement& Statement::Bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::BindBlob(int i, std::string_view v) {
  sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::Bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}

Statement& Statement::BindNull(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

std::string Statement::Text(int col) {
  const unsigned char* p = sqlite3_column_text(s_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col)))
           : std::string();
}

std::string Statement::Blob(int col) {
  const void* p = sqlite3_column_blob(s_, col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col)))
           : std::string();
}

}  // namespace phivault::store::sqlite
