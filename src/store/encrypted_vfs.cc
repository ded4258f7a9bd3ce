#include "store/encrypted_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <new>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "common/secure_bytes.h"

// How files map to encryption units
// ---------------------------------
// Main database: unit k (0-based) is bytes [k*P, (k+1)*P); SQLite page k+1.
// WAL: a 32-byte header, then frames of 24-byte header + P-byte body; the
// body of frame i (0-based) is a unit at 32 + i*(24+P) + 24.
// Inside a unit: [0, P-32) is the sealed page content, [P-32, P-28) is zero,
// [P-28, P) holds nonce || tag. SQLite's own reserved bytes are thus ours.
//
// Reads are widened to whole units (SQLite reads 100 bytes of page 1 at open,
// 16 bytes at offset 24 to check the change counter, whole frames during WAL
// recovery and bare bodies otherwise), decrypted, then the requested slice is
// copied out. Writes must cover whole units; SQLite only ever writes whole
// pages and whole frame bodies once it is told writes are powersafe (it would
// otherwise split WAL writes at sector boundaries, and pad with partial frames).

namespace phivault::store {
namespace {

using crypto::Aead;

constexpr int64_t kP = kPageSize;
constexpr size_t kSealLen = kPageSize - kReservedBytes;          // encrypted content
constexpr size_t kTrailerOff = kPageSize - Aead::kOverhead;      // nonce || tag
constexpr int64_t kWalHeader = 32;
constexpr int64_t kFrameHeader = 24;
constexpr int64_t kFrameSize = kFrameHeader + kP;
constexpr int64_t kFirstBody = kWalHeader + kFrameHeader;
static_assert(kReservedBytes >= static_cast<int>(Aead::kOverhead));

struct VfsState {
  sqlite3_vfs vfs{};
  sqlite3_vfs* base = nullptr;
  std::shared_ptr<const Aead> aead;
  std::string name;
};

enum class Kind { kDb, kWal };

// SQLite allocates vfs.szOsFile bytes per open file and hands them to xOpen;
// the unix VFS's own file object lives right after ours in that block.
struct EncFile {
  sqlite3_file base;  // must be first: SQLite sees only this
  sqlite3_file* real;
  const VfsState* state;
  Kind kind;
  const char* path;  // owned by SQLite, valid until xClose
  // The database file's base name ("vault.db", also for its WAL), bound into
  // every page's AAD so a page cannot move between two databases that share
  // the storage key (vault.db and accounts.db).
  char tag[64];
  size_t tag_len;
  uint8_t* scratch;
  size_t scratch_cap;
  // A WAL frame header SQLite wrote that is not on disk yet. SQLite writes
  // every frame as two calls, the 24-byte header and then the body; holding
  // the header until its body arrives makes that one pwrite instead of two.
  // Any other call on the file writes it out first, so nothing ever sees
  // the file without it. Only a header written right after another write is
  // held: that is walWriteOneFrame, whose body always follows. The
  // header-only rewrites of walRewriteChecksums each follow a read of their
  // frame and go out at once, so the last write of a commit is never held,
  // whatever the synchronous setting (a held header lost in a crash after
  // the wal-index published its frame would cut a committed transaction).
  uint8_t pending_header[kFrameHeader];
  int64_t pending_offset = -1;  // -1: none
  bool last_call_was_write = false;
};
constexpr size_t kRealOffset = (sizeof(EncFile) + 15) & ~size_t{15};

// Temp databases, journals, sorter spill, etc.: kept in memory only.
struct MemFile {
  sqlite3_file base;
  uint8_t* data;
  size_t size;
  size_t cap;
};

VfsState* StateOf(sqlite3_vfs* vfs) { return static_cast<VfsState*>(vfs->pAppData); }
sqlite3_vfs* Base(sqlite3_vfs* vfs) { return StateOf(vfs)->base; }

// ---------- unit geometry ----------

// Start of the encryption unit containing byte x, or -1 for plaintext bytes.
int64_t UnitStart(Kind k, int64_t x) {
  if (k == Kind::kDb) return x / kP * kP;
  if (x < kWalHeader) return -1;
  const int64_t within = (x - kWalHeader) % kFrameSize;
  if (within < kFrameHeader) return -1;
  return x - within + kFrameHeader;
}

// First unit start at or after x.
int64_t NextUnit(Kind k, int64_t x) {
  if (k == Kind::kDb) return (x + kP - 1) / kP * kP;
  if (x <= kFirstBody) return kFirstBody;
  return kFirstBody + (x - kFirstBody + kFrameSize - 1) / kFrameSize * kFrameSize;
}

int64_t UnitStride(Kind k) { return k == Kind::kDb ? kP : kFrameSize; }

// 1-based page number (db) or 0-based frame index (wal).
uint64_t UnitIndex(Kind k, int64_t start) {
  return k == Kind::kDb ? static_cast<uint64_t>(start / kP) + 1 : static_cast<uint64_t>((start - kFirstBody) / kFrameSize);
}

// AAD = role || file tag length (1 byte) || file tag || 8-byte big-endian index.
constexpr size_t kAadMax = 3 + 1 + sizeof(EncFile::tag) + 8;
std::string_view MakeAad(const EncFile* f, Kind k, uint64_t index, char (&buf)[kAadMax]) {
  size_t n = 0;
  if (k == Kind::kDb) {
    buf[n++] = 'd';
    buf[n++] = 'b';
  } else {
    buf[n++] = 'w';
    buf[n++] = 'a';
    buf[n++] = 'l';
  }
  buf[n++] = static_cast<char>(f->tag_len);
  std::memcpy(buf + n, f->tag, f->tag_len);
  n += f->tag_len;
  for (int i = 7; i >= 0; --i) buf[n++] = static_cast<char>(index >> (8 * i));
  return {buf, n};
}

bool EnsureScratch(EncFile* f, size_t n) {
  if (f->scratch_cap >= n) return true;
  auto* p = static_cast<uint8_t*>(sqlite3_malloc64(n));
  if (p == nullptr) return false;
  if (f->scratch) {
    SecureWipe(f->scratch, f->scratch_cap);
    sqlite3_free(f->scratch);
  }
  f->scratch = p;
  f->scratch_cap = n;
  return true;
}

// ---------- encrypted file methods ----------

EncFile* Enc(sqlite3_file* f) { return reinterpret_cast<EncFile*>(f); }

int FlushPendingHeader(EncFile* f) {
  f->last_call_was_write = false;
  if (f->pending_offset < 0) return SQLITE_OK;
  const int64_t off = f->pending_offset;
  f->pending_offset = -1;
  return f->real->pMethods->xWrite(f->real, f->pending_header, static_cast<int>(kFrameHeader), off);
}

// The frame header of WAL frame i starts at 32 + i * (24 + P).
bool IsFrameHeaderWrite(const EncFile* f, int amt, int64_t off) {
  return f->kind == Kind::kWal && amt == kFrameHeader && off >= kWalHeader && (off - kWalHeader) % kFrameSize == 0;
}

int EncClose(sqlite3_file* file) {
  EncFile* f = Enc(file);
  int rc = SQLITE_OK;
  if (f->real->pMethods) {
    rc = FlushPendingHeader(f);
    const int closed = f->real->pMethods->xClose(f->real);
    if (rc == SQLITE_OK) rc = closed;
  }
  if (f->scratch) {
    SecureWipe(f->scratch, f->scratch_cap);  // may hold decrypted pages
    sqlite3_free(f->scratch);
  }
  f->scratch = nullptr;
  f->scratch_cap = 0;
  return rc;
}

int EncRead(sqlite3_file* file, void* out, int amt, sqlite3_int64 off) {
  EncFile* f = Enc(file);
  if (amt <= 0) return SQLITE_OK;
  if (off < 0) return SQLITE_IOERR_READ;
  int rc = FlushPendingHeader(f);
  if (rc != SQLITE_OK) return rc;
  sqlite3_int64 fsize = 0;
  rc = f->real->pMethods->xFileSize(f->real, &fsize);
  if (rc != SQLITE_OK) return rc;

  // Widen to whole units.
  int64_t lo = off;
  int64_t hi = off + amt;
  if (int64_t s = UnitStart(f->kind, lo); s >= 0) lo = s;
  if (int64_t s = UnitStart(f->kind, hi - 1); s >= 0) hi = s + kP;
  const size_t n = static_cast<size_t>(hi - lo);
  uint8_t* buf;
  if (lo == off && n == static_cast<size_t>(amt)) {
    buf = static_cast<uint8_t*>(out);  // the common whole-page read: no copy
  } else {
    if (!EnsureScratch(f, n)) return SQLITE_IOERR_NOMEM;
    buf = f->scratch;
  }
  // The unix VFS zero-fills whatever lies past the end of the file.
  rc = f->real->pMethods->xRead(f->real, buf, static_cast<int>(n), lo);
  if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) return rc;

