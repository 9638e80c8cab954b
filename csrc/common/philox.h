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

constexpr std::uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr std::uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// One round with round keys (k0, k1).
FI_HD void philox_round(std::uint32_t& c0, std::uint32_t& c1, std::uint32_t& c2, std::uint32_t& c3,
                        std::uint32_t k0, std::uint32_t k1) {
  std::uint32_t hi0, lo0, hi1, lo1;
  mulhilo32(kPhiloxM0, c0, hi0, lo0);
  mulhilo32(kPhiloxM1, c2, hi1, lo1);
  const std::uint32_t n0 = hi1 ^ c1 ^ k0;
  const std::uint32_t n2 = hi0 ^ c3 ^ k1;
  c0 = n0;
  c1 = lo1;
  c2 = n2;
  c3 = lo0;
}

FI_HD Words4 philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                           std::uint32_t c3, std::uint32_t k0, std::uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += kPhiloxW0;  // the key bump after the last round is unused and optimised away
    k1 += kPhiloxW1;
  }
  return Words4{{c0, c1, c2, c3}};
}

// The ten round keys of a key (round r: k0 + r W0, k1 + r W1 modulo 2^32, as the bumps above),
// computed once instead of once per block: a CUDA kernel reads them from its parameters, where
// an instruction takes them as an operand (ptxas recomputes the bumps every block in a loop
// that holds a CALL, the slow path of the IEEE sqrt). The same words as philox4x32_10(k0, k1).
struct PhiloxKeys {
  std::uint32_t k0[10], k1[10];
};

FI_HD PhiloxKeys philox_keys(std::uint32_t k0, std::uint32_t k1) {
  PhiloxKeys keys;
#if defined(__CUDACC__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    keys.k0[round] = k0;
    keys.k1[round] = k1;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return keys;
}

FI_HD Words4 philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                           std::uint32_t c3, const PhiloxKeys& keys) {
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 10
#endif
  for (int round = 0; round < 10; ++round) philox_round(c0, c1, c2, c3, keys.k0[round], keys.k1[round]);
  return Words4{{c0, c1, c2, c3}};
}

FI_NAMESPACE_END
