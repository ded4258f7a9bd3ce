# Fuzzers of the search component (seed corpus in fuzz/corpus/search_query):
# URL search parameters and the SQL built from them.
phivault_fuzzer(search_query_fuzzer
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/search_query_fuzzer.cc
  DEPS phivault_store phivault_search)