  for (int64_t u = NextUnit(f->kind, lo); u + kP <= hi; u += UnitStride(f->kind)) {
    uint8_t* page = buf + (u - lo);
    if (u + kP > fsize) {
      // Missing or torn (partly written) unit: cannot be authenticated, so
      // it reads as absent, exactly as SQLite expects past end-of-file.
      std::memset(page, 0, kP);
      continue;
    }
    char aad_buf[kAadMax];
    const uint64_t index = UnitIndex(f->kind, u);
    Status s = f->state->aead->OpenInPlace(page, kSealLen, MakeAad(f, f->kind, index, aad_buf), page + kTrailerOff);
    // The 4 bytes between content and trailer are written as zero and not
    // covered by the tag; insisting on zero makes every byte of a unit checked.
    static constexpr uint8_t kZero[kTrailerOff - kSealLen] = {};
    if (s.ok() && std::memcmp(page + kSealLen, kZero, sizeof kZero) != 0) s = DataLoss("reserved bytes");
    if (s.ok()) {
      std::memset(page + kSealLen, 0, kReservedBytes);  // SQLite never reads them; hand back zeros
      continue;
    }
    std::memset(page, 0, kP);
    // A frame read together with its header is WAL recovery scanning the log:
    // a torn last frame after power loss looks exactly like this, and zeros
    // make SQLite's checksum chain stop the recovery there. A bare body read
    // is SQLite fetching a page it has already indexed: zeros would be served
    // as content, so that is an error like in the main database.
    const bool recovery_scan = f->kind == Kind::kWal && off <= u - kFrameHeader;
    if (recovery_scan) {
      log::Warn("encrypted_vfs_wal_frame_rejected",
                {{"file", f->path}, {"frame", std::to_string(index)},
                 {"effect", "WAL recovery stops at this frame; later frames are ignored"}});
      continue;
    }
    if (buf != out) SecureWipe(buf, n);
    std::memset(out, 0, static_cast<size_t>(amt));
    log::Error("encrypted_vfs_page_auth_failed",
               {{"file", f->path}, {f->kind == Kind::kDb ? "page" : "frame", std::to_string(index)},
                {"action", "the file was modified or another storage key is in use; restore from backup"}});
    return SQLITE_IOERR_DATA;
  }
  if (buf != out) std::memcpy(out, buf + (off - lo), static_cast<size_t>(amt));
  return off + amt > fsize ? SQLITE_IOERR_SHORT_READ : SQLITE_OK;
}

int RefuseWrite(const EncFile* f, const char* reason) {
  log::Error("encrypted_vfs_write_refused", {{"file", f->path}, {"reason", reason}});
  return SQLITE_IOERR_WRITE;
}

int EncWrite(sqlite3_file* file, const void* in, int amt, sqlite3_int64 off) {
  EncFile* f = Enc(file);
  if (amt <= 0) return SQLITE_OK;
  if (off < 0) return SQLITE_IOERR_WRITE;
  const auto* src = static_cast<const uint8_t*>(in);
  if (f->kind == Kind::kDb) {
    if (off % kP != 0 || amt % kP != 0) return RefuseWrite(f, "write is not page aligned; page_size must be 4096");
    if (off == 0) {
      // Page 1 declares the page size (bytes 16-17, big-endian) and the
      // reserved bytes per page (byte 20). Refusing here keeps the trailers
      // from ever overwriting data of a database that was not prepared.
      const int page_size = (src[16] << 8) | src[17];
      if (page_size != kPageSize || src[20] < kReservedBytes) {
        return RefuseWrite(f, "database was not prepared with PrepareEncryptedDatabase (page size or reserve)");
      }
    }
  } else {
    if (IsFrameHeaderWrite(f, amt, off) && f->last_call_was_write) {
      if (int rc = FlushPendingHeader(f); rc != SQLITE_OK) return rc;
      std::memcpy(f->pending_header, src, kFrameHeader);
      f->pending_offset = off;
      f->last_call_was_write = true;
      return SQLITE_OK;
    }
    const int64_t s = UnitStart(f->kind, off);
    const int64_t e = UnitStart(f->kind, off + amt - 1);
    if ((s >= 0 && s != off) || (e >= 0 && e + kP != off + amt)) {
      return RefuseWrite(f, "WAL write covers part of a frame body");
    }
  }
  // The body right after a held header goes out with it.
  const bool with_header = f->pending_offset >= 0 && off == f->pending_offset + kFrameHeader;
  if (!with_header) {
    if (int rc = FlushPendingHeader(f); rc != SQLITE_OK) return rc;
  }
  const size_t lead = with_header ? static_cast<size_t>(kFrameHeader) : 0;
  // Never modify the caller's buffer: it is SQLite's page cache.
  if (!EnsureScratch(f, lead + static_cast<size_t>(amt))) return SQLITE_IOERR_NOMEM;
  if (with_header) std::memcpy(f->scratch, f->pending_header, lead);
  uint8_t* buf = f->scratch + lead;
  std::memcpy(buf, src, static_cast<size_t>(amt));
  const int64_t hi = off + amt;
  for (int64_t u = NextUnit(f->kind, off); u + kP <= hi; u += UnitStride(f->kind)) {
    uint8_t* page = buf + (u - off);
    std::memset(page + kSealLen, 0, kReservedBytes);  // reserved bytes may hold stale heap contents
    char aad_buf[kAadMax];
    Status s = f->state->aead->SealInPlace(page, kSealLen, MakeAad(f, f->kind, UnitIndex(f->kind, u), aad_buf),
                                           page + kTrailerOff);
    if (!s.ok()) return SQLITE_IOERR_WRITE;
  }
  f->pending_offset = -1;  // if it was held, it is in this write
  const int rc =
      f->real->pMethods->xWrite(f->real, f->scratch, static_cast<int>(lead) + amt, off - static_cast<int64_t>(lead));
  f->last_call_was_write = rc == SQLITE_OK;
  return rc;
}

// The unix VFS's method, after writing out a held frame header: every call
// on the file other than the body write that takes it along.
template <auto Method, typename... Args>
int FlushThen(sqlite3_file* file, Args... args) {
  EncFile* f = Enc(file);
  if (int rc = FlushPendingHeader(f); rc != SQLITE_OK) return rc;
  return (f->real->pMethods->*Method)(f->real, args...);
}
constexpr auto EncTruncate = FlushThen<&sqlite3_io_methods::xTruncate, sqlite3_int64>;
constexpr auto EncSync = FlushThen<&sqlite3_io_methods::xSync, int>;
constexpr auto EncFileSize = FlushThen<&sqlite3_io_methods::xFileSize, sqlite3_int64*>;
constexpr auto EncLock = FlushThen<&sqlite3_io_methods::xLock, int>;
constexpr auto EncUnlock = FlushThen<&sqlite3_io_methods::xUnlock, int>;
int EncCheckReservedLock(sqlite3_file* f, int* out) {
  return Enc(f)->real->pMethods->xCheckReservedLock(Enc(f)->real, out);
}

int EncFileControl(sqlite3_file* file, int op, void* arg) {
  EncFile* f = Enc(file);
  if (int rc = FlushPendingHeader(f); rc != SQLITE_OK) return rc;
  switch (op) {
    case SQLITE_FCNTL_MMAP_SIZE:
      // Memory mapping would show SQLite ciphertext; never enable it.
      return SQLITE_NOTFOUND;
    case SQLITE_FCNTL_CHUNK_SIZE:
    case SQLITE_FCNTL_SIZE_HINT:
      // Both let the unix VFS grow the file with zero pages, which cannot be
      // authenticated. They are only performance hints, so ignore them.
      return SQLITE_OK;
    case SQLITE_FCNTL_VFSNAME: {
      char* inner = nullptr;
      int rc = f->real->pMethods->xFileControl(f->real, op, &inner);
      *static_cast<char**>(arg) =
          sqlite3_mprintf("%s/%s", f->state->name.c_str(), rc == SQLITE_OK && inner ? inner : "unix");
      sqlite3_free(inner);
      return SQLITE_OK;
    }
    default:
      return f->real->pMethods->xFileControl(f->real, op, arg);
  }
}

int EncSectorSize(sqlite3_file* f) { return Enc(f)->real->pMethods->xSectorSize(Enc(f)->real); }

int EncDeviceCharacteristics(sqlite3_file* f) {
  int caps = Enc(f)->real->pMethods->xDeviceCharacteristics(Enc(f)->real);
  // Powersafe overwrite stops SQLite from splitting WAL writes at sector
  // boundaries (which would cut a frame body in two). Atomic-write claims are
  // dropped: they describe the raw file, and batch-atomic mode bypasses the
  // journal in ways this VFS has not been checked against.
  caps |= SQLITE_IOCAP_POWERSAFE_OVERWRITE;
  caps &= ~(SQLITE_IOCAP_ATOMIC | SQLITE_IOCAP_ATOMIC512 | SQLITE_IOCAP_ATOMIC1K | SQLITE_IOCAP_ATOMIC2K |
            SQLITE_IOCAP_ATOMIC4K | SQLITE_IOCAP_ATOMIC8K | SQLITE_IOCAP_ATOMIC16K | SQLITE_IOCAP_ATOMIC32K |
            SQLITE_IOCAP_ATOMIC64K | SQLITE_IOCAP_BATCH_ATOMIC);
  return caps;
}

// The -shm wal-index holds page numbers, salts and checksums only; it is
// shared memory between connections, so it passes straight through.
int EncShmMap(sqlite3_file* f, int pg, int pgsz, int extend, void volatile** pp) {
  return Enc(f)->real->pMethods->xShmMap(Enc(f)->real, pg, pgsz, extend, pp);
}
int EncShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Enc(f)->real->pMethods->xShmLock(Enc(f)->real, offset, n, flags);
}
void EncShmBarrier(sqlite3_file* f) { Enc(f)->real->pMethods->xShmBarrier(Enc(f)->real); }
int EncShmUnmap(sqlite3_file* f, int del) { return Enc(f)->real->pMethods->xShmUnmap(Enc(f)->real, del); }

