// Interleaved stores: lane arrays src[k][j] (k < K) to dst[K j + k]. The CPU kernels compute a
// group of Philox blocks lane by lane (structure of arrays, so the math vectorises), while the
// stream puts the K lanes of a block next to each other in memory.
#pragma once
#include <cstdint>
#include <cstring>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

FI_NAMESPACE_BEGIN
namespace cpu {

template <int K, std::size_t kBytes>
struct Interleave {
  // Generic (scalar) version.
  static void store(unsigned char* dst, const unsigned char* const* src, std::int64_t count) {
    for (std::int64_t j = 0; j < count; ++j)
      for (int k = 0; k < K; ++k) std::memcpy(dst + (K * j + k) * kBytes, src[k] + j * kBytes, kBytes);
  }
};

#if defined(__AVX2__)
inline __m256i load256(const unsigned char* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline void store256(unsigned char* p, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }

// Four lanes of 32-bit values (float32 outputs): a 4 x 8 transpose per 32 values.
template <>
struct Interleave<4, 4> {
  static void store(unsigned char* dst, const unsigned char* const* src, std::int64_t count) {
    std::int64_t j = 0;
    for (; j + 8 <= count; j += 8) {
      const __m256 a = _mm256_castsi256_ps(load256(src[0] + 4 * j));
      const __m256 b = _mm256_castsi256_ps(load256(src[1] + 4 * j));
      const __m256 c = _mm256_castsi256_ps(load256(src[2] + 4 * j));
      const __m256 d = _mm256_castsi256_ps(load256(src[3] + 4 * j));
      const __m256 ab_lo = _mm256_unpacklo_ps(a, b), ab_hi = _mm256_unpackhi_ps(a, b);
      const __m256 cd_lo = _mm256_unpacklo_ps(c, d), cd_hi = _mm256_unpackhi_ps(c, d);
      const __m256 r0 = _mm256_shuffle_ps(ab_lo, cd_lo, 0x44), r1 = _mm256_shuffle_ps(ab_lo, cd_lo, 0xEE);
      const __m256 r2 = _mm256_shuffle_ps(ab_hi, cd_hi, 0x44), r3 = _mm256_shuffle_ps(ab_hi, cd_hi, 0xEE);
      unsigned char* o = dst + 16 * j;
      store256(o, _mm256_castps_si256(_mm256_permute2f128_ps(r0, r1, 0x20)));
      store256(o + 32, _mm256_castps_si256(_mm256_permute2f128_ps(r2, r3, 0x20)));
      store256(o + 64, _mm256_castps_si256(_mm256_permute2f128_ps(r0, r1, 0x31)));
      store256(o + 96, _mm256_castps_si256(_mm256_permute2f128_ps(r2, r3, 0x31)));
    }
    const unsigned char* rest[4] = {src[0] + 4 * j, src[1] + 4 * j, src[2] + 4 * j, src[3] + 4 * j};
    Interleave<4, 4>::scalar(dst + 16 * j, rest, count - j);
  }
  static void scalar(unsigned char* dst, const unsigned char* const* src, std::int64_t count) {
    for (std::int64_t j = 0; j < count; ++j)
      for (int k = 0; k < 4; ++k) std::memcpy(dst + (4 * j + k) * 4, src[k] + j * 4, 4);
  }
};

// Four lanes of 16-bit values (bfloat16 and float16 outputs), 64 values per step.
template <>
struct Interleave<4, 2> {
  static void store(unsigned char* dst, const unsigned char* const* src, std::int64_t count) {
    std::int64_t j = 0;
    for (; j + 16 <= count; j += 16) {
      const __m256i a = load256(src[0] + 2 * j), b = load256(src[1] + 2 * j);
      const __m256i c = load256(src[2] + 2 * j), d = load256(src[3] + 2 * j);
      const __m256i ab_lo = _mm256_unpacklo_epi16(a, b), ab_hi = _mm256_unpackhi_epi16(a, b);
      const __m256i cd_lo = _mm256_unpacklo_epi16(c, d), cd_hi = _mm256_unpackhi_epi16(c, d);
      const __m256i r0 = _mm256_unpacklo_epi32(ab_lo, cd_lo), r1 = _mm256_unpackhi_epi32(ab_lo, cd_lo);
      const __m256i r2 = _mm256_unpacklo_epi32(ab_hi, cd_hi), r3 = _mm256_unpackhi_epi32(ab_hi, cd_hi);
      unsigned char* o = dst + 8 * j;
      store256(o, _mm256_permute2x128_si256(r0, r1, 0x20));
      store256(o + 32, _mm256_permute2x128_si256(r2, r3, 0x20));
      store256(o + 64, _mm256_permute2x128_si256(r0, r1, 0x31));
      store256(o + 96, _mm256_permute2x128_si256(r2, r3, 0x31));
    }
    for (; j < count; ++j)
      for (int k = 0; k < 4; ++k) std::memcpy(dst + (4 * j + k) * 2, src[k] + j * 2, 2);
  }
};

// Two lanes of 64-bit values (float64 outputs).
template <>
struct Interleave<2, 8> {
  static void store(unsigned char* dst, const unsigned char* const* src, std::int64_t count) {
    std::int64_t j = 0;
    for (; j + 4 <= count; j += 4) {
      const __m256i a = load256(src[0] + 8 * j), b = load256(src[1] + 8 * j);
      const __m256i lo = _mm256_unpacklo_epi64(a, b), hi = _mm256_unpackhi_epi64(a, b);
      unsigned char* o = dst + 16 * j;
      store256(o, _mm256_permute2x128_si256(lo, hi, 0x20));
      store256(o + 32, _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    for (; j < count; ++j)
      for (int k = 0; k < 2; ++k) std::memcpy(dst + (2 * j + k) * 8, src[k] + j * 8, 8);
  }
};
#endif

}  // namespace cpu
FI_NAMESPACE_END
