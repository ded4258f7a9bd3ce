#include "audit/siem_exporter.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "audit/checkpoint.h"  // Base64Encode
#include "audit/entry.h"
#include "common/log.h"
#include "fhir/time.h"

namespace phivault::audit {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

constexpr int kFacilityLogAudit = 13;
constexpr std::string_view kCursorMagic = "phivault-siem-cursor 1 ";
constexpr size_t kMaxBatch = 10000;  // AuditLog::ReadEntries' limit

// RFC 5424 header fields are PRINTUSASCII (33..126) with a length limit;
// anything else would break the collector's parser, so it is dropped.
std::string HeaderField(std::string_view s, size_t max) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) break;
    if (c >= 33 && c <= 126) out += c;
  }
  return out.empty() ? "-" : out;
}

// RFC 5424 §6.3.3: '"', '\' and ']' are escaped in PARAM-VALUE. Control
// characters are replaced: they are legal but a trap for line-based tools.
std::string SdEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\' || c == ']') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      out += '?';
    } else {
      out += c;
    }
  }
  return out;
}

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

std::string Describe(std::string_view what, const error_code& ec) {
  std::string s(what);
  if (ec) s += ": " + ec.message();
  return s;
}

}  // namespace

std::string FormatSyslogMessage(std::string_view entry, uint64_t index, const SyslogIdentity& id) {
  int severity = 6;  // informational
  std::string timestamp = "-";
  std::string msg;
  bool raw = false;
  auto parsed = ParseEntry(entry);
  if (parsed.ok()) {
    const AuditEntry& e = *parsed;
    if (e.break_glass || e.action == AuditAction::kBreakGlass || e.action == AuditAction::kLockout) {
      severity = 4;  // warning: someone should look
    } else if (e.outcome == AuditOutcome::kDenied || e.http_status >= 400 || e.action == AuditAction::kLoginFailure) {
      severity = 5;  // notice
    }
    timestamp = fhir::FormatInstant(e.time_ms);
    // Re-serialized rather than copied: guarantees printable ASCII even if
    // some writer put non-canonical JSON in the log.
    msg = Serialize(e);
  } else {
    severity = 5;
    msg = Base64Encode(entry);
    raw = true;
  }
  std::string out;
  out.reserve(msg.size() + 160);
  out += '<';
  out += std::to_string(kFacilityLogAudit * 8 + severity);
  out += ">1 ";
  out += timestamp;
  out += ' ';
  out += HeaderField(id.hostname, 255);
  out += " phivault ";
  out += HeaderField(id.procid, 128);
  out += " audit [";
  out += kSdId;
  out += " index=\"" + std::to_string(index) + "\" vault=\"" + SdEscape(id.vault_id) + "\"";
  if (raw) out += " enc=\"base64\"";
  out += "] ";
  out += msg;
  return out;
}

std::string OctetFrame(std::string_view message) {
  std::string out = std::to_string(message.size());
  out += ' ';
  out.append(message);
  return out;
}

std::string SiemCursorPath(const std::string& data_dir) { return AuditLog::AuditDir(data_dir) + "/siem.cursor"; }