// iVersion 2: shared memory (WAL) yes, xFetch/xUnfetch (mmap) no.
const sqlite3_io_methods kEncMethods = {
    2,           EncClose,      EncRead,         EncWrite,       EncTruncate,
    EncSync,     EncFileSize,   EncLock,         EncUnlock,      EncCheckReservedLock,
    EncFileControl, EncSectorSize, EncDeviceCharacteristics, EncShmMap, EncShmLock,
    EncShmBarrier,  EncShmUnmap,   nullptr,         nullptr,
};

// ---------- in-memory file methods ----------

MemFile* Mem(sqlite3_file* f) { return reinterpret_cast<MemFile*>(f); }

void MemRelease(MemFile* m) {
  if (m->data) {
    SecureWipe(m->data, m->cap);
    sqlite3_free(m->data);
  }
  m->data = nullptr;
  m->size = m->cap = 0;
}

int MemClose(sqlite3_file* f) {
  MemRelease(Mem(f));
  return SQLITE_OK;
}

int MemRead(sqlite3_file* f, void* out, int amt, sqlite3_int64 off) {
  MemFile* m = Mem(f);
  if (amt < 0 || off < 0) return SQLITE_IOERR_READ;
  const size_t n = static_cast<size_t>(amt);
  const size_t o = static_cast<size_t>(off);
  size_t avail = o < m->size ? m->size - o : 0;
  if (avail > n) avail = n;
  if (avail) std::memcpy(out, m->data + o, avail);
  if (avail < n) {
    std::memset(static_cast<uint8_t*>(out) + avail, 0, n - avail);
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

int MemWrite(sqlite3_file* f, const void* in, int amt, sqlite3_int64 off) {
  MemFile* m = Mem(f);
  if (amt < 0 || off < 0) return SQLITE_IOERR_WRITE;
  const uint64_t end = static_cast<uint64_t>(off) + static_cast<uint64_t>(amt);
  if (end > m->cap) {
    // Grow by copying rather than sqlite3_realloc so the old block (which may
    // hold plaintext) can be wiped before it is freed.
    uint64_t cap = m->cap ? m->cap : 64 * 1024;
    while (cap < end) cap *= 2;
    auto* p = static_cast<uint8_t*>(sqlite3_malloc64(cap));
    if (p == nullptr) return SQLITE_IOERR_NOMEM;
    if (m->size) std::memcpy(p, m->data, m->size);
    std::memset(p + m->size, 0, cap - m->size);
    if (m->data) {
      SecureWipe(m->data, m->cap);
      sqlite3_free(m->data);
    }
    m->data = p;
    m->cap = static_cast<size_t>(cap);
  }
  if (static_cast<uint64_t>(off) > m->size) std::memset(m->data + m->size, 0, static_cast<size_t>(off) - m->size);
  if (amt) std::memcpy(m->data + off, in, static_cast<size_t>(amt));
  if (end > m->size) m->size = static_cast<size_t>(end);
  return SQLITE_OK;
}

int MemTruncate(sqlite3_file* f, sqlite3_int64 size) {
  MemFile* m = Mem(f);
  if (size < 0) return SQLITE_IOERR_TRUNCATE;
  if (static_cast<uint64_t>(size) < m->size) {
    SecureWipe(m->data + size, m->size - static_cast<size_t>(size));
    m->size = static_cast<size_t>(size);
  }
  return SQLITE_OK;
}

int MemSync(sqlite3_file*, int) { return SQLITE_OK; }
int MemFileSize(sqlite3_file* f, sqlite3_int64* size) {
  *size = static_cast<sqlite3_int64>(Mem(f)->size);
  return SQLITE_OK;
}
int MemLock(sqlite3_file*, int) { return SQLITE_OK; }
int MemUnlock(sqlite3_file*, int) { return SQLITE_OK; }
int MemCheckReservedLock(sqlite3_file*, int* out) {
  *out = 0;
  return SQLITE_OK;
}
int MemFileControl(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
int MemSectorSize(sqlite3_file*) { return 4096; }
int MemDeviceCharacteristics(sqlite3_file*) { return SQLITE_IOCAP_POWERSAFE_OVERWRITE | SQLITE_IOCAP_SAFE_APPEND; }

const sqlite3_io_methods kMemMethods = {
    1,       MemClose,    MemRead,   MemWrite,  MemTruncate,          MemSync,
    MemFileSize, MemLock, MemUnlock, MemCheckReservedLock, MemFileControl, MemSectorSize,
    MemDeviceCharacteristics,
};

// ---------- VFS methods ----------

int VfsOpen(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  VfsState* st = StateOf(vfs);
  if ((flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) == 0) {
    // Everything else may hold plaintext and need not survive a crash.
    auto* m = new (file) MemFile{};
    m->base.pMethods = &kMemMethods;
    if (out_flags) *out_flags = flags;
    return SQLITE_OK;
  }
  auto* f = new (file) EncFile{};
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  std::memset(f->real, 0, static_cast<size_t>(st->base->szOsFile));
  f->state = st;
  f->kind = (flags & SQLITE_OPEN_MAIN_DB) ? Kind::kDb : Kind::kWal;
  f->path = name ? name : "";
  {
    std::string_view base(f->path);
    if (auto slash = base.rfind('/'); slash != std::string_view::npos) base.remove_prefix(slash + 1);
    constexpr std::string_view kWalSuffix = "-wal";
    if (f->kind == Kind::kWal && base.size() > kWalSuffix.size() &&
        base.substr(base.size() - kWalSuffix.size()) == kWalSuffix) {
      base.remove_suffix(kWalSuffix.size());
    }
    f->tag_len = std::min(base.size(), sizeof(f->tag));
    std::memcpy(f->tag, base.data(), f->tag_len);
  }
  int rc = st->base->xOpen(st->base, name, f->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    // SQLite calls xClose only if pMethods is set; release the inner file here.
    if (f->real->pMethods) f->real->pMethods->xClose(f->real);
    f->base.pMethods = nullptr;
    return rc;
  }
  f->base.pMethods = &kEncMethods;
  return SQLITE_OK;
}

int VfsDelete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  int rc = Base(vfs)->xDelete(Base(vfs), name, sync_dir);
  // Journals live in memory, so SQLite deleting one finds nothing on disk.
  return rc == SQLITE_IOERR_DELETE_NOENT ? SQLITE_OK : rc;
}
int VfsAccess(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return Base(vfs)->xAccess(Base(vfs), name, flags, out);
}
int VfsFullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return Base(vfs)->xFullPathname(Base(vfs), name, n, out);
}
void* VfsDlOpen(sqlite3_vfs* vfs, const char* name) { return Base(vfs)->xDlOpen(Base(vfs), name); }
void VfsDlError(sqlite3_vfs* vfs, int n, char* msg) { Base(vfs)->xDlError(Base(vfs), n, msg); }
void (*VfsDlSym(sqlite3_vfs* vfs, void* h, const char* sym))(void) { return Base(vfs)->xDlSym(Base(vfs), h, sym); }
void VfsDlClose(sqlite3_vfs* vfs, void* h) { Base(vfs)->xDlClose(Base(vfs), h); }
int VfsRandomness(sqlite3_vfs* vfs, int n, char* out) { return Base(vfs)->xRandomness(Base(vfs), n, out); }
int VfsSleep(sqlite3_vfs* vfs, int us) { return Base(vfs)->xSleep(Base(vfs), us); }
int VfsCurrentTime(sqlite3_vfs* vfs, double* t) { return Base(vfs)->xCurrentTime(Base(vfs), t); }
int VfsGetLastError(sqlite3_vfs* vfs, int n, char* out) {
  return Base(vfs)->xGetLastError ? Base(vfs)->xGetLastError(Base(vfs), n, out) : 0;
}
int VfsCurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* t) {
  return Base(vfs)->xCurrentTimeInt64(Base(vfs), t);
}
int VfsSetSystemCall(sqlite3_vfs* vfs, const char* name, sqlite3_syscall_ptr p) {
  return Base(vfs)->xSetSystemCall(Base(vfs), name, p);
}
sqlite3_syscall_ptr VfsGetSystemCall(sqlite3_vfs* vfs, const char* name) {
  return Base(vfs)->xGetSystemCall(Base(vfs), name);
}
const char* VfsNextSystemCall(sqlite3_vfs* vfs, const char* name) {
  return Base(vfs)->xNextSystemCall(Base(vfs), name);
}

