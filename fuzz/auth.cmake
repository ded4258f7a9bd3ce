# auth component fuzzers (owned by src/auth). Seed corpus: fuzz/corpus/jwt.
# Skipped when src/auth is left out of the build (PHIVAULT_EXCLUDE=auth).
if(TARGET phivault_auth)
  phivault_fuzzer(jwt_fuzzer SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/jwt_fuzzer.cc DEPS phivault_auth)
endif()
