# Fuzzers of the audit component (seed corpus in fuzz/corpus/audit_checkpoint):
# signed notes, checkpoints, verifier keys, proofs and segment files.
phivault_fuzzer(audit_checkpoint_fuzzer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/audit_checkpoint_fuzzer.cc
  DEPS phivault_audit)
