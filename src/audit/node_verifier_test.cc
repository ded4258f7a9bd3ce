// Cross-checks the vault's proofs and checkpoints with an independent
// verifier written from RFC 6962/9162 and the C2SP specs in another language
// (tests/node/merkle_verifier/verify.js): it must accept what the vault
// produces and reject tampered copies.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "audit/audit_log.h"
#include "audit/test_util.h"

namespace phivault::audit {
namespace {

using phivault::testing::TempDir;
using phivault::testing::WriteFile;

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);  // UTF-8 (the em dash) passes through
        }
    }
  }
  return out + "\"";
}

std::string JsonProof(const std::vector<std::string>& proof) {
  std::string out = "[";
  for (size_t i = 0; i < proof.size(); ++i) out += (i ? "," : "") + JsonString(Base64Encode(proof[i]));
  return out + "]";
}

struct Case {
  std::string vkey;
  std::vector<std::string> checkpoints;
  struct Inclusion {
    int checkpoint;
    uint64_t index;
    std::string entry;  // the sealed entry exactly as stored
    std::vector<std::string> proof;
  };
  std::vector<Inclusion> inclusion;
  struct Consistency {
    int from, to;
    std::vector<std::string> proof;
  };
  std::vector<Consistency> consistency;

  std::string Json() const {
    std::string j = "{\"vkey\":" + JsonString(vkey) + ",\"checkpoints\":[";
    for (size_t i = 0; i < checkpoints.size(); ++i) j += (i ? "," : "") + JsonString(checkpoints[i]);
    j += "],\"inclusion\":[";
    for (size_t i = 0; i < inclusion.size(); ++i) {
      const auto& c = inclusion[i];
      j += std::string(i ? "," : "") + "{\"checkpoint\":" + std::to_string(c.checkpoint) +
           ",\"index\":" + std::to_string(c.index) + ",\"entry\":" + JsonString(Base64Encode(c.entry)) +
           ",\"proof\":" + JsonProof(c.proof) + "}";
    }
    j += "],\"consistency\":[";
    for (size_t i = 0; i < consistency.size(); ++i) {
      const auto& c = consistency[i];
      j += std::string(i ? "," : "") + "{\"from\":" + std::to_string(c.from) + ",\"to\":" + std::to_string(c.to) +
           ",\"proof\":" + JsonProof(c.proof) + "}";
    }
    return j + "]}";
  }
};

class NodeVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("node --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "node is not installed";
    keyring_ = testing::MakeKeyring(tmp_.path());
    auto log = AuditLog::Open(tmp_.path(), *keyring_);
    ASSERT_TRUE(log.ok());
    const uint64_t sizes[] = {1, 6, 13, 64, 1000, 1337};
    uint64_t n = 0;
    c_.vkey = (*log)->VerifierKey();
    for (uint64_t size : sizes) {
      for (; n < size; ++n) ASSERT_TRUE((*log)->AppendAndWait("entry " + std::to_string(n)).ok());
      auto cp = (*log)->SignCheckpoint();
      ASSERT_TRUE(cp.ok());
      c_.checkpoints.push_back(*cp);
    }
    auto seg = testing::ReadSegment(AuditLog::AuditDir(tmp_.path()) + "/seg-000001.log");
    for (int cp = 0; cp < static_cast<int>(std::size(sizes)); ++cp) {
      for (uint64_t index : {uint64_t{0}, sizes[cp] / 2, sizes[cp] - 1}) {
        auto proof = (*log)->InclusionProof(index, sizes[cp]);
        ASSERT_TRUE(proof.ok());
        c_.inclusion.push_back({cp, index, seg.payloads[index], *proof});
      }
      for (int from = 0; from < cp; ++from) {
        auto proof = (*log)->ConsistencyProof(sizes[from], sizes[cp]);
        ASSERT_TRUE(proof.ok());
        c_.consistency.push_back({from, cp, *proof});
      }
    }
  }

  // Runs the Node verifier on `c`; true if it accepted.
  bool NodeAccepts(const Case& c, const std::string& name) {
    const std::string json = tmp_.Sub(name + ".json");
    WriteFile(json, c.Json());
    const std::string cmd = "node " PHIVAULT_SOURCE_DIR "/tests/node/merkle_verifier/verify.js " + json +
                            " > " + tmp_.Sub(name + ".out") + " 2>&1";
    const int rc = std::system(cmd.c_str());
    return rc == 0;
  }

  TempDir tmp_;
  std::unique_ptr<crypto::Keyring> keyring_;
  Case c_;
};

TEST_F(NodeVerifierTest, AcceptsTheVaultsProofsAndCheckpoints) {
  EXPECT_TRUE(NodeAccepts(c_, "good")) << phivault::testing::ReadFile(tmp_.Sub("good.out"));
}

TEST_F(NodeVerifierTest, RejectsTamperedInputs) {
  {
    Case c = c_;
    c.inclusion[7].proof[1][0] ^= 0x01;
    EXPECT_FALSE(NodeAccepts(c, "proof"));
  }
  {
    Case c = c_;
    c.inclusion[4].entry[30] ^= 0x01;  // a modified stored entry
    EXPECT_FALSE(NodeAccepts(c, "entry"));
  }
  {
    Case c = c_;
    c.inclusion[4].index += 1;
    EXPECT_FALSE(NodeAccepts(c, "index"));
  }
  {
    Case c = c_;
    c.consistency.back().proof[0][5] ^= 0x10;
    EXPECT_FALSE(NodeAccepts(c, "consistency"));
  }
  {
    Case c = c_;
    std::string& note = c.checkpoints[2];
    note.replace(note.find("\n13\n"), 4, "\n14\n");  // claims another size
    EXPECT_FALSE(NodeAccepts(c, "note"));
  }
  {
    Case c = c_;
    auto other = NoteSigner::FromSeed("phivault/" + keyring_->vault_id(), SecureBytes::Random(32));
    ASSERT_TRUE(other.ok());
    c.vkey = (*other)->VerifierKeyString();
    EXPECT_FALSE(NodeAccepts(c, "key"));
  }
}

}  // namespace
}  // namespace phivault::audit
