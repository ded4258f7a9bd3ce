# The encrypted SQLite VFS (owned by the crypto/VFS engineer). include()d from
# src/store/CMakeLists.txt so the store library can link phivault_store_vfs.
phivault_library(store_vfs
  SOURCES encrypted_vfs.cc
  DEPS phivault_crypto PkgConfig::SQLITE3)

phivault_test(store_vfs_test
  SOURCES encrypted_vfs_test.cc
  DEPS phivault_store_vfs)
