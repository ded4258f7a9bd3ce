#include "common/process.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace phivault {
namespace {

// Checked in a child, so the test process itself stays dumpable (sanitizer
// and debugger tooling may rely on that).
TEST(ProcessTest, DisableCoreDumpsLeavesNoCoreAndNoDumpableProcess) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!DisableCoreDumps().ok()) _exit(1);
    rlimit lim{};
    if (::getrlimit(RLIMIT_CORE, &lim) != 0 || lim.rlim_cur != 0 || lim.rlim_max != 0) _exit(2);
#if !defined(__SANITIZE_ADDRESS__)
    if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) _exit(3);
#endif
    // The hard limit holds: the limit cannot be raised again.
    const rlimit raise{RLIM_INFINITY, RLIM_INFINITY};
    if (::geteuid() != 0 && ::setrlimit(RLIMIT_CORE, &raise) == 0) _exit(4);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace phivault
