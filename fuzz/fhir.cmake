# Fuzzers of the fhir component (seed corpora in fuzz/corpus/<name>).
phivault_fuzzer(json_reader_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/json_reader_fuzzer.cc DEPS phivault_fhir)
phivault_fuzzer(bundle_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/bundle_fuzzer.cc DEPS phivault_fhir)
phivault_fuzzer(json_patch_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/json_patch_fuzzer.cc DEPS phivault_fhir)
phivault_fuzzer(instant_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/instant_fuzzer.cc DEPS phivault_fhir)
phivault_fuzzer(validator_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/validator_fuzzer.cc DEPS phivault_fhir)
phivault_fuzzer(summary_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/summary_fuzzer.cc DEPS phivault_fhir)
