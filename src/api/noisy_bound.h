// NoisyBound: a per-request limit on work that counts records the caller may
// not see.
//
// Some searches must stop after examining a fixed number of matches
// (chained and _has conditions, counting). The matches examined include
// hidden ones, so with a fixed limit a caller who can pad the visible side
// to just below it reads off whether one hidden match exists from whether
// the search is refused. Drawing the limit anew for each request, from a
// Laplace distribution around the base, turns that one-request test into a
// statistical one: requests that examine n and n + 1 matches are refused
// with probabilities whose ratio is at most e^(1/scale), with scale = base /
// 20 (for the chain limit, 1,000 matches). Telling them apart takes on the
// order of scale^2 (about a million) audited requests. This reduces the
// leak; it does not close it, and needs no other change to what is counted.
//
// The limit stays within [base / 4, base * 7 / 4] (15 scales either side,
// reached with probability below 1e-6), so the work stays bounded. The
// noise is only as strong as the scale: a base in the tens gives little
// protection, which is why the bounds that count hidden matches start from
// thousands.
//
// Thread-safety: safe from any thread (libsodium's generator). Lifetime:
// none.
#ifndef PHIVAULT_API_NOISY_BOUND_H_
#define PHIVAULT_API_NOISY_BOUND_H_

#include <cstdint>

namespace phivault::api {

// A base below 20 has no room for noise and is returned unchanged.
int64_t NoisyBound(int64_t base);

// The bound on matches examined, hidden ones included, to fill one page of
// `page_size` visible matches (search, history, $everything): drawn around
// `base`, or 64 pages' worth if that is more.
int64_t NoisyRefillBound(int64_t base, int page_size);

}  // namespace phivault::api

#endif  // PHIVAULT_API_NOISY_BOUND_H_