StatusOr<uint64_t> ReadSiemCursor(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("no SIEM cursor at " + path);
    return Unavailable(Errno("siem: cannot open cursor", path));
  }
  char buf[128];
  size_t len = 0;
  while (len < sizeof buf) {
    const ssize_t n = ::read(fd, buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const Status st = Unavailable(Errno("siem: cannot read cursor", path));
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  ::close(fd);
  const Status bad = DataLoss("siem: " + path +
                              " is not a SIEM cursor file; delete it to resend the whole audit log, or write "
                              "\"phivault-siem-cursor 1 <next index>\" into it");
  std::string_view s(buf, len);
  if (s.substr(0, kCursorMagic.size()) != kCursorMagic || s.empty() || s.back() != '\n') return bad;
  s = s.substr(kCursorMagic.size(), s.size() - kCursorMagic.size() - 1);
  if (s.empty() || s.size() > 19) return bad;  // 19 digits always fit in uint64_t
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return bad;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

Status WriteSiemCursor(const std::string& path, uint64_t next_index) {
  const std::string tmp = path + ".tmp";
  const std::string content = std::string(kCursorMagic) + std::to_string(next_index) + "\n";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable(Errno("siem: cannot create", tmp));
  std::string_view rest = content;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const Status st = Unavailable(Errno("siem: cannot write", tmp));
      ::close(fd);
      return st;
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) {
    const Status st = Unavailable(Errno("siem: fsync failed on", tmp));
    ::close(fd);
    return st;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Unavailable(Errno("siem: cannot rename onto", path));
  // The rename is durable only once the directory is synced.
  const std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Unavailable(Errno("siem: cannot open directory", dir));
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return Unavailable(Errno("siem: fsync failed on directory", dir));
  return Status::Ok();
}

StatusOr<SSL_CTX*> NewCollectorTlsContext(const std::string& ca_file, const std::string& client_cert_file,
                                          const std::string& client_key_file) {
  if (ca_file.empty()) return InvalidArgument("a CA file for the collector's certificate is required");
  if (client_cert_file.empty() != client_key_file.empty()) {
    return InvalidArgument("give both a client certificate and its key, or neither");
  }
  // Built with OpenSSL directly: Asio's context(method) constructor reports
  // failure by throwing.
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Internal("cannot create a TLS context");
  auto fail = [ctx](Status st) {
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return st;
  };
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return fail(Internal("cannot require TLS 1.2+"));
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return fail(InvalidArgument("cannot load CA file " + ca_file + " (expect PEM certificates)"));
  }
  if (!client_cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, client_cert_file.c_str()) != 1) {
      return fail(InvalidArgument("cannot load client certificate " + client_cert_file));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, client_key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return fail(InvalidArgument("cannot load client key " + client_key_file +
                                  " or it does not match the certificate"));
    }
  }
  return ctx;
}

bool SetCollectorName(SSL* ssl, const std::string& name) {
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  error_code ec;
  asio::ip::make_address(name, ec);
  if (!ec) return X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) == 1;
  return X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) == 1 &&
         SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
}

// Everything the exporter thread owns. Members marked "io" are touched only
// on the io_context's thread (after Start() posted the first work).
struct SiemExporter::State {
  struct Conn {
    Conn(asio::io_context& ioc, ssl::context& ctx) : stream(ioc, ctx) {}
    ssl::stream<tcp::socket> stream;
    std::array<char, 512> rbuf{};
    std::string wbuf;  // the batch being written; per connection so an
                       // aborted write never sees the next batch's buffer
    bool up = false;   // handshake done
  };
  enum class Phase { kConnecting, kBackoff, kIdle };

  State(const AuditLog& l, SiemExporterOptions o, SSL_CTX* ctx)
      : log(l),
        opt(std::move(o)),
        ssl_ctx(ctx),
        resolver(ioc),
        wake(ioc),
        deadline(ioc),
        work(asio::make_work_guard(ioc)),
        rng(static_cast<uint32_t>(Clock::now().time_since_epoch().count())) {}

  const AuditLog& log;
  const SiemExporterOptions opt;
  SyslogIdentity ident;
  std::string cursor_path;
  std::string collector;  // "host:port", for operator messages

  asio::io_context ioc;
  ssl::context ssl_ctx;
  tcp::resolver resolver;
  asio::steady_timer wake;      // io: idle poll and reconnect backoff
  asio::steady_timer deadline;  // io: connect and write timeouts
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;  // serializes Stop()

  // io state
  Phase phase = Phase::kConnecting;
  std::shared_ptr<Conn> conn;
  uint64_t attempt = 0;   // connect attempt generation; stale handlers compare it
  uint64_t wake_gen = 0;  // superseded wake waits compare it
  uint64_t deadline_gen = 0;
  bool timed_out = false;
  uint64_t cursor = 0;                                       // persisted: next index not yet confirmed
  uint64_t next_send = 0;                                    // next index to write on this connection
  uint64_t acked_upto = 0;                                   // entries below it were acknowledged by the peer's TCP
  std::deque<std::pair<uint64_t, Clock::time_point>> marks;  // (acked_upto, when seen)
  std::chrono::milliseconds backoff{0};
  bool outage_logged = false;
  bool read_error_logged = false;
  bool cursor_error_logged = false;
  std::minstd_rand rng;

