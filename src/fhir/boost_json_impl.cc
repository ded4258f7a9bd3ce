// The one translation unit that compiles Boost.JSON (header-only mode with
// BOOST_JSON_NO_LIB). Every other phivault target gets Boost.JSON by linking
// phivault_fhir; no other file may include <boost/json/src.hpp>.
#include <boost/json/src.hpp>
