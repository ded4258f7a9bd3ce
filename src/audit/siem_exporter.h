// SiemExporter: streams the audit log to a SIEM collector as RFC 5424 syslog
// over TLS (RFC 5425), from a durable cursor.
//
// What goes out: one syslog message per entry, in index order,
//   <PRI>1 TIMESTAMP HOSTNAME phivault PROCID audit
//       [phivault@32473 index="N" vault="VAULT-ID"] MSG
// framed with octet counting ("LEN SP MSG", RFC 5425 §4.3). PRI uses
// facility 13 ("log audit", RFC 5424 table 1) so collectors can route audit
// apart from operational logs; severity 6 (informational) for allowed
// events, 5 (notice) for denied or failed ones, 4 (warning) for break-glass
// use and account lockouts. TIMESTAMP is the entry's time (UTC, ms); MSG is
// the entry's canonical JSON (Serialize(): printable ASCII, so no BOM is
// needed). An entry that does not parse (a foreign or damaged record) is
// still sent, as base64 in MSG with enc="base64" in the SD element, so the
// SIEM sees the gap rather than nothing. 32473 is the IANA example
// enterprise number (RFC 5612); an operator with a private enterprise
// number can change kSdId.
// Entries carry ids and codes, not health content, but patient ids are
// identifiers of patients and a break-glass reason is free text: the SIEM
// and its storage must be trusted to the same level as the vault's audit
// readers.
//
// Delivery: at least once, in index order. The cursor file
// DATA_DIR/audit/siem.cursor holds the next index to send; it is replaced
// atomically (write temp, fsync, rename, fsync the directory). RFC 5425 has
// no application acknowledgement, and bytes accepted by our TLS socket can
// still die in the collector's socket buffer if it stops, so "written to the
// socket" is not enough to advance the cursor. An entry counts as delivered
// once (1) its bytes were written, (2) the kernel reports the send queue
// empty (SIOCOUTQ == 0: the collector's TCP stack acknowledged every byte),
// and (3) the connection then stayed open for `ack_grace` (a collector
// stopped with unread data closes or resets the connection, which we see).
// Only then is the cursor advanced and fsynced. On any connection failure
// the exporter rewinds to the cursor and resends from there after
// reconnecting, so entries sent but not yet confirmed are sent again:
// duplicates are possible (after a reconnect, or a crash of the vault
// before the cursor write) and carry the same index="N", so the SIEM can
// drop them. A collector that accepts bytes and later loses its own
// in-memory queue (kill -9, power loss) can still lose them; only an
// application-level acknowledgement (RELP) or a disk-assisted queue at the
// collector closes that gap. Changing the collector keeps the cursor: delete
// the file to resend the whole log.
//
// Never blocks appenders: the exporter is not in the append path. Its own
// thread polls AuditLog::size() (a brief mutex) every poll_interval (or at
// once after Notify()), reads entries with ReadEntries() and talks to the
// collector with Asio; a slow or dead collector only delays the export. It
// reconnects with exponential backoff (with jitter) up to backoff_max.
// TLS: 1.2 or later, the collector's certificate must chain to ca_file and
// name server_name (DNS name or IP address SAN); a client certificate is
// sent if configured.
//
// Thread-safety: Notify(), stats(), cursor() and Stop() are safe from any
// thread. Lifetime: the AuditLog must outlive the exporter; the destructor
// calls Stop(), which closes the connection (after a TLS close_notify) and
// joins the thread, within a second unless a DNS lookup of the collector's
// name is in flight (getaddrinfo cannot be interrupted).
#ifndef PHIVAULT_AUDIT_SIEM_EXPORTER_H_
#define PHIVAULT_AUDIT_SIEM_EXPORTER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <openssl/ssl.h>

#include "audit/audit_log.h"
#include "common/status.h"

