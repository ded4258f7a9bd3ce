#include "api/paging_cursor.h"

#include <gtest/gtest.h>

#include <string>

#include "audit/test_util.h"
#include "common/testing/temp_dir.h"

namespace phivault::api {
namespace {

using namespace std::string_literals;

TEST(PagingCursorTest, OpensOnlyWhatItSealedForTheSameRequest) {
  phivault::testing::TempDir dir;
  auto keyring = audit::testing::MakeKeyring(dir.path());
  PagingCursor cursors(keyring.get());
  const std::string position = "12345|Smith";
  const std::string c = cursors.Seal(position, "history\0Patient"s);
  EXPECT_EQ(c.find("12345"), std::string::npos);
  EXPECT_EQ(c.find("Smith"), std::string::npos);
  auto back = cursors.Open(c, "history\0Patient"s);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, position);

  EXPECT_EQ(cursors.Open(c, "history\0Observation"s).status().code(), StatusCode::kInvalidArgument);
  std::string edited = c;
  edited[edited.size() / 2] = edited[edited.size() / 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(cursors.Open(edited, "history\0Patient"s).ok());
  EXPECT_FALSE(cursors.Open(c.substr(0, c.size() - 1), "history\0Patient"s).ok());
  EXPECT_FALSE(cursors.Open("", "history\0Patient"s).ok());
  EXPECT_FALSE(cursors.Open("12345", "history\0Patient"s).ok());
  EXPECT_FALSE(cursors.Open("%%%", "history\0Patient"s).ok());

  // The key comes from the keyring, so cursors survive a restart; another
  // vault's (or a random) key opens nothing.
  PagingCursor again(keyring.get());
  EXPECT_TRUE(again.Open(c, "history\0Patient"s).ok());
  PagingCursor random(nullptr);
  EXPECT_FALSE(random.Open(c, "history\0Patient"s).ok());
  EXPECT_TRUE(random.Open(random.Seal("x", "b"), "b").ok());
}

}  // namespace
}  // namespace phivault::api
