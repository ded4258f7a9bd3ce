# Fuzzers of the audit component (seed corpus in fuzz/corpus/audit_checkpoint):
# signed notes, checkpoints, verifier keys, proofs and segment files.
phivault_fuzzer(audit_checkpoint_fuzzer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/audit_checkpoint_fuzzer.cc
  DEPS phivault_audit)

# Audit entries (audit/entry.h) as read back from exports; also drives the
# BALP mapping, syslog formatting and query code on every accepted entry.
# Seed corpus in fuzz/corpus/audit_entry.
phivault_fuzzer(audit_entry_fuzzer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/audit_entry_fuzzer.cc
  DEPS phivault_audit)
