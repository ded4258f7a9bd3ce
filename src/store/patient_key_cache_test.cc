#include "store/patient_key_cache.h"

#include <gtest/gtest.h>

#include "common/secure_bytes.h"

namespace phivault::store {
namespace {

std::shared_ptr<const crypto::Aead> NewKey() {
  auto a = crypto::Aead::New(SecureBytes::Random(crypto::Aead::kKeySize));
  EXPECT_TRUE(a.ok());
  return std::shared_ptr<const crypto::Aead>(std::move(a).value());
}

TEST(PatientKeyCacheTest, EvictsTheLeastRecentlyUsed) {
  PatientKeyCache cache(2);
  auto k0 = NewKey(), k1 = NewKey(), k2 = NewKey();
  cache.Put("p0", k0);
  cache.Put("p1", k1);
  EXPECT_EQ(cache.Get("p0"), k0);  // p0 is now the most recent
  cache.Put("p2", k2);             // so p1 goes, not p0 (which a FIFO would drop)
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Get("p1"), nullptr);
  EXPECT_EQ(cache.Get("p0"), k0);
  EXPECT_EQ(cache.Get("p2"), k2);
}

TEST(PatientKeyCacheTest, PutOfACachedOwnerKeepsTheFirstKeyAndRefreshesIt) {
  PatientKeyCache cache(2);
  auto first = NewKey(), second = NewKey(), other = NewKey(), third = NewKey();
  cache.Put("p0", first);
  cache.Put("p1", other);
  cache.Put("p0", second);  // the same patient unwrapped twice
  EXPECT_EQ(cache.Get("p0"), first);
  cache.Put("p2", third);   // p1 is now the least recent
  EXPECT_EQ(cache.Get("p1"), nullptr);
  EXPECT_EQ(cache.Get("p0"), first);
}

TEST(PatientKeyCacheTest, AnEvictedKeyLivesOnForItsHoldersAndCapacityIsAtLeastOne) {
  PatientKeyCache cache(0);
  auto k0 = NewKey();
  std::weak_ptr<const crypto::Aead> watch = k0;
  cache.Put("p0", k0);
  std::shared_ptr<const crypto::Aead> held = cache.Get("p0");
  k0.reset();
  cache.Put("p1", NewKey());  // evicts p0
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.Get("p0"), nullptr);
  ASSERT_FALSE(watch.expired());  // still held by a reader
  EXPECT_TRUE(held->Open(held->Seal("x", "a"), "a").ok());
  held.reset();
  EXPECT_TRUE(watch.expired());  // freed (and wiped) once nobody holds it
}

}  // namespace
}  // namespace phivault::store
