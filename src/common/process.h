// Process-wide hardening applied by the phivault binary at start.
//
// A core dump is a copy of the process's memory written to disk: decrypted
// resources, unwrapped keys and expanded key schedules, in plaintext, where
// the vault promises that nothing it writes is readable. So the binary
// refuses to dump core unless the operator asks for it (allow_core_dumps,
// --allow-core-dumps, for debugging on a machine without patient data).
//
// Thread-safety: call once, early, before threads start.
#ifndef PHIVAULT_COMMON_PROCESS_H_
#define PHIVAULT_COMMON_PROCESS_H_

#include "common/status.h"

namespace phivault {

// Sets the core file size limit to zero (soft and hard, so a child cannot
// raise it) and marks the process not dumpable, which also keeps other
// processes of the same user from attaching a debugger and reading its
// memory. Internal on failure (with the errno text); the caller decides
// whether to go on.
Status DisableCoreDumps();

}  // namespace phivault

#endif  // PHIVAULT_COMMON_PROCESS_H_