namespace phivault::audit {

inline constexpr std::string_view kSdId = "phivault@32473";

struct SiemExporterOptions {
  std::string data_dir;          // the cursor lives in DATA_DIR/audit/siem.cursor
  std::string host;              // collector: DNS name or IP literal
  uint16_t port = 6514;          // RFC 5425's port
  std::string server_name;       // name the collector's certificate must carry; "" = host
  std::string ca_file;           // PEM CA bundle the collector's certificate must chain to (required)
  std::string client_cert_file;  // optional client certificate chain (PEM) ...
  std::string client_key_file;   // ... and its key; both or neither
  std::string vault_id;          // the SD param vault="..."
  std::string hostname;          // RFC 5424 HOSTNAME; "" = gethostname()
  size_t batch_size = 128;       // entries per read and per socket write (max 10000)
  std::chrono::milliseconds poll_interval{200};
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds connect_timeout{10000};  // resolve + TCP + TLS handshake
  std::chrono::milliseconds write_timeout{30000};    // one batch; a stalled collector is dropped
  std::chrono::milliseconds ack_grace{1000};         // see "Delivery" above
  // Sending pauses when this many entries were written but not yet
  // acknowledged by the collector's TCP stack, until the send queue drains:
  // under a constant stream the queue would otherwise never be empty, the
  // cursor would never move, and a restart would resend without bound.
  size_t max_unacked = 4096;
};

// The RFC 5424 identity fields the exporter writes.
struct SyslogIdentity {
  std::string hostname;  // sanitized to PRINTUSASCII, at most 255 bytes
  std::string procid;
  std::string vault_id;
};

// One RFC 5424 message (without framing) for the entry at `index`.
std::string FormatSyslogMessage(std::string_view entry, uint64_t index, const SyslogIdentity& id);
// RFC 5425 octet-counting frame: "<decimal length> <message>".
std::string OctetFrame(std::string_view message);

// TLS for talking to a collector (shared with audit/publish.h): a TLS 1.2+
// client context that requires the peer's certificate to chain to ca_file
// and presents the client certificate if given (both or neither). The caller
// owns the context (SSL_CTX_free, or hand it to an asio::ssl::context).
StatusOr<SSL_CTX*> NewCollectorTlsContext(const std::string& ca_file, const std::string& client_cert_file,
                                          const std::string& client_key_file);
// Makes one TLS session check that the certificate names `name` (DNS name,
// or IP address SAN for an IP literal) and send it as SNI.
bool SetCollectorName(SSL* ssl, const std::string& name);

std::string SiemCursorPath(const std::string& data_dir);
// NotFound if the file does not exist; DataLoss if it is not a cursor file.
StatusOr<uint64_t> ReadSiemCursor(const std::string& path);
// Atomic and durable: temp file, fsync, rename, fsync of the directory.
Status WriteSiemCursor(const std::string& path, uint64_t next_index);

class SiemExporter {
 public:
  struct Stats {
    uint64_t cursor = 0;    // next index not yet confirmed (persisted)
    uint64_t sent = 0;      // messages written to the socket, resends included
    uint64_t connects = 0;  // successful TLS handshakes
    uint64_t connect_failures = 0;
    uint64_t disconnects = 0;  // established connections lost
    bool connected = false;
    std::string last_error;  // operator text, no health data
  };

  // Validates the options, builds the TLS context, reads the cursor
  // (missing = start at entry 0) and starts the thread. Fails with
  // InvalidArgument for bad options or unreadable certificate files, and
  // DataLoss for a damaged cursor or one beyond the log (another vault's?).
  static StatusOr<std::unique_ptr<SiemExporter>> Start(const AuditLog& log, SiemExporterOptions options);
  ~SiemExporter();
  SiemExporter(const SiemExporter&) = delete;
  SiemExporter& operator=(const SiemExporter&) = delete;

  // New entries are durable: look now instead of at the next poll. Optional.
  void Notify();
  // Stops sending and joins the thread; idempotent.
  void Stop();

  Stats stats() const;
  uint64_t cursor() const { return stats().cursor; }

 private:
  struct State;
  explicit SiemExporter(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace phivault::audit

#endif  // PHIVAULT_AUDIT_SIEM_EXPORTER_H_
