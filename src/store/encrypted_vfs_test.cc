#include "store/encrypted_vfs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/secure_bytes.h"
#include "crypto/aead.h"

namespace phivault::store {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMarker = "SENTINEL-PLAINTEXT-12345";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Occurrences of the marker in every regular file under `dir`.
int CountMarker(const fs::path& dir, std::vector<std::string>* scanned = nullptr) {
  int hits = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    if (scanned) scanned->push_back(e.path().filename().string());
    const std::string data = ReadAll(e.path());
    for (size_t p = data.find(kMarker); p != std::string::npos; p = data.find(kMarker, p + 1)) ++hits;
  }
  return hits;
}

std::shared_ptr<const crypto::Aead> NewAead() {
  auto a = crypto::Aead::New(SecureBytes::Random(32));
  EXPECT_TRUE(a.ok());
  return std::shared_ptr<const crypto::Aead>(std::move(a).value());
}

// Row i's body: the marker, repeated filler, and for every 10th row a blob
// large enough to need overflow pages.
std::string Body(int i) {
  std::string b = std::string(kMarker) + " row " + std::to_string(i) + " ";
  const size_t len = i % 10 == 0 ? 9000 : 300;
  while (b.size() < len) b += std::string(kMarker) + ":" + std::to_string(i * 7919 % 1000) + ";";
  return b;
}

class EncryptedVfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* base = std::getenv("PHIVAULT_TEST_TMP");
    fs::path root = base ? fs::path(base) : fs::temp_directory_path();
    fs::create_directories(root);
    std::string tmpl = (root / "vfs-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "db");
    fs::create_directories(dir_ / "tmp");
    // Any temp file the unix VFS itself created would land here.
    ::setenv("SQLITE_TMPDIR", (dir_ / "tmp").c_str(), 1);
    static int counter = 0;
    vfs_ = "pv-test-" + std::to_string(++counter);
    aead_ = NewAead();
    ASSERT_TRUE(RegisterEncryptedVfs(vfs_, aead_).ok());
    db_path_ = (dir_ / "db" / "vault.db").string();
  }
  void TearDown() override {
    ::unsetenv("SQLITE_TMPDIR");
    fs::remove_all(dir_);
  }

  // Opens through the VFS and prepares; fails the test on error.
  sqlite3* Open(const std::string& path, const std::string& vfs, bool wal = true) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs.c_str());
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db);
    Status s = PrepareEncryptedDatabase(db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    sqlite3_busy_timeout(db, 10000);
    if (wal) {
      EXPECT_EQ(QueryText(db, "PRAGMA journal_mode=WAL"), "wal");
      Exec(db, "PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;");
    }
    return db;
  }
  sqlite3* Open() { return Open(db_path_, vfs_); }

  static void Exec(sqlite3* db, const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }
  static std::string QueryText(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return out;
  }
  static int64_t QueryInt(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
  }
  // Runs a statement to completion; returns the extended result code.
  static int RunAll(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
    if (rc != SQLITE_OK) return sqlite3_extended_errcode(db);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
  }

  static void InsertRows(sqlite3* db, int from, int to) {
    Exec(db, "BEGIN");
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "INSERT INTO t(id, body) VALUES(?, ?)", -1, &st, nullptr), SQLITE_OK);
    for (int i = from; i < to; ++i) {
      const std::string b = Body(i);
      sqlite3_bind_int(st, 1, i);
      sqlite3_bind_text(st, 2, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT);
      ASSERT_EQ(sqlite3_step(st), SQLITE_DONE) << sqlite3_errmsg(db);
      sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    Exec(db, "COMMIT");
  }

  // Creates the table with `n` rows and closes (the WAL is checkpointed away).
  void CreateDb(int n) {
    sqlite3* db = Open();
    Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL); CREATE INDEX t_body ON t(body);");
    InsertRows(db, 0, n);
    ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
  }

  // Opens (no create) and prepares; returns kDataLoss when page 1 does not
  // authenticate, whether SQLite notices at open (it reads the header there)
  // or PrepareEncryptedDatabase does.
  static StatusCode OpenAndPrepareCode(const std::string& path, const std::string& vfs) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, vfs.c_str());
    StatusCode code;
    if (rc != SQLITE_OK) {
      code = sqlite3_extended_errcode(db) == SQLITE_IOERR_DATA ? StatusCode::kDataLoss : StatusCode::kInternal;
    } else {
      code = PrepareEncryptedDatabase(db).code();
      if (code == StatusCode::kDataLoss) {
        EXPECT_EQ(RunAll(db, "SELECT * FROM t"), SQLITE_IOERR_DATA);
      }
    }
    sqlite3_close(db);
    return code;
  }

  static void VerifyRows(sqlite3* db, int from, int to) {
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT id, body FROM t WHERE id >= ? AND id < ? ORDER BY id", -1, &st, nullptr),
              SQLITE_OK);
    sqlite3_bind_int(st, 1, from);
    sqlite3_bind_int(st, 2, to);
    int expect = from;
    while (sqlite3_step(st) == SQLITE_ROW) {
      ASSERT_EQ(sqlite3_column_int(st, 0), expect);
      ASSERT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 1))), Body(expect));
      ++expect;
    }
    sqlite3_finalize(st);
    EXPECT_EQ(expect, to);
  }

  fs::path dir_;
  std::string vfs_;
  std::string db_path_;
  std::shared_ptr<const crypto::Aead> aead_;
};

