// Checkpoints and signed notes: the published golang.org/x/mod/sumdb/note
// example as a known answer, round trips, and rejection of tampered notes.
#include "audit/checkpoint.h"

#include <gtest/gtest.h>

namespace phivault::audit {
namespace {

// From the documentation of golang.org/x/mod/sumdb/note (the C2SP signed-note
// reference implementation): key, text and the published signed note.
constexpr std::string_view kPeterVkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr std::string_view kPeterSeedB64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";  // 0x01 || seed
constexpr std::string_view kPeterText =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr std::string_view kPeterNote =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xE2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

std::unique_ptr<NoteSigner> PeterSigner() {
  auto raw = Base64Decode(kPeterSeedB64);
  EXPECT_TRUE(raw.ok());
  auto s = NoteSigner::FromSeed("PeterNeumann", SecureBytes::From(raw->substr(1)));
  EXPECT_TRUE(s.ok());
  return std::move(s).value();
}

TEST(SignedNote, ReproducesPublishedGoExample) {
  auto signer = PeterSigner();
  EXPECT_EQ(signer->VerifierKeyString(), kPeterVkey);
  auto note = signer->Sign(kPeterText);
  ASSERT_TRUE(note.ok());
  EXPECT_EQ(*note, kPeterNote);  // Ed25519 is deterministic: byte for byte
  auto key = ParseVerifierKey(kPeterVkey);
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->key_id, 0xc74f20a3u);
  auto text = OpenNote(kPeterNote, *key);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(*text, kPeterText);
}

TEST(SignedNote, TamperingFails) {
  auto key = ParseVerifierKey(kPeterVkey);
  ASSERT_TRUE(key.ok());
  std::string note(kPeterNote);
  for (size_t i = 0; i < note.size(); ++i) {
    std::string bad = note;
    bad[i] ^= 0x01;
    EXPECT_FALSE(OpenNote(bad, *key).ok()) << "byte " << i;
  }
  EXPECT_FALSE(OpenNote(note.substr(0, note.size() - 1), *key).ok());
  EXPECT_FALSE(OpenNote("", *key).ok());
  EXPECT_FALSE(OpenNote("\n\n", *key).ok());
}

TEST(SignedNote, OtherSignaturesIgnoredButOneOfOursRequired) {
  auto peter = PeterSigner();
  auto other = NoteSigner::FromSeed("EnochRoot", SecureBytes::Random(32));
  ASSERT_TRUE(other.ok());
  auto by_other = (*other)->Sign(kPeterText);
  ASSERT_TRUE(by_other.ok());
  auto key = ParseVerifierKey(kPeterVkey);
  ASSERT_TRUE(key.ok());
  // Only Enoch's signature: no signature by our key.
  EXPECT_EQ(OpenNote(*by_other, *key).status().code(), StatusCode::kPermissionDenied);
  // Both signatures: accepted.
  std::string both(kPeterNote);
  both += by_other->substr(by_other->rfind("\n\n") + 2);
  EXPECT_TRUE(OpenNote(both, *key).ok());
}

TEST(SignedNote, VerifierKeyParsingIsStrict) {
  EXPECT_TRUE(ParseVerifierKey(kPeterVkey).ok());
  std::string v(kPeterVkey);
  for (size_t i = 0; i < v.size(); ++i) {
    std::string bad = v;
    bad[i] = static_cast<char>(bad[i] + 1);
    EXPECT_FALSE(ParseVerifierKey(bad).ok()) << bad;
  }
  for (size_t i = 0; i + 1 < v.size(); ++i) EXPECT_FALSE(ParseVerifierKey(v.substr(0, i)).ok());
  EXPECT_FALSE(ParseVerifierKey("").ok());
  EXPECT_FALSE(ParseVerifierKey("++").ok());
}

TEST(Checkpoint, SignParseRoundTrip) {
  auto signer = NoteSigner::FromSeed("phivault/3f1e0c52-8d7a-4a0e-9d56-2f4f5b1a9c00", SecureBytes::Random(32));
  ASSERT_TRUE(signer.ok());
  TreeHead head{(*signer)->name(), 12345, HashLeaf("root"), {}};
  const std::string body = FormatTreeHead(head);
  EXPECT_EQ(body, head.origin + "\n12345\n" + Base64Encode(HashView(head.root)) + "\n");
  auto note = (*signer)->Sign(body);
  ASSERT_TRUE(note.ok());
  auto key = ParseVerifierKey((*signer)->VerifierKeyString());
  ASSERT_TRUE(key.ok());
  auto got = VerifyCheckpoint(*note, *key);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->origin, head.origin);
  EXPECT_EQ(got->size, head.size);
  EXPECT_EQ(got->root, head.root);

