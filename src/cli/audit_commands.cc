#include "cli/audit_commands.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "audit/audit_log.h"
#include "audit/checkpoint.h"
#include "audit/inbox.h"
#include "audit/publish.h"
#include "audit/verify.h"
#include "crypto/keyring.h"
#include "fhir/time.h"

namespace phivault::cli {
namespace {

// Exit codes as for the other subcommands: 3 wrong key, 4 integrity.
int Report(const Status& s) {
  std::fprintf(stderr, "phivault audit: %s\n", s.message().c_str());
  if (s.code() == StatusCode::kPermissionDenied) return 3;
  return s.code() == StatusCode::kDataLoss ? 4 : 1;
}

bool IsDir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string FirstLine(std::string s) {
  const size_t nl = s.find_first_of("\r\n");
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

// The keyring, when a master key is configured (flags, config or
// PHIVAULT_MASTER_KEY); FailedPrecondition-like InvalidArgument otherwise.
StatusOr<std::unique_ptr<crypto::Keyring>> OpenKeyring(const Config& cfg) {
  Config c = cfg;
  PV_RETURN_IF_ERROR(c.Validate(false));
  return crypto::Keyring::Open(c.data_dir, c.key);
}

bool HasKeySource(const Config& cfg) {
  return !cfg.key.key_file.empty() || !cfg.key.passphrase_file.empty() || !cfg.key.key_env.empty() ||
         std::getenv("PHIVAULT_MASTER_KEY") != nullptr;
}

struct Vkey {
  std::string key;
  std::string source;  // "--vkey", "export", "keyring"
};

// See the header for the order. `allow_export_file`: verify may fall back
// to DIR/vkey.txt.
StatusOr<Vkey> ResolveVkey(const AuditCommandState& s, const Config& cfg, bool allow_export_file) {
  if (!s.vkey.empty()) {
    std::string k = s.vkey;
    if (k.find('+') == std::string::npos) {  // not a key string: a file
      PV_ASSIGN_OR_RETURN(std::string text, ReadText(k));
      k = FirstLine(text);
    }
    PV_RETURN_IF_ERROR(audit::ParseVerifierKey(k).status());
    return Vkey{k, "--vkey"};
  }
  if (allow_export_file) {
    if (auto text = ReadText(cfg.data_dir + "/vkey.txt"); text.ok()) return Vkey{FirstLine(*text), "export"};
  }
  if (HasKeySource(cfg)) {
    PV_ASSIGN_OR_RETURN(auto keyring, OpenKeyring(cfg));
    PV_ASSIGN_OR_RETURN(std::string k, audit::AuditVerifierKey(*keyring));
    return Vkey{k, "keyring"};
  }
  return InvalidArgument(
      "no verifier key: give --vkey KEY|FILE (from `phivault audit pubkey`) or the vault's master key");
}

int Pubkey(const AuditCommandState&, const Config& cfg) {
  auto keyring = OpenKeyring(cfg);
  if (!keyring.ok()) return Report(keyring.status());
  auto k = audit::AuditVerifierKey(**keyring);
  if (!k.ok()) return Report(k.status());
  std::printf("%s\n", k->c_str());
  return 0;
}

int Verify(const AuditCommandState& s, const Config& cfg) {
  if (cfg.data_dir.empty()) return Report(InvalidArgument("--data DIR is required (a data or export directory)"));
  auto vkey = ResolveVkey(s, cfg, true);
  if (!vkey.ok()) return Report(vkey.status());
  auto read = audit::ReadPublishedCheckpoints(s.checkpoints);
  if (!read.ok()) return Report(read.status());
  const std::vector<std::string>& published = *read;
  auto r = audit::Verify(cfg.data_dir, vkey->key, published);
  if (!r.ok()) return Report(r.status());
  if (vkey->source == "export") {
    std::fprintf(stderr,
                 "note: verified against the export's own vkey.txt; pin the vault's key with --vkey for an "
                 "independent check\n");
  }
  if (r->ok) {
    std::printf("audit log OK: %llu entries, %llu checkpoints verified (%zu published), root %s\n",
                static_cast<unsigned long long>(r->entries), static_cast<unsigned long long>(r->checkpoints),
                published.size(), audit::Base64Encode(r->root).c_str());
    return 0;
  }
  std::printf("audit log FAILED: %s\n", std::string(audit::ProblemName(r->problem)).c_str());
  if (r->first_bad_index == audit::VerifyResult::kNoIndex) {
    std::printf("first bad index: unknown\n");
  } else {
    std::printf("first bad index: %llu\n", static_cast<unsigned long long>(r->first_bad_index));
  }
  std::printf("reason: %s\n", r->reason.c_str());
  return 4;
}

int Export(const AuditCommandState& s, const Config& cfg) {
  if (cfg.data_dir.empty() || s.out_dir.empty()) return Report(InvalidArgument("--data DIR and --out DIR2 are required"));
  const std::string audit_dir = audit::AuditLog::AuditDir(cfg.data_dir);
  if (!IsDir(audit_dir)) return Report(NotFound("no audit log in " + cfg.data_dir));
  auto vkey = ResolveVkey(s, cfg, false);
  if (!vkey.ok()) return Report(vkey.status());
  Status st = audit::ExportSnapshot(audit_dir, s.out_dir, vkey->key);
  if (!st.ok()) return Report(st);
  // The export is itself an audited event; the running server (or the next
  // open of the vault) moves it into the log.
  const audit::AuditEntry entry =
      audit::CommandEntry(audit::AuditAction::kExport, "audit-log-export", "phivault audit export");
  if (Status queued = audit::SubmitToInbox(cfg.data_dir, entry); !queued.ok()) {
    std::fprintf(stderr, "phivault audit: the export was written but its audit entry could not be queued: %s\n",
                 queued.message().c_str());
    return 1;
  }
  std::printf("exported the sealed audit log to %s (no keys, no plaintext); check it with\n"
              "  phivault audit verify --data %s --vkey '%s'\n",
              s.out_dir.c_str(), s.out_dir.c_str(), vkey->key.c_str());
  return 0;
}

// ---- publish ----

struct Head {
  uint64_t size;
  audit::Hash root;
};

// The verified tree heads in `notes` (others are ignored: another vault's,
// or damaged), with the notes themselves.
std::vector<std::pair<Head, std::string>> Verified(const std::vector<std::string>& notes,
                                                   const audit::VerifierKey& key) {
  std::vector<std::pair<Head, std::string>> out;
  for (const auto& n : notes) {
    auto h = audit::VerifyCheckpoint(n, key);
    if (h.ok()) out.push_back({Head{h->size, h->root}, n});
  }
  return out;
}

class Publisher {
 public:
  Publisher(const AuditCommandState& s, const Config& cfg, audit::VerifierKey key)
      : s_(s), cfg_(cfg), key_(std::move(key)) {}

  Status Init() {
    if (!s_.to.starts_with("syslog+tls://")) {
      record_ = s_.to;
      return Status::Ok();
    }
    PV_ASSIGN_OR_RETURN(target_, audit::ParseSyslogUrl(s_.to));
    // Unset TLS settings default to the SIEM's ([audit.siem]): usually the same collector.
    auto pick = [](const std::string& flag, const std::string& conf) { return flag.empty() ? conf : flag; };
    target_.ca_file = pick(s_.ca_file, cfg_.siem.ca_file);
    target_.client_cert_file = pick(s_.client_cert, cfg_.siem.client_cert);
    target_.client_key_file = pick(s_.client_key, cfg_.siem.client_key);
    target_.server_name = s_.server_name;
    if (target_.ca_file.empty()) return InvalidArgument("publishing to syslog needs --ca FILE");
    syslog_ = true;
    std::string safe;
    for (char c : target_.host + "_" + std::to_string(target_.port)) {
      safe += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ? c : '-';
    }
    record_ = audit::AuditLog::AuditDir(cfg_.data_dir) + "/published-" + safe;
    return Status::Ok();
  }

  // Publishes what is new; returns how many notes went out.
  // Publishes what is new; returns how many notes went out. Reads the
  // published record once, then only what the log's checkpoints file gained
  // since the last call (both files grow by up to one note per second).
  StatusOr<size_t> Once() {
    if (!loaded_) {
      std::string done_text;
      if (auto t = ReadText(record_); t.ok()) done_text = std::move(*t);
      for (const auto& [h, n] : Verified(audit::ExtractCheckpoints(done_text), key_)) {
        published_[h.size] = h.root;
        published_max_ = std::max(published_max_, h.size);
        any_published_ = true;
      }
      loaded_ = true;
    }
    const std::string path = audit::AuditLog::AuditDir(cfg_.data_dir) + "/checkpoints";
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFound("cannot read " + path);
    in.seekg(0, std::ios::end);
    if (static_cast<uint64_t>(in.tellg()) < own_offset_) {
      return DataLoss("fork: " + path + " shrank; the log was rewritten or truncated. Not publishing; run "
                      "`phivault audit verify --checkpoint " + record_ + "`");
    }
    in.seekg(static_cast<std::streamoff>(own_offset_));
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string fresh = ss.str();
    size_t complete = 0;
    const std::vector<std::string> notes = audit::SplitNotes(fresh, &complete);
    auto own = Verified(notes, key_);
    if (own.size() != notes.size()) {
      return DataLoss("the vault's checkpoints file holds a checkpoint that does not verify; run `phivault audit verify`");
    }
    size_t sent = 0;
    for (const auto& [h, note] : own) {
      auto it = published_.find(h.size);
      if (it != published_.end() && it->second != h.root) {
        return DataLoss("fork: a checkpoint published earlier for size " + std::to_string(h.size) +
                        " has a different root than the log's; the log was rewritten. Not publishing; run "
                        "`phivault audit verify --checkpoint " + record_ + "`");
      }
      if (any_published_ && h.size <= published_max_) continue;
      if (syslog_) {
        PV_RETURN_IF_ERROR(SendSyslog(note, h.size));
      }
      PV_RETURN_IF_ERROR(audit::AppendCheckpointToFile(record_, note));
      published_max_ = h.size;
      any_published_ = true;
      ++sent;
    }
    // Only now: a failure above re-reads these notes on the next call.
    own_offset_ += complete;
    return sent;
  }

  void Disconnect() { conn_.reset(); }

 private:
  Status SendSyslog(const std::string& note, uint64_t size) {
    if (!conn_) {
      PV_ASSIGN_OR_RETURN(conn_, audit::SyslogPublisher::Connect(target_));
    }
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    Status st = conn_->Send(audit::FormatCheckpointMessage(note, size, host, fhir::NowMillis()));
    if (!st.ok()) conn_.reset();
    return st;
  }

  const AuditCommandState& s_;
  const Config& cfg_;
  audit::VerifierKey key_;
  bool syslog_ = false;
  audit::SyslogTarget target_;
  std::string record_;  // file holding what was published
  bool loaded_ = false;
  std::map<uint64_t, audit::Hash> published_;  // read from record_ at start
  uint64_t published_max_ = 0;
  bool any_published_ = false;
  uint64_t own_offset_ = 0;  // bytes of the log's checkpoints file already handled
  std::unique_ptr<audit::SyslogPublisher> conn_;
};

int Publish(const AuditCommandState& s, const Config& cfg) {
  if (cfg.data_dir.empty() || s.to.empty()) return Report(InvalidArgument("--data DIR and --to TARGET are required"));
  if (s.interval_ms < 10) return Report(InvalidArgument("--interval-ms must be at least 10"));
  auto vkey = ResolveVkey(s, cfg, false);
  if (!vkey.ok()) return Report(vkey.status());
  auto key = audit::ParseVerifierKey(vkey->key);
  if (!key.ok()) return Report(key.status());
  // Blocked so that sigtimedwait below is both the poll timer and the way
  // SIGTERM/SIGINT end --follow cleanly, never halfway through a note.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  if (s.follow) pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Publisher p(s, cfg, *key);
  if (Status st = p.Init(); !st.ok()) return Report(st);
  bool warned = false;
  while (true) {
    auto n = p.Once();
    if (!n.ok()) {
      if (!s.follow || n.status().code() == StatusCode::kDataLoss) return Report(n.status());
      // Collector or disk trouble: say so once per outage, keep trying.
      if (!warned) std::fprintf(stderr, "phivault audit publish: %s (retrying)\n", n.status().message().c_str());
      warned = true;
      p.Disconnect();
    } else {
      if (*n > 0 || !s.follow) std::printf("published %zu checkpoint(s) to %s\n", *n, s.to.c_str());
      std::fflush(stdout);
      warned = false;
    }
    if (!s.follow) return 0;
    timespec ts{s.interval_ms / 1000, static_cast<long>(s.interval_ms % 1000) * 1000000L};
    const int sig = sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) return 0;
  }
}

}  // namespace

void AddAuditCommands(CLI::App& app, AuditCommandState* s, const std::function<void(CLI::App*)>& add_common) {
  CLI::App* audit = app.add_subcommand("audit", "the tamper-evident audit log: keys, verification, export");
  audit->require_subcommand(1);
  const char* vkey_help = "verifier key string, or a file holding it (from `phivault audit pubkey`)";

  s->pubkey = audit->add_subcommand("pubkey", "print the checkpoint verifier key (needs the master key)");
  add_common(s->pubkey);

  s->verify = audit->add_subcommand(
      "verify", "recompute the Merkle tree, check every checkpoint; exit 4 and name the first bad index on failure");
  add_common(s->verify);
  s->verify->add_option("--vkey", s->vkey, vkey_help);
  s->verify->add_option("--checkpoint", s->checkpoints,
                        "file of checkpoints published earlier (repeatable): detects a rewritten history");

  s->export_cmd = audit->add_subcommand("export", "copy the sealed log and checkpoints for offline auditors");
  add_common(s->export_cmd);
  s->export_cmd->add_option("--out", s->out_dir, "directory to write (created)")->required();
  s->export_cmd->add_option("--vkey", s->vkey, vkey_help);

  s->publish = audit->add_subcommand("publish", "append new signed checkpoints to a file or syslog outside the vault");
  add_common(s->publish);
  s->publish->add_option("--to", s->to, "FILE or syslog+tls://HOST:PORT")->required();
  s->publish->add_flag("--follow", s->follow, "keep polling for new checkpoints until SIGTERM");
  s->publish->add_option("--interval-ms", s->interval_ms, "poll interval with --follow (default 1000)");
  s->publish->add_option("--ca", s->ca_file, "syslog: CA bundle the collector's certificate must chain to");
  s->publish->add_option("--client-cert", s->client_cert, "syslog: client certificate (PEM)");
  s->publish->add_option("--client-key", s->client_key, "syslog: client key (PEM)");
  s->publish->add_option("--server-name", s->server_name, "syslog: name in the collector's certificate (default: host)");
  s->publish->add_option("--vkey", s->vkey, vkey_help);
}

int RunAuditCommands(const AuditCommandState& s, const Config& cfg) {
  if (s.pubkey && s.pubkey->parsed()) return Pubkey(s, cfg);
  if (s.verify && s.verify->parsed()) return Verify(s, cfg);
  if (s.export_cmd && s.export_cmd->parsed()) return Export(s, cfg);
  if (s.publish && s.publish->parsed()) return Publish(s, cfg);
  return -1;
}

}  // namespace phivault::cli