TEST_F(EncryptedVfsTest, RoundTripLeavesNoPlaintextOnDisk) {
  sqlite3* db = Open();
  Exec(db, "PRAGMA wal_autocheckpoint=0");  // keep everything in the WAL while we scan it
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL); CREATE INDEX t_body ON t(body);");
  InsertRows(db, 0, 600);

  // A large sort with a tiny cache spills to sorter temp files; with temp_store
  // MEMORY and FILE alike they must stay in memory.
  Exec(db, "PRAGMA cache_size=10");
  for (const char* ts : {"MEMORY", "FILE"}) {
    Exec(db, std::string("PRAGMA temp_store=") + ts);
    EXPECT_EQ(RunAll(db, "SELECT body, id FROM t ORDER BY substr(body, 20), length(body) DESC"), SQLITE_OK);
    Exec(db, "CREATE TEMP TABLE tt AS SELECT * FROM t; DROP TABLE tt;");
  }
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM t WHERE body LIKE '%SENTINEL-PLAINTEXT-12345%'"), 600);

  ASSERT_TRUE(fs::exists(db_path_ + "-wal"));
  ASSERT_TRUE(fs::exists(db_path_ + "-shm"));
  EXPECT_GT(fs::file_size(db_path_ + "-wal"), 600u * 300u);
  std::vector<std::string> scanned;
  EXPECT_EQ(CountMarker(dir_, &scanned), 0);
  EXPECT_EQ(scanned.size(), 3u) << "only db, -wal and -shm may exist";
  EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));

  // Checkpoint into the main file while open, scan again.
  EXPECT_EQ(QueryInt(db, "PRAGMA wal_checkpoint(TRUNCATE)"), 0);
  EXPECT_GT(fs::file_size(db_path_), 600u * 300u);
  EXPECT_EQ(CountMarker(dir_), 0);
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);

  const std::string raw = ReadAll(db_path_);
  EXPECT_EQ(raw.size() % kPageSize, 0u);
  EXPECT_NE(raw.substr(0, 16), std::string("SQLite format 3\0", 16));
  EXPECT_EQ(CountMarker(dir_), 0);

  db = Open();
  VerifyRows(db, 0, 600);
  EXPECT_EQ(QueryText(db, "PRAGMA integrity_check"), "ok");
  ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
}

TEST_F(EncryptedVfsTest, EveryTamperedPageIsADataError) {
  CreateDb(40);
  const std::string original = ReadAll(db_path_);
  const size_t pages = original.size() / kPageSize;
  ASSERT_GT(pages, 5u);
  // Page 1 is read by PrepareEncryptedDatabase.
  {
    std::string t = original;
    t[50] ^= 0x01;
    WriteAll(db_path_, t);
    EXPECT_EQ(OpenAndPrepareCode(db_path_, vfs_), StatusCode::kDataLoss);
  }
  for (size_t p = 1; p < pages; ++p) {
    // Content, the zero gap and the trailer are all covered.
    for (size_t within : {size_t{7}, size_t{kPageSize - 30}, size_t{kPageSize - 1}}) {
      std::string t = original;
      t[p * kPageSize + within] ^= 0x40;
      WriteAll(db_path_, t);
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open_v2(db_path_.c_str(), &db, SQLITE_OPEN_READWRITE, vfs_.c_str()), SQLITE_OK);
      ASSERT_TRUE(PrepareEncryptedDatabase(db).ok());
      // integrity_check visits every b-tree page, including overflow pages.
      const int rc = RunAll(db, "PRAGMA integrity_check");
      EXPECT_EQ(rc, SQLITE_IOERR_DATA) << "page " << p + 1 << " offset " << within;
      sqlite3_close(db);
    }
  }
  WriteAll(db_path_, original);
  sqlite3* db = Open();
  VerifyRows(db, 0, 40);
  sqlite3_close(db);
}

