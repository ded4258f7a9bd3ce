// Small POSIX file-system helpers shared by the components that write files
// outside SQLite (audit log, audit inbox, exports).
//
// Thread-safety: plain functions, safe from any thread.
#ifndef PHIVAULT_COMMON_FS_H_
#define PHIVAULT_COMMON_FS_H_

#include <string>

#include "common/status.h"

namespace phivault {

// fsync()s the directory itself, so that entries created, renamed or removed
// in it survive a crash. Unavailable (with the errno text) on failure.
Status SyncDirectory(const std::string& dir);

}  // namespace phivault

#endif  // PHIVAULT_COMMON_FS_H_
