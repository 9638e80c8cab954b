// Philox4x32-10 for eight consecutive blocks at once with AVX2 integer intrinsics. The same
// function as csrc/common/philox.h (tests compare the two and the known answers); written by
// hand because compilers vectorise the 32x32->64 multiplies poorly (about 4x slower).
#pragma once
#if defined(__AVX2__)
#include <immintrin.h>

#include "../common/distributions.h"

FI_NAMESPACE_BEGIN
namespace cpu {

// hi and lo words of a * m for eight 32-bit lanes (m broadcast).
inline void mulhilo_x8(__m256i a, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, m);                         // lanes 0, 2, 4, 6
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // lanes 1, 3, 5, 7
  lo = _mm256_mullo_epi32(a, m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// Counter words 0 and 1 of blocks first_block + (0..7).
inline void counter_x8(std::uint64_t first_block, __m256i& c0, __m256i& c1) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i lo = _mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first_block)));
  c0 = _mm256_add_epi32(lo, iota);
  // carry into the high word where the low word wrapped (unsigned c0 < lo)
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(lo, sign), _mm256_xor_si256(c0, sign));
  c1 = _mm256_sub_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(first_block >> 32))),
                        wrapped);
}

// Philox rounds on kSets independent groups of eight blocks (interleaved to hide the multiply
// latency): blocks first_block .. first_block + 8 kSets - 1, stored as w[k][block - first_block].
template <int kSets>
inline void philox_x8_sets(const StreamKey& key, std::uint64_t first_block, std::uint32_t* w0,
                           std::uint32_t* w1, std::uint32_t* w2, std::uint32_t* w3) {
  __m256i c0[kSets], c1[kSets], c2[kSets], c3[kSets];
  for (int s = 0; s < kSets; ++s) {
    counter_x8(first_block + 8 * s, c0[s], c1[s]);
    c2[s] = _mm256_set1_epi32(static_cast<int>(key.purpose));
    c3[s] = _mm256_setzero_si256();
  }
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  std::uint32_t k0 = key.k0, k1 = key.k1;
  for (int round = 0; round < 10; ++round) {
    const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0));
    const __m256i key1 = _mm256_set1_epi32(static_cast<int>(k1));
    for (int s = 0; s < kSets; ++s) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo_x8(c0[s], m0, hi0, lo0);
      mulhilo_x8(c2[s], m1, hi1, lo1);
      c0[s] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[s]), key0);
      c2[s] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[s]), key1);
      c1[s] = lo1;
      c3[s] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int s = 0; s < kSets; ++s) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + 8 * s), c0[s]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w1 + 8 * s), c1[s]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w2 + 8 * s), c2[s]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w3 + 8 * s), c3[s]);
  }
}

}  // namespace cpu
FI_NAMESPACE_END
#endif