  mutable std::mutex mu;  // guards stats
  Stats stats;

  void SetStats(auto&& fn) {
    std::lock_guard<std::mutex> lock(mu);
    fn(stats);
  }

  void ArmWake(std::chrono::milliseconds d) {
    const uint64_t gen = ++wake_gen;
    wake.expires_after(d);
    wake.async_wait([this, gen](const error_code& ec) {
      if (stopping || gen != wake_gen) return;  // superseded by a newer wait
      if (phase == Phase::kBackoff) {
        if (!ec) StartConnect();
        return;
      }
      // Idle: expiry or Notify()'s cancel both mean "look at the log".
      if (phase == Phase::kIdle) Pump();
    });
  }

  template <typename Fn>
  void ArmDeadline(std::chrono::milliseconds d, Fn on_expiry) {
    const uint64_t gen = ++deadline_gen;
    deadline.expires_after(d);
    deadline.async_wait([this, gen, on_expiry](const error_code& ec) {
      if (ec || stopping || gen != deadline_gen) return;
      on_expiry();
    });
  }
  void CancelDeadline() {
    ++deadline_gen;
    deadline.cancel();
  }

  static void CloseSocket(Conn& c) {
    error_code ignored;
    c.stream.lowest_layer().close(ignored);
  }

  // Hostname (or IP) verification and SNI for one TLS session.
  bool ConfigureSession(SSL* ssl) {
    return SetCollectorName(ssl, opt.server_name.empty() ? opt.host : opt.server_name);
  }

  void StartConnect() {
    if (stopping) return;
    phase = Phase::kConnecting;
    timed_out = false;
    const uint64_t gen = ++attempt;
    ArmDeadline(opt.connect_timeout, [this, gen] {
      if (gen != attempt) return;
      timed_out = true;
      resolver.cancel();
      if (conn) CloseSocket(*conn);
    });
    resolver.async_resolve(
        opt.host, std::to_string(opt.port), [this, gen](const error_code& ec, tcp::resolver::results_type results) {
          if (stopping || gen != attempt) return;
          if (ec) return ConnectFailed("cannot resolve the collector's host name", ec);
          std::shared_ptr<Conn> c;
          try {  // SSL_new fails only when memory runs out; Asio reports that by throwing
            c = std::make_shared<Conn>(ioc, ssl_ctx);
          } catch (const std::exception&) {
            return ConnectFailed("cannot create a TLS session", {});
          }
          if (!ConfigureSession(c->stream.native_handle())) {
            ERR_clear_error();
            return ConnectFailed("cannot set the collector name to verify", {});
          }
          conn = c;
          asio::async_connect(
              c->stream.lowest_layer(), results, [this, c, gen](const error_code& ec2, const tcp::endpoint&) {
                if (stopping || gen != attempt) return;
                if (ec2) return ConnectFailed("cannot connect to the collector", ec2);
                error_code ignored;
                // Keepalive finds a collector that vanished
                // without a FIN while we are idle.
                c->stream.lowest_layer().set_option(asio::socket_base::keep_alive(true), ignored);
                c->stream.async_handshake(ssl::stream_base::client, [this, c, gen](const error_code& ec3) {
                  if (stopping || gen != attempt) return;
                  if (ec3) {
                    std::string what = "TLS handshake with the collector failed";
                    const long vr = SSL_get_verify_result(c->stream.native_handle());
                    if (vr != X509_V_OK) {
                      what += std::string(" (certificate: ") + X509_verify_cert_error_string(vr) + ")";
                    }
                    ERR_clear_error();
                    return ConnectFailed(what, ec3);
                  }
                  OnConnected(c);
                });
              });
        });
  }

