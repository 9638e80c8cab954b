// Philox4x32-10 (Salmon, Moraes, Dror, Shaw; SC'11), counter-based, host and device.
// Checked against the Random123 known-answer vectors (tests/test_philox.py).
#pragma once
#include "host_device.h"

FI_NAMESPACE_BEGIN

struct Words4 {
  std::uint32_t w[4];
};

// 32x32 -> 64-bit product split into high and low words. Written as a plain 64-bit multiply:
// nvcc lowers it to mul.lo/mul.hi and the host compilers vectorise it (vpmuludq).
FI_HD void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b);
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

FI_HD Words4 philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                           std::uint32_t c3, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(M0, c0, hi0, lo0);
    mulhilo32(M1, c2, hi1, lo1);
    const std::uint32_t n0 = hi1 ^ c1 ^ k0;
    const std::uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += W0;  // the key bump after the last round is unused and optimised away
    k1 += W1;
  }
  return Words4{{c0, c1, c2, c3}};
}

FI_NAMESPACE_END
