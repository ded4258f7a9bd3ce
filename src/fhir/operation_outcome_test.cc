#include "fhir/operation_outcome.h"

#include <gtest/gtest.h>

#include "fhir/json_reader.h"

namespace phivault::fhir {
namespace {

TEST(OperationOutcome, Json) {
  std::string s = OperationOutcomeJson("error", "invalid", "bad \"thing\"\n");
  EXPECT_EQ(s,
            R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",)"
            R"("diagnostics":"bad \"thing\"\n"}]})");
  auto parsed = ParseResource(s);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(OperationOutcomeJson("information", "informational", ""),
            R"({"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]})");
}

TEST(OperationOutcome, ForStatus) {
  EXPECT_EQ(OperationOutcomeFor(NotFound("Patient/1 not found")),
            R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found",)"
            R"("diagnostics":"Patient/1 not found"}]})");
  EXPECT_NE(OperationOutcomeFor(Internal("x")).find("\"fatal\""), std::string::npos);
  EXPECT_NE(OperationOutcomeFor(DataLoss("x")).find("\"fatal\""), std::string::npos);
}

TEST(OperationOutcome, Mapping) {
  struct Row {
    StatusCode code;
    int http;
    const char* issue;
  } rows[] = {
      {StatusCode::kOk, 200, "informational"},
      {StatusCode::kInvalidArgument, 400, "invalid"},
      {StatusCode::kNotFound, 404, "not-found"},
      {StatusCode::kGone, 410, "deleted"},
      {StatusCode::kConflict, 409, "conflict"},
      {StatusCode::kPreconditionFailed, 412, "conflict"},
      {StatusCode::kAlreadyExists, 412, "duplicate"},
      {StatusCode::kPermissionDenied, 403, "forbidden"},
      {StatusCode::kUnauthenticated, 401, "login"},
      {StatusCode::kTooLarge, 413, "too-long"},
      {StatusCode::kUnsupportedMedia, 415, "not-supported"},
      {StatusCode::kUnsupported, 400, "not-supported"},
      {StatusCode::kDataLoss, 500, "exception"},
      {StatusCode::kUnavailable, 503, "transient"},
      {StatusCode::kResourceExhausted, 429, "throttled"},
      {StatusCode::kInternal, 500, "exception"},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(HttpStatusFor(r.code), r.http) << static_cast<int>(r.code);
    EXPECT_EQ(IssueCodeFor(r.code), r.issue) << static_cast<int>(r.code);
  }
  EXPECT_EQ(HttpStatusFor(static_cast<StatusCode>(999)), 500);
  EXPECT_EQ(IssueCodeFor(static_cast<StatusCode>(999)), "exception");
}

}  // namespace
}  // namespace phivault::fhir
