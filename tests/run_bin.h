// Test helper: runs the phivault binary (PHIVAULT_BIN) as a child process
// with stdout and stderr going to one file. For tests only.
//
// Thread-safety: reentrant. Lifetime: plain functions.
#ifndef PHIVAULT_TESTS_RUN_BIN_H_
#define PHIVAULT_TESTS_RUN_BIN_H_

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace phivault::testing {

// Starts PHIVAULT_BIN with `args`; output replaces `out_path`. -1 on failure.
inline pid_t SpawnBin(const std::vector<std::string>& args, const std::string& out_path) {
  static const std::string bin = PHIVAULT_BIN;
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(bin.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  if (posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// The exit code, or 128 + signal.
inline int WaitBin(pid_t pid) {
  int status = 0;
  if (pid <= 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace phivault::testing

#endif  // PHIVAULT_TESTS_RUN_BIN_H_
