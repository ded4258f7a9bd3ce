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

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace phivault::testing {

// Starts argv[0] (looked up on PATH unless it holds a '/') with `argv` and
// the environment `envp`; stdin is /dev/null, stdout and stderr replace
// `out_path`. -1 on failure.
inline pid_t SpawnWithOutput(const std::vector<std::string>& argv_in, const std::string& out_path, char** envp) {
  if (argv_in.empty()) return -1;
  std::vector<char*> argv;
  for (const auto& a : argv_in) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  pid_t pid = -1;
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Starts PHIVAULT_BIN with `args`; output replaces `out_path`. -1 on failure.
inline pid_t SpawnBin(const std::vector<std::string>& args, const std::string& out_path) {
  std::vector<std::string> argv = {PHIVAULT_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return SpawnWithOutput(argv, out_path, environ);
}

// The exit code, or 128 + signal.
inline int WaitBin(pid_t pid) {
  int status = 0;
  if (pid <= 0 || waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Polls `done` every 50 ms, `tries` times at most; whether it came true.
inline bool PollFor(const std::function<bool()>& done, int tries = 100) {
  for (int i = 0; i < tries; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// Starts `phivault serve --data DIR --key-file KEY --listen 127.0.0.1:0`
// with its log in `log_path` and waits (10 s at most) until it listens.
// -1 if it did not start.
inline pid_t SpawnServing(const std::string& data, const std::string& key, const std::string& log_path) {
  const pid_t pid = SpawnBin({"serve", "--data", data, "--key-file", key, "--listen", "127.0.0.1:0"}, log_path);
  if (pid <= 0) return -1;
  const bool listening = PollFor([&] {
    std::ifstream in(log_path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str().find("event=server.listening") != std::string::npos;
  }, 200);
  return listening ? pid : -1;
}

// Whether directory `dir` is empty (or gone) within 5 s, e.g. an audit
// inbox that a running server drains every second.
inline bool DirEmptied(const std::string& dir) {
  return PollFor([&] {
    std::error_code ec;
    return std::filesystem::is_empty(dir, ec) || ec;
  });
}

}  // namespace phivault::testing

#endif  // PHIVAULT_TESTS_RUN_BIN_H_
