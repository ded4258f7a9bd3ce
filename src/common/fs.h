// Small POSIX file-system helpers shared by the components that write files
// outside SQLite (audit log, audit inbox, exports, backups).
//
// Thread-safety: plain functions, safe from any thread.
#ifndef PHIVAULT_COMMON_FS_H_
#define PHIVAULT_COMMON_FS_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace phivault {

// fsync()s the directory itself, so that entries created, renamed or removed
// in it survive a crash. Unavailable (with the errno text) on failure.
Status SyncDirectory(const std::string& dir);

// A file descriptor closed when the object goes out of scope, so that every
// early return closes it. Negative = none.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The whole content of a file. NotFound if it does not exist, Unavailable
// (with the errno text) if it cannot be read.
StatusOr<std::string> ReadWholeFile(const std::string& path);

// Writes all of `data` (retrying short writes and EINTR). Unavailable naming
// `path` and the errno text on failure.
Status WriteAll(int fd, std::string_view data, const std::string& path);

}  // namespace phivault

#endif  // PHIVAULT_COMMON_FS_H_
