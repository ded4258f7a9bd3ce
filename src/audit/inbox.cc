#include "audit/inbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/log.h"
#include "fhir/time.h"

namespace phivault::audit {
namespace {

constexpr std::string_view kPrefix = "evt-";
constexpr std::string_view kSuffix = ".json";
constexpr std::string_view kOsUser = "os-user:";

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

bool Acceptable(const AuditEntry& e) {
  const bool command_action = e.action == AuditAction::kExport || e.action == AuditAction::kKeyChange ||
                              e.action == AuditAction::kBackup || e.action == AuditAction::kRestore ||
                              e.action == AuditAction::kTokenIssued;
  return command_action &&
         e.agent.subject.rfind(kOsUser, 0) == 0 && e.agent.subject.size() > kOsUser.size();
}

// Reads at most kMaxEntryBytes + 1 bytes: a larger file is not an entry.
StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return NotFound(Errno("audit inbox: cannot open", path));
  std::string out(kMaxEntryBytes + 1, '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

bool IsEntryFileName(std::string_view name) {
  return name.size() > kPrefix.size() + kSuffix.size() && name.substr(0, kPrefix.size()) == kPrefix &&
         name.substr(name.size() - kSuffix.size()) == kSuffix;
}

}  // namespace

std::string InboxDir(const std::string& data_dir) { return data_dir + "/audit-inbox"; }

std::string OsUserSubject() {
  const uid_t uid = ::getuid();
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr && found->pw_name[0] != '\0') {
    return std::string(kOsUser) + found->pw_name;
  }
  return std::string(kOsUser) + "uid-" + std::to_string(uid);
}

AuditEntry CommandEntry(AuditAction action, std::string_view event, std::string_view command) {
  AuditEntry e;
  e.time_ms = fhir::NowMillis();
  e.action = action;
  e.event = std::string(event);
  e.agent.subject = OsUserSubject();
  e.agent.client_id = "phivault-cli";
  e.user_agent = std::string(command);
  return e;
}

Status SubmitToInbox(const std::string& data_dir, const AuditEntry& entry) {
  if (!Acceptable(entry)) return InvalidArgument("audit inbox: only export, key-change, backup, restore and token-issued events by an os-user");
  const std::string dir = InboxDir(data_dir);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Unavailable(Errno("audit inbox: cannot create", dir));
  // Run as root (`sudo phivault ...`) beside a server that runs as the data
  // directory's owner, the inbox and its files must still be that owner's:
  // a root-owned entry the server cannot read would never reach the log.
  struct stat owner;
  if (::stat(data_dir.c_str(), &owner) != 0) return Unavailable(Errno("audit inbox: cannot stat", data_dir));
  const bool give_to_owner = ::geteuid() == 0 && owner.st_uid != 0;
  if (give_to_owner && ::chown(dir.c_str(), owner.st_uid, owner.st_gid) != 0) {
    return Unavailable(Errno("audit inbox: cannot hand to the data directory's owner", dir));
  }
  unsigned char rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  char hex[2 * sizeof rnd + 1];
  sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
  char stamp[24];
  std::snprintf(stamp, sizeof stamp, "%015lld", static_cast<long long>(std::max<int64_t>(entry.time_ms, 0)));
  const std::string name = std::string(kPrefix) + stamp + "-" + hex + std::string(kSuffix);
  const std::string tmp = dir + "/.tmp-" + hex;
  const std::string body = Serialize(entry);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Unavailable(Errno("audit inbox: cannot create", tmp));
  size_t done = 0;
  bool ok = !give_to_owner || ::fchown(fd, owner.st_uid, owner.st_gid) == 0;
  while (done < body.size()) {
    const ssize_t n = ::write(fd, body.data() + done, body.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0) {
    Status st = Unavailable(Errno("audit inbox: cannot write", tmp));
    ::unlink(tmp.c_str());
    return st;
  }
  return SyncDirectory(dir);
}

StatusOr<size_t> DrainInbox(const std::string& data_dir, AuditLog& log) {
  const std::string dir = InboxDir(data_dir);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return size_t{0};
    return Unavailable(Errno("audit inbox: cannot list", dir));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (IsEntryFileName(e->d_name)) names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  size_t appended = 0;
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    auto text = ReadSmallFile(path);
    if (!text.ok()) {
      // Removed meanwhile: nothing to append. Unreadable: say so, or an
      // event (a minted token, a backup) would be missing without a trace.
      static std::mutex warned_mu;
      static std::set<std::string> warned;  // once per file, not every second
      std::lock_guard lk(warned_mu);
      if (::access(path.c_str(), F_OK) == 0 && warned.insert(path).second) {
        log::Warn("audit_inbox_unreadable",
                  {{"file", name},
                   {"action", "give the file to the user the server runs as; it is appended at the next drain"}});
      }
      continue;
    }
    StatusOr<AuditEntry> entry = text->size() > kMaxEntryBytes ? StatusOr<AuditEntry>(InvalidArgument("too large"))
                                                                 : ParseEntry(*text);
    if (!entry.ok() || !Acceptable(*entry)) {
      log::Warn("audit_inbox_rejected", {{"file", name}, {"reason", entry.ok() ? "action or agent not allowed"
                                                                               : entry.status().message()}});
      if (::rename(path.c_str(), (dir + "/rejected-" + name.substr(kPrefix.size())).c_str()) != 0) {
        ::unlink(path.c_str());
      }
      continue;
    }
    // Re-serialized: what lands in the log is exactly what was accepted.
    auto index = log.AppendAndWait(Serialize(*entry));
    if (!index.ok()) return index.status();
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Unavailable(Errno("audit inbox: cannot delete", path));
    ++appended;
  }
  if (appended > 0) PV_RETURN_IF_ERROR(SyncDirectory(dir));
  return appended;
}

}  // namespace phivault::audit