  void OnConnected(const std::shared_ptr<Conn>& c) {
    CancelDeadline();
    c->up = true;
    phase = Phase::kIdle;
    backoff = opt.backoff_initial;
    next_send = cursor;
    acked_upto = cursor;
    marks.clear();
    SetStats([](Stats& s) {
      ++s.connects;
      s.connected = true;
    });
    log::Info("siem_connected", {{"collector", collector}, {"resume_index", std::to_string(cursor)}});
    outage_logged = false;
    StartReader(c);
    Pump();
  }

  void ConnectFailed(const std::string& what, const error_code& ec) {
    std::string msg = timed_out ? what + ": timed out" : Describe(what, ec);
    ++attempt;
    if (conn) CloseSocket(*conn);
    conn.reset();
    SetStats([&](Stats& s) {
      ++s.connect_failures;
      s.connected = false;
      s.last_error = msg;
    });
    // One warning per outage, not one per retry.
    if (!outage_logged) {
      log::Warn(
          "siem_connect_failed",
          {{"collector", collector}, {"error", msg}, {"next", "retrying with backoff; entries wait in the audit log"}});
      outage_logged = true;
    } else {
      log::Debug("siem_connect_failed", {{"collector", collector}, {"error", msg}});
    }
    ScheduleReconnect();
  }

  // An established connection failed: everything not yet confirmed is sent
  // again on the next connection.
  void ConnectionLost(const std::shared_ptr<Conn>& c, const std::string& msg) {
    if (c != conn) return;
    ++attempt;
    CancelDeadline();
    CloseSocket(*c);
    conn.reset();
    next_send = cursor;
    acked_upto = cursor;
    marks.clear();
    SetStats([&](Stats& s) {
      ++s.disconnects;
      s.connected = false;
      s.last_error = msg;
    });
    log::Warn("siem_disconnected", {{"collector", collector},
                                    {"error", msg},
                                    {"resend_from", std::to_string(cursor)},
                                    {"next", "reconnecting with backoff"}});
    outage_logged = true;
    backoff = opt.backoff_initial;
    ScheduleReconnect();
  }

  void ScheduleReconnect() {
    if (stopping) return;
    phase = Phase::kBackoff;
    // ±20% jitter so many vaults do not reconnect in lockstep.
    std::uniform_int_distribution<int64_t> jitter(80, 120);
    const auto delay = std::chrono::milliseconds(backoff.count() * jitter(rng) / 100);
    backoff = std::min(opt.backoff_max, std::max(opt.backoff_initial, backoff * 2));
    ArmWake(delay);
  }

  void StartReader(const std::shared_ptr<Conn>& c) {
    c->stream.async_read_some(asio::buffer(c->rbuf), [this, c](const error_code& ec, size_t) {
      if (stopping || c != conn) return;
      // A collector never sends application data under RFC 5425, so any
      // completion but data is the end of the connection.
      if (ec) {
        const bool closed = ec == asio::error::eof || ec == ssl::error::stream_truncated;
        return ConnectionLost(
            c, closed ? "the collector closed the connection" : Describe("connection to the collector failed", ec));
      }
      StartReader(c);
    });
  }

