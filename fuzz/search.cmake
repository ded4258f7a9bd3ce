# Fuzzers of the search component (seed corpus in fuzz/corpus/search_query):
# URL search parameters and the SQL built from them.
phivault_fuzzer(search_query_fuzzer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/search_query_fuzzer.cc
  DEPS phivault_store phivault_search)
# Index rows extracted from a client's resource (seed corpus in
# fuzz/corpus/index_extraction).
phivault_fuzzer(index_extraction_fuzzer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/index_extraction_fuzzer.cc
  DEPS phivault_search phivault_fhir)
