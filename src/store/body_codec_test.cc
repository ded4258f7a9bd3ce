#include "store/body_codec.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace phivault::store::body {
namespace {

boost::json::object Parse(std::string_view text) { return boost::json::parse(text).as_object(); }

std::string LongText() {
  std::string s;
  for (int i = 0; i < 60; ++i) s += "line " + std::to_string(i) + " of a clinical note; ";
  return s;
}

// What the writer stores without preparation: SetMeta, then serialize.
std::string Expected(boost::json::object resource, std::string_view version, std::string_view updated) {
  SetMeta(resource, version, updated);
  return boost::json::serialize(resource);
}

// Prepares a copy of `resource`, lets the "writer" set the real values on
// that copy as InsertVersion does, and checks text and envelope.
void CheckPrepared(const boost::json::object& resource, int level, bool expect_usable = true) {
  boost::json::object copy = resource;
  PreparedBody prepared = PreparedBody::Prepare(copy, level);
  ASSERT_EQ(prepared.usable(), expect_usable);
  if (!expect_usable) return;
  SetMeta(copy, "12", "2026-11-30T16:20:00.123Z");
  std::string json, envelope;
  prepared.Finish("12", "2026-11-30T16:20:00.123Z", &json, &envelope);
  EXPECT_EQ(json, boost::json::serialize(copy));
  EXPECT_EQ(json, Expected(resource, "12", "2026-11-30T16:20:00.123Z"));
  auto decoded = Decode(envelope);
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  EXPECT_EQ(*decoded, json);
}

// A large Observation's JSON text and envelope, prepared and finished.
std::pair<std::string, std::string> LargeObservationBody() {
  boost::json::object r = Parse(R"({"resourceType":"Observation","id":"o1","note":")" + LongText() + R"("})");
  PreparedBody prepared = PreparedBody::Prepare(r, 1);
  EXPECT_TRUE(prepared.usable());
  std::string json, envelope;
  prepared.Finish("1", "2026-11-30T16:20:00.123Z", &json, &envelope);
  return {json, envelope};
}

TEST(BodyCodecTest, PreparedBodyMatchesWhatTheWriterWouldSerialize) {
  const std::string note = LongText();
  // No meta: appended at the end.
  CheckPrepared(Parse(R"({"resourceType":"Observation","id":"o1","status":"final","note":[{"text":")" + note + R"("}]})"), 1);
  // meta first with other members, as Synthea writes it.
  CheckPrepared(Parse(R"({"resourceType":"Procedure","id":"p1","meta":{"profile":["http://x/p"]},"text":")" + note + R"("})"), 1);
  // versionId and lastUpdated already present, in reverse order and apart.
  CheckPrepared(Parse(R"({"resourceType":"Patient","meta":{"lastUpdated":"2020-01-01T00:00:00Z","source":"s","versionId":"7"},"id":"x","text":")" + note + R"("})"), 1);
  // meta that is not an object is replaced.
  CheckPrepared(Parse(R"({"resourceType":"Patient","id":"x","meta":3,"text":")" + note + R"("})"), 1);
  // Small bodies and compression off.
  CheckPrepared(Parse(R"({"resourceType":"Patient","id":"x"})"), 1);
  CheckPrepared(Parse(R"({"resourceType":"Patient","id":"x","text":")" + note + R"("})"), 0);
}

TEST(BodyCodecTest, LargeBodiesAreCompressed) {
  auto [json, envelope] = LargeObservationBody();
  ASSERT_FALSE(envelope.empty());
  EXPECT_EQ(envelope[0], kParts);
  EXPECT_LT(envelope.size(), json.size() / 2);
}

TEST(BodyCodecTest, TextThatContainsAPlaceholderIsLeftToTheWriter) {
  // The resource's own data carries the version placeholder's exact text:
  // it then occurs twice, so Prepare must not guess which one to replace.
  boost::json::object r = Parse(R"({"resourceType":"Patient","id":"x"})");
  r["text"] = std::string("\x01phivault-version-id\x01");
  CheckPrepared(r, 1, /*expect_usable=*/false);
}

TEST(BodyCodecTest, EncodeAndDecodeEveryFormat) {
  const std::string small = R"({"resourceType":"Patient","id":"x"})";
  const std::string large = R"({"resourceType":"Patient","id":"x","text":")" + LongText() + R"("})";
  for (int level : {0, 1}) {
    for (const std::string& json : {small, large}) {
      auto env = Encode(json, level);
      ASSERT_TRUE(env.ok());
      EXPECT_EQ((*env)[0], level > 0 && json.size() > kMinCompressedSize ? kZstdJson : kRawJson);
      auto back = Decode(*env);
      ASSERT_TRUE(back.ok());
      EXPECT_EQ(*back, json);
    }
  }
}

TEST(BodyCodecTest, MalformedEnvelopesAreDataLoss) {
  auto [json, envelope] = LargeObservationBody();
  const std::vector<std::string> bad = {
      "",                                    // empty
      std::string(1, '\x09') + "{}",         // unknown format
      envelope.substr(0, envelope.size() - 3),  // truncated last part
      envelope.substr(0, 3),                 // truncated part header
      std::string(1, kParts) + std::string("\x07\x00\x00\x00\x00", 5),  // unknown part kind
      std::string(1, kParts) + std::string("\x01\xff\xff\xff\x7f", 5) + "x",  // length beyond the end
      std::string(1, kParts) + std::string("\x01\xff\xff\xff\xff\xff\x01", 7),  // overlong length
      std::string(1, kZstdJson) + "not a frame",
  };
  for (const std::string& b : bad) {
    auto d = Decode(b);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kDataLoss);
  }
}

}  // namespace
}  // namespace phivault::store::body