  // Sends the next batch, or waits for one.
  void Pump() {
    if (stopping || !conn || !conn->up || phase != Phase::kIdle) return;
    const uint64_t size = log.size();
    const bool must_drain = next_send - acked_upto >= opt.max_unacked;
    if (next_send < size && conn->wbuf.empty() && !must_drain) {
      const uint64_t end = std::min<uint64_t>(size, next_send + opt.batch_size);
      auto entries = log.ReadEntries(next_send, end);
      if (!entries.ok()) {
        if (!read_error_logged) {
          log::Error("siem_read_failed", {{"error", entries.status().ToString()},
                                          {"index", std::to_string(next_send)},
                                          {"next", "retrying; run `phivault audit verify` if this persists"}});
          read_error_logged = true;
        }
        ArmWake(opt.poll_interval);
        return;
      }
      read_error_logged = false;
      std::shared_ptr<Conn> c = conn;
      for (size_t i = 0; i < entries->size(); ++i) {
        c->wbuf += OctetFrame(FormatSyslogMessage((*entries)[i], next_send + i, ident));
      }
      ArmDeadline(opt.write_timeout, [this, c] { ConnectionLost(c, "write to the collector timed out"); });
      asio::async_write(c->stream, asio::buffer(c->wbuf), [this, c, end](const error_code& ec, size_t) {
        if (stopping || c != conn) return;
        CancelDeadline();
        c->wbuf.clear();
        if (ec) return ConnectionLost(c, Describe("write to the collector failed", ec));
        const uint64_t n = end - next_send;
        next_send = end;
        SetStats([n](Stats& s) { s.sent += n; });
        CheckAcks(false);
        if (conn == c) Pump();
      });
      return;
    }
    CheckAcks(false);
    if (!conn) return;  // CheckAcks found the connection gone
    // While entries await confirmation, look more often than the idle poll.
    auto wait = opt.poll_interval;
    if (must_drain && next_send < size) {
      wait = std::chrono::milliseconds(2);  // about one loopback/LAN round trip
    } else if (cursor < next_send) {
      wait = std::min(wait, std::max(std::chrono::milliseconds(5), opt.ack_grace / 4));
    }
    ArmWake(wait);
  }

  // Advances the persisted cursor over entries the collector's TCP stack
  // acknowledged at least ack_grace ago (0 when stopping) on a connection
  // that is still open. See "Delivery" in the header.
  void CheckAcks(bool final) {
    if (!conn || !conn->up) return;
    const int fd = conn->stream.lowest_layer().native_handle();
    const auto now = Clock::now();
    if (next_send > acked_upto) {
      int unacked = 0;
      if (::ioctl(fd, SIOCOUTQ, &unacked) == 0 && unacked == 0) {
        marks.emplace_back(next_send, now);
        acked_upto = next_send;
      }
    }
    const auto grace = final ? std::chrono::milliseconds(0) : opt.ack_grace;
    uint64_t commit = cursor;
    size_t confirmed = 0;
    for (const auto& [upto, when] : marks) {
      if (when + grace > now) break;
      commit = upto;
      ++confirmed;
    }
    if (commit <= cursor) return;
    // Last look before trusting the connection: EOF or an error means the
    // collector went away and may have dropped what it had not read yet.
    // Pending bytes (a TLS alert, perhaps close_notify) defer the decision
    // to the reader.
    char byte;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      ConnectionLost(conn, n == 0 ? "the collector closed the connection"
                                  : Errno("connection to the collector failed:", collector));
      return;
    }
    if (n > 0) return;
    if (Status st = WriteSiemCursor(cursor_path, commit); !st.ok()) {
      if (!cursor_error_logged) {
        log::Error("siem_cursor_write_failed", {{"file", cursor_path},
                                                {"error", st.message()},
                                                {"next", "entries will be resent after a restart; check the disk"}});
        cursor_error_logged = true;
      }
      return;  // marks stay; retried on the next tick
    }
    cursor_error_logged = false;
    marks.erase(marks.begin(), marks.begin() + static_cast<std::ptrdiff_t>(confirmed));
    cursor = commit;
    SetStats([commit](Stats& s) { s.cursor = commit; });
  }

  // On the io thread, after Stop() set `stopping`.
  void BeginShutdown() {
    wake.cancel();
    CancelDeadline();
    resolver.cancel();
    std::shared_ptr<Conn> c = conn;
    if (c && c->up && c->wbuf.empty()) {
      // Confirm what the collector already acknowledged, without the grace
      // period: we are the ones closing. (If CheckAcks finds the connection
      // gone, ConnectionLost does not reschedule: `stopping` is set.)
      CheckAcks(true);
      c = conn;
    }
    conn.reset();
    if (c && c->up && c->wbuf.empty()) {
      // close_notify, then close; bounded in case the collector never answers.
      auto timer = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(300));
      timer->async_wait([c](const error_code&) { CloseSocket(*c); });
      c->stream.async_shutdown([c, timer](const error_code&) {
        timer->cancel();
        CloseSocket(*c);
      });
    } else if (c) {
      CloseSocket(*c);
    }
    SetStats([](Stats& s) { s.connected = false; });
    work.reset();  // run() returns once the last handler has run
  }
};

