#include "common/process.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace phivault {

Status DisableCoreDumps() {
  const rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    return Internal(std::string("cannot set the core file size limit to 0: ") + std::strerror(errno));
  }
#if !defined(__SANITIZE_ADDRESS__)
  // (Not in sanitizer builds: LeakSanitizer inspects the process through
  // ptrace at exit, which a non-dumpable process refuses unless root.)
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return Internal(std::string("cannot mark the process not dumpable: ") + std::strerror(errno));
  }
#endif
  return Status::Ok();
}

}  // namespace phivault
