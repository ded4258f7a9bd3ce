// Getting the audit log's evidence out of the vault: a read-only snapshot
// for offline auditors (`phivault audit export`) and publication of signed
// checkpoints to a file or a syslog collector (`phivault audit publish`).
//
// Both work on the files of a log that a running server may be appending to
// at the same time, and never write to them: the snapshot copies the
// complete signed notes of `checkpoints` first and then the segments, the
// last one only up to its last complete record, so every exported
// checkpoint is covered by exported records (a checkpoint is signed only
// after its entries are durable). Damage is copied as it is, never cleaned
// up: the export is evidence, and `audit verify` judges it.
//
// Published checkpoints leave the host so that a later rewrite of the log,
// even one re-signed with a stolen key, contradicts a copy the attacker
// cannot reach (`audit verify --checkpoint`). To a file they are appended
// as signed notes, each followed by one empty line (the format of the
// `checkpoints` file). To syslog they go as RFC 5424 messages over TLS
// (RFC 5425 octet counting), MSG = "PVCKPT1:" + base64(note): plain ASCII,
// which every collector stores verbatim on one line, unlike the note's
// newlines and U+2014. ExtractCheckpoints reads either form back.
//
// Thread-safety: free functions are reentrant; SyslogPublisher is for one
// thread. Lifetime: SyslogPublisher owns its connection.
#ifndef PHIVAULT_AUDIT_PUBLISH_H_
#define PHIVAULT_AUDIT_PUBLISH_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace phivault::audit {

inline constexpr std::string_view kPublishedCheckpointTag = "PVCKPT1:";

// Copies the log under `audit_dir` (DATA_DIR/audit) into `out_dir`
// (created, mode 0700; files 0600, synced) as seg-*.log, checkpoints and,
// when `vkey` is non-empty, vkey.txt. Needs no key.
Status ExportSnapshot(const std::string& audit_dir, const std::string& out_dir, std::string_view vkey);

// The complete signed notes in a checkpoints file, a published-checkpoints
// file, or a syslog collector's output holding "PVCKPT1:<base64>" tokens,
// in file order. Untrusted input: anything else is skipped, never a crash.
// Notes are not verified here (VerifyCheckpoint does that). `undecodable`,
// when given, receives the number of PVCKPT1 tokens that did not decode (a
// line cut short by a relay, for instance).
std::vector<std::string> ExtractCheckpoints(std::string_view file, size_t* undecodable = nullptr);

// ExtractCheckpoints over each file, in order (`--checkpoint FILE`, which
// may be repeated). NotFound for an unreadable file, InvalidArgument for one
// that holds no checkpoint or a PVCKPT1 token that does not decode: a typo
// or a damaged copy must not pass for "nothing (more) to compare".
StatusOr<std::vector<std::string>> ReadPublishedCheckpoints(std::span<const std::string> files);

// Appends `note` plus one empty line to `path` (created 0600) and fsyncs.
Status AppendCheckpointToFile(const std::string& path, std::string_view note);

// One RFC 5424 message carrying a checkpoint (without framing):
//   <110>1 TIMESTAMP HOST phivault PROCID checkpoint [phivault@32473 size="N"] PVCKPT1:<base64 note>
// PRI 110 = facility 13 (log audit), severity 6.
std::string FormatCheckpointMessage(std::string_view note, uint64_t size, std::string_view hostname,
                                    int64_t now_ms);

struct SyslogTarget {
  std::string host;
  uint16_t port = 6514;
  std::string server_name;  // name the collector's certificate must carry; "" = host
  std::string ca_file;      // required
  std::string client_cert_file, client_key_file;  // optional, both or neither
};
// Parses "syslog+tls://host:port" (IPv6 literals in brackets; port default
// 6514) into host and port. InvalidArgument otherwise.
StatusOr<SyslogTarget> ParseSyslogUrl(std::string_view url);

// A blocking RFC 5425 client: connect (TLS 1.2+, certificate checked
// against ca_file and the name), send framed messages. Send() returns OK
// once the bytes were written and the collector's TCP stack acknowledged
// them (the send queue drained), within `timeout`.
class SyslogPublisher {
 public:
  static StatusOr<std::unique_ptr<SyslogPublisher>> Connect(const SyslogTarget& target, int timeout_ms = 10000);
  ~SyslogPublisher();
  SyslogPublisher(const SyslogPublisher&) = delete;
  SyslogPublisher& operator=(const SyslogPublisher&) = delete;
  Status Send(std::string_view message, int timeout_ms = 10000);

 private:
  struct Impl;
  explicit SyslogPublisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_PUBLISH_H_
