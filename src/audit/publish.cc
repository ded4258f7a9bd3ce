#include "audit/publish.h"


#include <fcntl.h>
#include <linux/sockios.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <thread>

#include "audit/checkpoint.h"
#include "audit/segment.h"
#include "audit/siem_exporter.h"  // OctetFrame, kSdId
#include "common/fs.h"
#include "fhir/time.h"

namespace phivault::audit {
namespace {

// Reads (20 ms apart) of a live log's last segment that must find a damaged
// record at the same offset before it is taken as real damage: a second, so
// that a writer preempted in the middle of a group on a loaded machine is not
// mistaken for tampering. While the writer keeps appending, reads may catch
// different groups half-written; after kMaxLiveTailReads in all the copy
// stops before the record being written.
constexpr int kLiveTailReads = 50;
constexpr int kMaxLiveTailReads = 250;

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;

std::string Errno(std::string_view what, const std::string& path) {
  return std::string(what) + " " + path + ": " + std::strerror(errno);
}

using Fd = UniqueFd;

// Copies the first `len` bytes of `from` (all of it when nullopt) to a new
// file `to`, synced. Reads only.
Status CopyFile(const std::string& from, const std::string& to, std::optional<uint64_t> len) {
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return NotFound(Errno("audit export: cannot open", from));
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (out.get() < 0) return Unavailable(Errno("audit export: cannot create", to));
  std::string buf(1 << 20, '\0');
  uint64_t left = len.value_or(UINT64_MAX);
  while (left > 0) {
    const ssize_t n = ::read(in.get(), buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), left)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(Errno("audit export: cannot read", from));
    if (n == 0) {
      if (len) return DataLoss("audit export: " + from + " shrank while being copied");
      break;
    }
    PV_RETURN_IF_ERROR(WriteAll(out.get(), std::string_view(buf.data(), static_cast<size_t>(n)), to));
    left -= static_cast<uint64_t>(n);
  }
  if (::fsync(out.get()) != 0) return Unavailable(Errno("audit export: fsync failed on", to));
  return Status::Ok();
}

}  // namespace

Status ExportSnapshot(const std::string& audit_dir, const std::string& out_dir, std::string_view vkey) {
  if (::mkdir(out_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable(Errno("audit export: cannot create directory", out_dir));
  }
  // Checkpoints first (see the file comment): only complete notes, since the
  // server may be appending one right now.
  auto cps = ReadWholeFile(audit_dir + "/checkpoints");
  if (!cps.ok() && cps.status().code() != StatusCode::kNotFound) return cps.status();
  std::string checkpoints = cps.ok() ? *cps : "";
  size_t complete = 0;
  SplitNotes(checkpoints, &complete);
  {
    const std::string to = out_dir + "/checkpoints";
    Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (out.get() < 0) return Unavailable(Errno("audit export: cannot create", to));
    PV_RETURN_IF_ERROR(WriteAll(out.get(), std::string_view(checkpoints).substr(0, complete), to));
    if (::fsync(out.get()) != 0) return Unavailable(Errno("audit export: fsync failed on", to));
  }
  PV_ASSIGN_OR_RETURN(std::vector<SegmentFile> segments, ListSegments(audit_dir));
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string to = out_dir + "/" + SegmentFileName(segments[i].number);
    std::optional<uint64_t> len;
    if (i + 1 == segments.size()) {
      // The segment being appended to: stop after the last complete record.
      // A bad record is copied (and everything after it up to the end of
      // what was complete when we looked): hiding it would hide tampering.
      // A group commit writing over the padding looks damaged for an
      // instant, so a damaged tail is read again; only damage that stays at
      // one offset is copied as found.
      uint64_t bad_offset = 0;
      int reads_at_bad_offset = 0;
      for (int attempt = 1;; ++attempt) {
        PV_ASSIGN_OR_RETURN(auto reader, SegmentReader::Open(segments[i].path));
        Record rec;
        SegmentReader::Result r;
        while ((r = reader->Next(&rec)) == SegmentReader::Result::kRecord) {
        }
        if (r == SegmentReader::Result::kCorrupt) {
          if (attempt == 1 || reader->good_offset() != bad_offset) {
            bad_offset = reader->good_offset();
            reads_at_bad_offset = 0;
          }
          if (++reads_at_bad_offset < kLiveTailReads) {
            if (attempt < kMaxLiveTailReads) {
              std::this_thread::sleep_for(std::chrono::milliseconds(20));
              continue;
            }
            // The bad record moved on every read: each was a group being
            // written, and everything before this one read back whole.
            if (reader->header_ok()) len = bad_offset;
          }
          break;
        }
        // Also at a plain end: the file may have grown since this read, and
        // what it grew by may be a group still being written.
        if ((r == SegmentReader::Result::kTorn || r == SegmentReader::Result::kEnd) && reader->header_ok()) {
          len = reader->good_offset();  // without the writer's zero padding
        }
        break;
      }
    }
    PV_RETURN_IF_ERROR(CopyFile(segments[i].path, to, len));
  }
  if (!vkey.empty()) {
    const std::string to = out_dir + "/vkey.txt";
    Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (out.get() < 0) return Unavailable(Errno("audit export: cannot create", to));
    PV_RETURN_IF_ERROR(WriteAll(out.get(), std::string(vkey) + "\n", to));
    if (::fsync(out.get()) != 0) return Unavailable(Errno("audit export: fsync failed on", to));
  }
  return SyncDirectory(out_dir);
}