// Every VfsState ever registered. Never freed: connections opened before a
// re-registration still point at the old one.
std::mutex g_registry_mu;
std::vector<VfsState*>& Registry() {
  static auto* v = new std::vector<VfsState*>();
  return *v;
}

Status QueryInt(sqlite3* db, const char* sql, int64_t* out) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      *out = sqlite3_column_int64(stmt, 0);
      rc = SQLITE_OK;
    }
  }
  sqlite3_finalize(stmt);
  if (rc == SQLITE_OK) return Status::Ok();
  if (sqlite3_extended_errcode(db) == SQLITE_IOERR_DATA) {
    // Page 1 with a wrong key, or any schema page of a modified file (the
    // schema spans several pages once the search index exists).
    return DataLoss(
        "database integrity check failed while reading its schema: wrong storage key, or the file was modified "
        "outside phivault; restore it from a backup");
  }
  return Internal(std::string("preparing encrypted database: ") + sqlite3_errmsg(db));
}

}  // namespace

Status RegisterEncryptedVfs(const std::string& vfs_name, std::shared_ptr<const crypto::Aead> page_aead) {
  if (vfs_name.empty()) return InvalidArgument("VFS name must not be empty");
  if (!page_aead) return InvalidArgument("encrypted VFS needs a page cipher");
  // Before the first initialization only (later calls fail harmlessly):
  // memory statistics take a global mutex around every SQLite allocation,
  // which the writer thread makes hundreds of per write, and nothing reads
  // them.
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  if (sqlite3_initialize() != SQLITE_OK) return Internal("sqlite3_initialize failed");
  sqlite3_vfs* base = sqlite3_vfs_find("unix");
  if (base == nullptr) return Internal("SQLite has no unix VFS");
  if (base->iVersion < 3) return Internal("SQLite unix VFS is too old");

  std::lock_guard<std::mutex> lock(g_registry_mu);
  sqlite3_vfs* existing = sqlite3_vfs_find(vfs_name.c_str());
  if (existing != nullptr && existing->xOpen != VfsOpen) {
    return InvalidArgument("VFS name " + vfs_name + " is taken by a VFS that is not an encrypted VFS");
  }
  auto* st = new VfsState();
  st->base = base;
  st->aead = std::move(page_aead);
  st->name = vfs_name;
  sqlite3_vfs& v = st->vfs;
  v.iVersion = 3;
  v.szOsFile = static_cast<int>(std::max(kRealOffset + static_cast<size_t>(base->szOsFile), sizeof(MemFile)));
  v.mxPathname = base->mxPathname;
  v.zName = st->name.c_str();
  v.pAppData = st;
  v.xOpen = VfsOpen;
  v.xDelete = VfsDelete;
  v.xAccess = VfsAccess;
  v.xFullPathname = VfsFullPathname;
  v.xDlOpen = VfsDlOpen;
  v.xDlError = VfsDlError;
  v.xDlSym = VfsDlSym;
  v.xDlClose = VfsDlClose;
  v.xRandomness = VfsRandomness;
  v.xSleep = VfsSleep;
  v.xCurrentTime = VfsCurrentTime;
  v.xGetLastError = VfsGetLastError;
  v.xCurrentTimeInt64 = VfsCurrentTimeInt64;
  v.xSetSystemCall = VfsSetSystemCall;
  v.xGetSystemCall = VfsGetSystemCall;
  v.xNextSystemCall = VfsNextSystemCall;
  if (existing != nullptr) sqlite3_vfs_unregister(existing);
  if (sqlite3_vfs_register(&st->vfs, /*makeDflt=*/0) != SQLITE_OK) {
    delete st;
    return Internal("sqlite3_vfs_register failed");
  }
  Registry().push_back(st);
  return Status::Ok();
}