SiemExporter::SiemExporter(std::unique_ptr<State> state) : s_(std::move(state)) {}

SiemExporter::~SiemExporter() { Stop(); }

StatusOr<std::unique_ptr<SiemExporter>> SiemExporter::Start(const AuditLog& log, SiemExporterOptions o) {
  if (o.host.empty()) return InvalidArgument("siem: no collector host configured");
  if (o.port == 0) return InvalidArgument("siem: collector port must be 1..65535");
  if (o.ca_file.empty()) return InvalidArgument("siem: a CA file for the collector's certificate is required");
  if (o.client_cert_file.empty() != o.client_key_file.empty()) {
    return InvalidArgument("siem: give both a client certificate and its key, or neither");
  }
  if (o.batch_size == 0 || o.batch_size > kMaxBatch) return InvalidArgument("siem: batch size must be 1..10000");
  if (o.max_unacked < o.batch_size) return InvalidArgument("siem: max_unacked must be at least the batch size");
  if (o.backoff_initial.count() <= 0 || o.backoff_max < o.backoff_initial || o.poll_interval.count() <= 0 ||
      o.connect_timeout.count() <= 0 || o.write_timeout.count() <= 0 || o.ack_grace.count() < 0) {
    return InvalidArgument("siem: timing options must be positive (and backoff_max >= backoff_initial)");
  }

  auto made = NewCollectorTlsContext(o.ca_file, o.client_cert_file, o.client_key_file);
  if (!made.ok()) return Status(made.status().code(), "siem: " + made.status().message());
  SSL_CTX* ctx = *made;
  auto fail = [ctx](Status st) {
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return st;
  };

  const std::string cursor_path = SiemCursorPath(o.data_dir);
  uint64_t cursor = 0;
  if (auto c = ReadSiemCursor(cursor_path); c.ok()) {
    cursor = *c;
  } else if (c.status().code() != StatusCode::kNotFound) {
    return fail(c.status());
  }
  if (cursor > log.size()) {
    return fail(DataLoss("siem: cursor " + cursor_path + " points past the end of the audit log (" +
                         std::to_string(cursor) + " > " + std::to_string(log.size()) +
                         "); is it from another vault? Delete it to resend the whole log"));
  }

  auto state = std::make_unique<State>(log, std::move(o), ctx);  // the context now owns ctx
  State& s = *state;
  s.cursor_path = cursor_path;
  s.cursor = s.next_send = s.acked_upto = cursor;
  s.stats.cursor = cursor;
  s.backoff = s.opt.backoff_initial;
  s.collector = s.opt.host + ":" + std::to_string(s.opt.port);
  if (!s.opt.hostname.empty()) {
    s.ident.hostname = s.opt.hostname;
  } else {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) s.ident.hostname = host;
  }
  s.ident.procid = std::to_string(::getpid());
  s.ident.vault_id = s.opt.vault_id;

  asio::post(s.ioc, [&s] { s.StartConnect(); });
  s.thread = std::thread([&s] { s.ioc.run(); });
  log::Info("siem_exporter_started", {{"collector", s.collector}, {"cursor", std::to_string(cursor)}});
  return std::unique_ptr<SiemExporter>(new SiemExporter(std::move(state)));
}

void SiemExporter::Notify() {
  State* s = s_.get();
  asio::post(s->ioc, [s] {
    if (!s->stopping && s->phase == State::Phase::kIdle) s->wake.cancel();
  });
}

void SiemExporter::Stop() {
  std::lock_guard<std::mutex> lock(s_->stop_mu);
  if (!s_->thread.joinable()) return;
  s_->stopping = true;
  State* s = s_.get();
  asio::post(s->ioc, [s] { s->BeginShutdown(); });
  s_->thread.join();
}

SiemExporter::Stats SiemExporter::stats() const {
  std::lock_guard<std::mutex> lock(s_->mu);
  return s_->stats;
}

}  // namespace phivault::audit