std::vector<std::string> ExtractCheckpoints(std::string_view file, size_t* undecodable) {
  std::vector<std::string> notes;
  if (undecodable != nullptr) *undecodable = 0;
  size_t pos = 0;
  bool tagged = false;
  while ((pos = file.find(kPublishedCheckpointTag, pos)) != std::string_view::npos) {
    tagged = true;
    pos += kPublishedCheckpointTag.size();
    size_t end = pos;
    while (end < file.size() && (std::isalnum(static_cast<unsigned char>(file[end])) || file[end] == '+' ||
                                 file[end] == '/' || file[end] == '=')) {
      ++end;
    }
    auto note = Base64Decode(file.substr(pos, end - pos));
    // Decoding alone is no test: a token cut at a multiple of four
    // characters still decodes. A note has a signature line.
    if (note.ok() && note->find("\n\n\xE2\x80\x94 ") != std::string::npos) {
      notes.push_back(std::move(*note));
    } else if (undecodable != nullptr) {
      ++*undecodable;
    }
    pos = end;
  }
  if (tagged) return notes;
  size_t done = 0;
  notes = SplitNotes(file, &done);
  // A lone note saved without its record terminator (curl > file) still counts.
  std::string tail(file.substr(done));
  if (tail.find_first_not_of("\n") != std::string::npos) {
    tail += tail.back() == '\n' ? "\n" : "\n\n";
    for (auto& n : SplitNotes(tail)) notes.push_back(std::move(n));
  }
  std::erase_if(notes, [](const std::string& n) { return n.find_first_not_of('\n') == std::string::npos; });
  return notes;
}

StatusOr<std::vector<std::string>> ReadPublishedCheckpoints(std::span<const std::string> files) {
  std::vector<std::string> notes;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return NotFound("cannot read " + file);
    std::ostringstream text;
    text << in.rdbuf();
    size_t undecodable = 0;
    std::vector<std::string> found = ExtractCheckpoints(text.str(), &undecodable);
    if (undecodable > 0) {
      return InvalidArgument(std::to_string(undecodable) + " checkpoint(s) in " + file +
                             " cannot be decoded (a line cut short?); fix or remove them");
    }
    if (found.empty()) return InvalidArgument("no checkpoint found in " + file);
    notes.insert(notes.end(), std::make_move_iterator(found.begin()), std::make_move_iterator(found.end()));
  }
  return notes;
}

Status AppendCheckpointToFile(const std::string& path, std::string_view note) {
  Fd out(::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (out.get() < 0) return Unavailable(Errno("audit publish: cannot open", path));
  // A note torn by a crash is closed off first, so it stays one bad note
  // (ignored by readers) instead of swallowing the next good one.
  std::string rec;
  struct stat st;
  if (::fstat(out.get(), &st) != 0) return Unavailable(Errno("audit publish: cannot stat", path));
  if (st.st_size > 0) {
    char tail[2] = {0, 0};
    const off_t at = st.st_size >= 2 ? st.st_size - 2 : 0;
    const ssize_t n = ::pread(out.get(), tail, static_cast<size_t>(st.st_size - at), at);
    const bool terminated = n == 2 && tail[0] == '\n' && tail[1] == '\n';
    if (!terminated) rec = (n >= 1 && tail[n - 1] == '\n') ? "\n" : "\n\n";
  }
  rec += note;
  if (rec.empty() || rec.back() != '\n') rec += '\n';
  rec += '\n';
  PV_RETURN_IF_ERROR(WriteAll(out.get(), rec, path));
  if (::fsync(out.get()) != 0) return Unavailable(Errno("audit publish: fsync failed on", path));
  return Status::Ok();
}

std::string FormatCheckpointMessage(std::string_view note, uint64_t size, std::string_view hostname,
                                    int64_t now_ms) {
  std::string host;
  for (char c : hostname.substr(0, 255)) {
    if (c > 32 && c < 127) host += c;
  }
  if (host.empty()) host = "-";
  std::string m = "<110>1 " + fhir::FormatInstant(now_ms) + " " + host + " phivault " +
                  std::to_string(::getpid()) + " checkpoint [" + std::string(kSdId) + " size=\"" +
                  std::to_string(size) + "\"] " + std::string(kPublishedCheckpointTag) + Base64Encode(note);
  return m;
}

StatusOr<SyslogTarget> ParseSyslogUrl(std::string_view url) {
  constexpr std::string_view scheme = "syslog+tls://";
  const Status bad = InvalidArgument("syslog target must look like syslog+tls://HOST:PORT");
  if (!url.starts_with(scheme)) return bad;
  url.remove_prefix(scheme.size());
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  SyslogTarget t;
  std::string_view port;
  if (url.starts_with("[")) {
    const size_t close = url.find(']');
    if (close == std::string_view::npos) return bad;
    t.host = std::string(url.substr(1, close - 1));
    url.remove_prefix(close + 1);
    if (url.starts_with(":")) port = url.substr(1);
    else if (!url.empty()) return bad;
  } else {
    const size_t colon = url.rfind(':');
    t.host = std::string(url.substr(0, colon));
    if (colon != std::string_view::npos) port = url.substr(colon + 1);
  }
  if (t.host.empty() || t.host.find_first_of("/?#@ ") != std::string::npos) return bad;
  if (!port.empty()) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || end != port.data() + port.size() || p == 0 || p > 65535) return bad;
    t.port = static_cast<uint16_t>(p);
  }
  return t;
}