TEST_F(EncryptedVfsTest, SwappedPagesFail) {
  CreateDb(40);
  std::string t = ReadAll(db_path_);
  // Swap pages 2 and 3: each is validly sealed, but for another position.
  std::string p2 = t.substr(kPageSize, kPageSize);
  t.replace(kPageSize, kPageSize, t.substr(2 * kPageSize, kPageSize));
  t.replace(2 * kPageSize, kPageSize, p2);
  WriteAll(db_path_, t);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path_.c_str(), &db, SQLITE_OPEN_READWRITE, vfs_.c_str()), SQLITE_OK);
  ASSERT_TRUE(PrepareEncryptedDatabase(db).ok());
  EXPECT_EQ(RunAll(db, "PRAGMA integrity_check"), SQLITE_IOERR_DATA);
  sqlite3_close(db);
}

// vault.db and accounts.db share the storage key: a page copied from one into
// the other, at the same position, must not authenticate there.
TEST_F(EncryptedVfsTest, PageMovedBetweenDatabasesFails) {
  CreateDb(40);
  std::string other_path = (dir_ / "db" / "accounts.db").string();
  sqlite3* other = Open(other_path, vfs_);
  Exec(other, "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL); CREATE INDEX t_body ON t(body);");
  InsertRows(other, 0, 40);
  ASSERT_EQ(sqlite3_close(other), SQLITE_OK);
  std::string victim = ReadAll(other_path);
  std::string donor = ReadAll(db_path_);
  ASSERT_GE(victim.size(), 3u * kPageSize);
  ASSERT_GE(donor.size(), 3u * kPageSize);
  victim.replace(2 * kPageSize, kPageSize, donor.substr(2 * kPageSize, kPageSize));
  WriteAll(other_path, victim);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(other_path.c_str(), &db, SQLITE_OPEN_READWRITE, vfs_.c_str()), SQLITE_OK);
  ASSERT_TRUE(PrepareEncryptedDatabase(db).ok());
  EXPECT_EQ(RunAll(db, "PRAGMA integrity_check"), SQLITE_IOERR_DATA);
  sqlite3_close(db);
}

TEST_F(EncryptedVfsTest, WrongKeyCannotRead) {
  CreateDb(20);
  const std::string other = vfs_ + "-otherkey";
  ASSERT_TRUE(RegisterEncryptedVfs(other, NewAead()).ok());
  EXPECT_EQ(OpenAndPrepareCode(db_path_, other), StatusCode::kDataLoss);
  // Nor can plain SQLite.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path_.c_str(), &db, SQLITE_OPEN_READONLY, "unix"), SQLITE_OK);
  EXPECT_NE(RunAll(db, "SELECT * FROM t"), SQLITE_OK);
  sqlite3_close(db);
}

TEST_F(EncryptedVfsTest, ReRegisteringANameSwitchesKeyForNewConnections) {
  CreateDb(5);
  ASSERT_TRUE(RegisterEncryptedVfs(vfs_, NewAead()).ok());
  EXPECT_EQ(OpenAndPrepareCode(db_path_, vfs_), StatusCode::kDataLoss);
  ASSERT_TRUE(RegisterEncryptedVfs(vfs_, aead_).ok());
  sqlite3* db = Open();
  VerifyRows(db, 0, 5);
  sqlite3_close(db);
  EXPECT_EQ(RegisterEncryptedVfs("unix", aead_).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterEncryptedVfs("x", nullptr).code(), StatusCode::kInvalidArgument);
}