Status PrepareEncryptedDatabase(sqlite3* db) {
  if (db == nullptr) return InvalidArgument("no database connection");
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || file == nullptr ||
      file->pMethods != &kEncMethods) {
    return InvalidArgument("database is not opened through an encrypted VFS");
  }
  int64_t pages = 0;
  PV_RETURN_IF_ERROR(QueryInt(db, "PRAGMA main.page_count", &pages));
  if (pages == 0) {
    // Brand new: both settings take effect when the first page is written.
    char* err = nullptr;
    const std::string sql = "PRAGMA main.page_size=" + std::to_string(kPageSize);
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      Status s = Internal(std::string("setting page size: ") + (err ? err : "?"));
      sqlite3_free(err);
      return s;
    }
    int reserve = kReservedBytes;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve) != SQLITE_OK) {
      return Internal("SQLite refused SQLITE_FCNTL_RESERVE_BYTES");
    }
  }
  int reserve = -1;  // -1: query only
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &reserve) != SQLITE_OK) {
    return Internal("SQLite refused SQLITE_FCNTL_RESERVE_BYTES");
  }
  int64_t page_size = 0;
  PV_RETURN_IF_ERROR(QueryInt(db, "PRAGMA main.page_size", &page_size));
  if (reserve != kReservedBytes || page_size != kPageSize) {
    return InvalidArgument("database has page size " + std::to_string(page_size) + " and " +
                           std::to_string(reserve) + " reserved bytes per page; the encrypted store needs " +
                           std::to_string(kPageSize) + " and " + std::to_string(kReservedBytes));
  }
  return Status::Ok();
}

}  // namespace phivault::store