struct SyslogPublisher::Impl {
  asio::io_context ioc;
  ssl::context ctx;
  std::optional<ssl::stream<tcp::socket>> stream;
  explicit Impl(SSL_CTX* c) : ctx(c) {}

  // Runs the io_context until `done` or the timeout; closes the socket on
  // timeout so the pending operation completes with an error.
  bool RunUntil(const bool& done, int timeout_ms) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(timeout_ms));
    if (done) return true;
    error_code ignored;
    stream->lowest_layer().close(ignored);
    ioc.restart();
    ioc.run();
    return false;
  }
};

SyslogPublisher::SyslogPublisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SyslogPublisher::~SyslogPublisher() {
  if (impl_ && impl_->stream) {
    error_code ignored;
    impl_->stream->lowest_layer().close(ignored);
  }
}

StatusOr<std::unique_ptr<SyslogPublisher>> SyslogPublisher::Connect(const SyslogTarget& t, int timeout_ms) {
  auto made = NewCollectorTlsContext(t.ca_file, t.client_cert_file, t.client_key_file);
  if (!made.ok()) return Status(made.status().code(), "syslog: " + made.status().message());
  auto impl = std::make_unique<Impl>(*made);  // the asio context owns it now
  Impl& s = *impl;
  s.stream.emplace(s.ioc, s.ctx);
  const std::string& name = t.server_name.empty() ? t.host : t.server_name;
  SSL* ssl = s.stream->native_handle();
  if (!SetCollectorName(ssl, name)) {
    ERR_clear_error();
    return InvalidArgument("syslog: cannot use " + name + " as the collector's name");
  }
  error_code ec;
  tcp::resolver resolver(s.ioc);
  auto results = resolver.resolve(t.host, std::to_string(t.port), ec);
  if (ec) return Unavailable("syslog: cannot resolve " + t.host + ": " + ec.message());
  bool done = false;
  error_code result;
  asio::async_connect(s.stream->lowest_layer(), results, [&](const error_code& e, const tcp::endpoint&) {
    if (e) {
      result = e;
      done = true;
      return;
    }
    s.stream->async_handshake(ssl::stream_base::client, [&](const error_code& e2) {
      result = e2;
      done = true;
    });
  });
  const std::string where = t.host + ":" + std::to_string(t.port);
  if (!s.RunUntil(done, timeout_ms)) return Unavailable("syslog: connecting to " + where + " timed out");
  if (result) {
    std::string what = "syslog: cannot connect to " + where + ": " + result.message();
    const long vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK) what += std::string(" (certificate: ") + X509_verify_cert_error_string(vr) + ")";
    ERR_clear_error();
    return Unavailable(what);
  }
  return std::unique_ptr<SyslogPublisher>(new SyslogPublisher(std::move(impl)));
}

Status SyslogPublisher::Send(std::string_view message, int timeout_ms) {
  Impl& s = *impl_;
  const std::string frame = OctetFrame(message);
  bool done = false;
  error_code result;
  asio::async_write(*s.stream, asio::buffer(frame), [&](const error_code& e, size_t) {
    result = e;
    done = true;
  });
  if (!s.RunUntil(done, timeout_ms)) return Unavailable("syslog: write timed out");
  if (result) return Unavailable("syslog: write failed: " + result.message());
  // Written is not delivered: wait until the collector's TCP stack has
  // acknowledged every byte (see siem_exporter.h, "Delivery").
  const int fd = s.stream->lowest_layer().native_handle();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int unacked = 0;
    if (::ioctl(fd, SIOCOUTQ, &unacked) != 0) return Unavailable("syslog: cannot query the send queue");
    if (unacked == 0) return Status::Ok();
    if (std::chrono::steady_clock::now() > deadline) return Unavailable("syslog: the collector did not acknowledge");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace phivault::audit
