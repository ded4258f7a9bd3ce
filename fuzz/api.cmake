# Fuzzers of the api component. Seed corpus: fuzz/corpus/audit_service (the
# first two bytes select path template and caller, see the source).
if(TARGET phivault_api)
  phivault_fuzzer(audit_service_fuzzer
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/audit_service_fuzzer.cc
    DEPS phivault_api)
endif()
# Bulk $export requests (api/bulk_export.h); seeds in fuzz/corpus/bulk_export.
if(TARGET phivault_api)
  phivault_fuzzer(bulk_export_fuzzer
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/bulk_export_fuzzer.cc
    DEPS phivault_api)
endif()
# The OAuth token endpoint (api/auth_service.h); seeds in fuzz/corpus/auth_token.
if(TARGET phivault_api)
  phivault_fuzzer(auth_token_fuzzer
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/auth_token_fuzzer.cc
    DEPS phivault_api)
endif()