  // Wrong key.
  auto other = NoteSigner::FromSeed((*signer)->name(), SecureBytes::Random(32));
  ASSERT_TRUE(other.ok());
  auto other_key = ParseVerifierKey((*other)->VerifierKeyString());
  ASSERT_TRUE(other_key.ok());
  EXPECT_FALSE(VerifyCheckpoint(*note, *other_key).ok());

  // Changed size, changed root: the signature no longer covers the text.
  std::string bad = *note;
  bad.replace(bad.find("12345"), 5, "12346");
  EXPECT_FALSE(VerifyCheckpoint(bad, *key).ok());

  // A checkpoint signed for another origin by the same key is refused.
  TreeHead foreign = head;
  foreign.origin = "phivault/other";
  auto foreign_note = (*signer)->Sign(FormatTreeHead(foreign));
  ASSERT_TRUE(foreign_note.ok());
  EXPECT_FALSE(VerifyCheckpoint(*foreign_note, *key).ok());
}

TEST(Checkpoint, BodyParsingIsStrict) {
  const std::string root = Base64Encode(HashView(HashLeaf("r")));
  EXPECT_TRUE(ParseTreeHead("o\n0\n" + root + "\n").ok());
  EXPECT_TRUE(ParseTreeHead("o\n18446744073709551615\n" + root + "\next\n").ok());
  EXPECT_FALSE(ParseTreeHead("o\n18446744073709551616\n" + root + "\n").ok());
  EXPECT_FALSE(ParseTreeHead("o\n01\n" + root + "\n").ok());
  EXPECT_FALSE(ParseTreeHead("o\n-1\n" + root + "\n").ok());
  EXPECT_FALSE(ParseTreeHead("o\n1\n" + root).ok());
  EXPECT_FALSE(ParseTreeHead("o\n1\n" + root.substr(4) + "\n").ok());
  EXPECT_FALSE(ParseTreeHead("o\n1\n\n").ok());
  EXPECT_FALSE(ParseTreeHead("o\n1\n").ok());
  EXPECT_FALSE(ParseTreeHead("").ok());
}

TEST(Checkpoint, Base64IsCanonical) {
  EXPECT_TRUE(Base64Decode("AA==").ok());
  EXPECT_FALSE(Base64Decode("AB==").ok());  // non-zero padding bits
  EXPECT_FALSE(Base64Decode("AA").ok());
  EXPECT_FALSE(Base64Decode("A A=").ok());
  EXPECT_EQ(*Base64Decode(""), "");
}

TEST(Checkpoint, SplitNotesFindsTornTail) {
  auto signer = NoteSigner::FromSeed("log", SecureBytes::Random(32));
  ASSERT_TRUE(signer.ok());
  auto a = (*signer)->Sign("log\n1\n" + Base64Encode(HashView(HashLeaf("a"))) + "\n");
  auto b = (*signer)->Sign("log\n2\n" + Base64Encode(HashView(HashLeaf("b"))) + "\n");
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string file = *a + "\n" + *b + "\n";
  size_t complete = 0;
  auto notes = SplitNotes(file, &complete);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], *a);
  EXPECT_EQ(notes[1], *b);
  EXPECT_EQ(complete, file.size());
  notes = SplitNotes(file.substr(0, file.size() - 3), &complete);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(complete, a->size() + 1);
}

}  // namespace
}  // namespace phivault::audit