TEST_F(EncryptedVfsTest, UnpreparedDatabaseRefusesWrites) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs_.c_str()),
            SQLITE_OK);
  EXPECT_NE(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_extended_errcode(db), SQLITE_IOERR_WRITE);
  sqlite3_close(db);

  // A connection on another VFS is refused by PrepareEncryptedDatabase.
  ASSERT_EQ(sqlite3_open_v2((dir_ / "plain.db").c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix"),
            SQLITE_OK);
  EXPECT_EQ(PrepareEncryptedDatabase(db).code(), StatusCode::kInvalidArgument);
  sqlite3_close(db);
  EXPECT_EQ(PrepareEncryptedDatabase(nullptr).code(), StatusCode::kInvalidArgument);
}

TEST_F(EncryptedVfsTest, PrepareChecksExistingDatabases) {
  CreateDb(3);
  sqlite3* db = Open();  // Open() asserts Prepare succeeds on the existing file
  EXPECT_EQ(QueryInt(db, "PRAGMA page_size"), kPageSize);
  // VACUUM rebuilds through a temp database (in memory) and keeps the reserve.
  Exec(db, "DELETE FROM t WHERE id = 1; VACUUM;");
  sqlite3_close(db);
  db = Open();
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM t"), 2);
  EXPECT_EQ(QueryText(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

TEST_F(EncryptedVfsTest, RollbackJournalStaysInMemory) {
  sqlite3* db = Open(db_path_, vfs_, /*wal=*/false);
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  InsertRows(db, 0, 50);
  Exec(db, "BEGIN; UPDATE t SET body = body || 'changed';");
  // Mid-transaction: the journal holds the old plaintext pages, in memory.
  EXPECT_FALSE(fs::exists(db_path_ + "-journal"));
  EXPECT_EQ(CountMarker(dir_), 0);
  Exec(db, "ROLLBACK");
  VerifyRows(db, 0, 50);
  Exec(db, "CREATE TEMP TABLE tt AS SELECT * FROM t");
  EXPECT_EQ(QueryInt(db, "SELECT count(*) FROM tt"), 50);
  EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));
  std::vector<std::string> scanned;
  EXPECT_EQ(CountMarker(dir_, &scanned), 0);
  EXPECT_EQ(scanned.size(), 1u);
  sqlite3_close(db);
}

TEST_F(EncryptedVfsTest, ConcurrentReaderAndWriter) {
  {
    sqlite3* db = Open();
    Exec(db, "CREATE TABLE c(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    sqlite3_close(db);
  }
  sqlite3* writer = Open();
  sqlite3* reader = Open();
  constexpr int kRows = 300;
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::atomic<int> bad{0};
  std::thread r([&] {
    int64_t last = 0;
    while (!done.load()) {
      // One snapshot: count and sum must agree with rows 1..n all present.
      Exec(reader, "BEGIN");
      const int64_t n = QueryInt(reader, "SELECT count(*) FROM c");
      const int64_t sum = QueryInt(reader, "SELECT coalesce(sum(id), 0) FROM c");
      const int64_t markers = QueryInt(reader, "SELECT count(*) FROM c WHERE v LIKE 'SENTINEL-PLAINTEXT-12345%'");
      Exec(reader, "COMMIT");
      if (n < last || sum != n * (n + 1) / 2 || markers != n) bad++;
      last = n;
      reads++;
    }
  });
  for (int i = 1; i <= kRows; ++i) {
    const std::string sql = "INSERT INTO c(id, v) VALUES(" + std::to_string(i) + ", '" + Body(i) + "')";
    Exec(writer, sql);
    // Checkpoints while the reader runs also make the WAL restart and
    // overwrite old frames.
    if (i % 50 == 0) RunAll(writer, "PRAGMA wal_checkpoint(RESTART)");
  }
  done = true;
  r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(QueryInt(reader, "SELECT count(*) FROM c"), kRows);
  EXPECT_EQ(CountMarker(dir_), 0);
  sqlite3_close(reader);
  sqlite3_close(writer);
}

class LogCapture {
 public:
  explicit LogCapture(const fs::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    log::SetFd(fd_);
  }
  ~LogCapture() {
    log::SetFd(2);
    ::close(fd_);
  }
  std::string Text() const { return ReadAll(path_); }

 private:
  fs::path path_;
  int fd_;
};

// A copy of db + WAL taken while a writer is open (as after a crash or a
// power cut) recovers through decryption of the WAL.
// SQLite writes a WAL frame as its 24-byte header, then its body. The VFS
// holds the header and writes both at once; the header must still be on disk
// before anything can look at the file, and when no body follows.
TEST_F(EncryptedVfsTest, HeldWalFrameHeaderReachesTheFileBeforeAnythingLooks) {
  sqlite3_vfs* vfs = sqlite3_vfs_find(vfs_.c_str());
  ASSERT_NE(vfs, nullptr);
  const std::string wal_path = db_path_ + "-wal";
  WriteAll(db_path_, "");  // the unix VFS gives a WAL its database's mode
  auto* file = static_cast<sqlite3_file*>(sqlite3_malloc(vfs->szOsFile));
  ASSERT_NE(file, nullptr);
  std::memset(file, 0, static_cast<size_t>(vfs->szOsFile));
  int out_flags = 0;
  ASSERT_EQ(vfs->xOpen(vfs, wal_path.c_str(), file,
                       SQLITE_OPEN_WAL | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &out_flags),
            SQLITE_OK);
  const sqlite3_io_methods* io = file->pMethods;
  constexpr int64_t kFrame = 24 + kPageSize;
  const std::string wal_header(32, 'W');
  std::string frame_header(24, 'h');
  std::string page(kPageSize, 'p');
  std::fill(page.end() - kReservedBytes, page.end(), '\0');  // the VFS hands reserved bytes back as zeros
  ASSERT_EQ(io->xWrite(file, wal_header.data(), 32, 0), SQLITE_OK);

  // Header, then its body: one frame on disk, header in clear, body sealed.
  ASSERT_EQ(io->xWrite(file, frame_header.data(), 24, 32), SQLITE_OK);
  ASSERT_EQ(io->xWrite(file, page.data(), kPageSize, 56), SQLITE_OK);
  sqlite3_int64 size = 0;
  ASSERT_EQ(io->xFileSize(file, &size), SQLITE_OK);
  EXPECT_EQ(size, 32 + kFrame);
  std::string raw = ReadAll(wal_path);
  ASSERT_EQ(raw.size(), static_cast<size_t>(32 + kFrame));
  EXPECT_EQ(raw.substr(32, 24), frame_header);
  EXPECT_EQ(raw.find(std::string(64, 'p')), std::string::npos) << "the body is sealed";
  std::string back(kPageSize, '\0');
  ASSERT_EQ(io->xRead(file, back.data(), kPageSize, 56), SQLITE_OK);
  EXPECT_EQ(back, page);

  // A header written right after a write is held; asking the size writes
  // it out. So do a read, a sync, and closing the file.
  auto held_header = [&](char fill) {
    EXPECT_EQ(io->xWrite(file, page.data(), kPageSize, 56), SQLITE_OK);  // a write first
    frame_header.assign(24, fill);
    EXPECT_EQ(io->xWrite(file, frame_header.data(), 24, 32 + kFrame), SQLITE_OK);
    const std::string on_disk = ReadAll(wal_path);
    EXPECT_NE(on_disk.size() > static_cast<size_t>(32 + kFrame) ? on_disk.substr(32 + kFrame, 24) : "", frame_header)
        << "held, not yet written";
  };
  held_header('i');
  ASSERT_EQ(io->xFileSize(file, &size), SQLITE_OK);
  EXPECT_EQ(size, 32 + kFrame + 24);
  held_header('j');
  std::string got(24, '\0');
  ASSERT_EQ(io->xRead(file, got.data(), 24, 32 + kFrame), SQLITE_OK);
  EXPECT_EQ(got, frame_header);
  held_header('k');
  ASSERT_EQ(io->xSync(file, SQLITE_SYNC_NORMAL), SQLITE_OK);
  EXPECT_EQ(ReadAll(wal_path).substr(32 + kFrame, 24), frame_header);
  // After a read (walRewriteChecksums reads each frame before rewriting its
  // header, and may end a commit with that header), a header goes out at once.
  ASSERT_EQ(io->xRead(file, back.data(), kPageSize, 56), SQLITE_OK);
  frame_header.assign(24, 'm');
  ASSERT_EQ(io->xWrite(file, frame_header.data(), 24, 32 + kFrame), SQLITE_OK);
  EXPECT_EQ(ReadAll(wal_path).substr(32 + kFrame, 24), frame_header);
  held_header('l');
  ASSERT_EQ(io->xClose(file), SQLITE_OK);
  sqlite3_free(file);
  EXPECT_EQ(ReadAll(wal_path).substr(32 + kFrame, 24), frame_header);
}

TEST_F(EncryptedVfsTest, WalRecoveryFromCrashCopy) {
  sqlite3* db = Open();
  Exec(db, "PRAGMA wal_autocheckpoint=0");
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  InsertRows(db, 0, 100);
  InsertRows(db, 100, 130);  // the last transaction: a few frames at the end
  ASSERT_GT(fs::file_size(db_path_ + "-wal"), 0u);

  auto copy_to = [&](const std::string& name) {
    fs::path d = dir_ / name;
    fs::create_directories(d);
    fs::copy_file(db_path_, d / "vault.db");
    fs::copy_file(db_path_ + "-wal", d / "vault.db-wal");
    return d;
  };
  const fs::path intact = copy_to("intact");
  const fs::path torn = copy_to("torn");
  const fs::path tampered = copy_to("tampered");
  sqlite3_close(db);

  {
    sqlite3* c = Open((intact / "vault.db").string(), vfs_);
    VerifyRows(c, 0, 130);
    EXPECT_EQ(QueryText(c, "PRAGMA integrity_check"), "ok");
    sqlite3_close(c);
  }
  // Power cut mid-frame: the partial last frame and its transaction vanish.
  {
    const fs::path wal = torn / "vault.db-wal";
    fs::resize_file(wal, fs::file_size(wal) - 100);
    sqlite3* c = Open((torn / "vault.db").string(), vfs_);
    EXPECT_EQ(QueryInt(c, "SELECT count(*) FROM t"), 100);
    VerifyRows(c, 0, 100);
    sqlite3_close(c);
  }
  // A modified frame body in the last transaction ends recovery at that frame
  // (like a torn write) and is logged; earlier transactions survive.
  {
    const fs::path wal = tampered / "vault.db-wal";
    std::string w = ReadAll(wal);
    const size_t frame = 32 + 24 + kPageSize;
    const size_t frames = (w.size() - 32) / frame;
    w[32 + (frames - 2) * frame + 24 + 100] ^= 0x08;
    WriteAll(wal, w);
    LogCapture cap(dir_ / "log.txt");
    sqlite3* c = Open((tampered / "vault.db").string(), vfs_);
    EXPECT_EQ(QueryInt(c, "SELECT count(*) FROM t"), 100);
    VerifyRows(c, 0, 100);
    sqlite3_close(c);
    const std::string text = cap.Text();
    EXPECT_NE(text.find("encrypted_vfs_wal_frame_rejected"), std::string::npos) << text;
    EXPECT_EQ(text.find(kMarker), std::string::npos);
  }
  EXPECT_EQ(CountMarker(dir_), 0);
}

// A frame that was already indexed and is then modified is an error for the
// reader, never zeros served as content.
TEST_F(EncryptedVfsTest, TamperedIndexedWalFrameIsADataError) {
  sqlite3* db = Open();
  Exec(db, "PRAGMA wal_autocheckpoint=0");
  Exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
  InsertRows(db, 0, 60);
  // Flip a byte in every frame body of the live WAL.
  const std::string wal_path = db_path_ + "-wal";
  std::string w = ReadAll(wal_path);
  const size_t frame = 32 + 24 + kPageSize;
  const size_t frames = (w.size() - 32) / frame;
  ASSERT_GT(frames, 3u);
  {
    int fd = ::open(wal_path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    for (size_t i = 0; i < frames; ++i) {
      const off_t off = static_cast<off_t>(32 + i * frame + 24 + 10);
      char c = static_cast<char>(w[off] ^ 0x01);
      ASSERT_EQ(::pwrite(fd, &c, 1, off), 1);
    }
    ::close(fd);
  }
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db_path_.c_str(), &other, SQLITE_OPEN_READWRITE, vfs_.c_str()), SQLITE_OK);
  EXPECT_EQ(RunAll(other, "SELECT * FROM t"), SQLITE_IOERR_DATA);
  sqlite3_close(other);
  EXPECT_EQ(RunAll(db, "PRAGMA wal_checkpoint(TRUNCATE)"), SQLITE_IOERR_DATA);
  sqlite3_close(db);
}

}  // namespace
}  // namespace phivault::store
