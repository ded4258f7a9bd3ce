# The backup file reader (backup/container.h); seeds in
# fuzz/corpus/backup_container (regenerate with fuzz/make_backup_seeds.py).
if(TARGET phivault_backup)
  phivault_fuzzer(backup_container_fuzzer
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/backup_container_fuzzer.cc
    DEPS phivault_backup)
endif()
