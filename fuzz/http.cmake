# http component fuzzers (owned by src/http). Seeds: fuzz/corpus/http/ (the
# first byte of each input selects the fuzzer mode, see the source).
phivault_fuzzer(http_request_fuzzer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/http_request_fuzzer.cc
  DEPS phivault_http)
