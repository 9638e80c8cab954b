// Floating-point primitives of the random stream, identical on the host and the device.
//
// The stream is built from correctly rounded IEEE operations only, in a fixed order. Every
// multiply-add that the format fuses is written as madd(); everything else must stay unfused,
// which the build guarantees with -ffp-contract=off (host) and --fmad=false (nvcc).
#pragma once
#include <cmath>
#include <cstring>

#include "host_device.h"

FI_NAMESPACE_BEGIN

// float: one rounding (fused). On a host without FMA hardware std::fma is the exact
// software routine, so the result is the same, only slower.
FI_HD float madd(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

// double: two roundings (multiply, then add). The NumPy path reproduces this with plain
// float64 operations, which it could not do for a fused double multiply-add.
FI_HD double madd(double a, double b, double c) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(__dmul_rn(a, b), c);
#else
  return a * b + c;
#endif
}

FI_HD float fi_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

FI_HD double fi_sqrt(double x) {
#if defined(__CUDA_ARCH__)
  return __dsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}

FI_HD std::uint32_t bits_of(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

FI_HD float float_of(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

FI_HD std::uint64_t bits_of(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  std::uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

FI_HD double double_of(std::uint64_t u) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(u));
#else
  double x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

// Exact integer-to-double conversions by the exponent trick (AVX2 has no vector int64->double).
// k < 2^52: (2^52 + k) - 2^52.
FI_HD double u52_to_double(std::uint64_t k) {
  return double_of(0x4330000000000000ull | k) - 0x1p52;
}
// |r| < 2^51: (1.5 * 2^52 + r) - 1.5 * 2^52.
FI_HD double s51_to_double(std::int64_t r) {
  return double_of(0x4338000000000000ull + static_cast<std::uint64_t>(r)) - 0x1.8p52;
}

// --- Rounding float32 to the 16-bit formats: round to nearest, ties to even, overflow to inf.

FI_HD std::uint16_t bf16_bits_rne(float x) {
  const std::uint32_t u = bits_of(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // NaN
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// After F. Giesen's float_to_half_fast3_rtne: subnormal results are rounded by one IEEE add.
FI_HD std::uint16_t f16_bits_rne(float x) {
  const std::uint32_t f32_infinity = 255u << 23;
  const std::uint32_t f16_overflow = (127u + 16u) << 23;  // 65536.0f: inf from here on
  const std::uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  std::uint32_t u = bits_of(x);
  const std::uint32_t sign = u & 0x80000000u;
  u ^= sign;
  std::uint32_t out;
  if (u >= f16_overflow) {
    out = (u > f32_infinity) ? 0x7e00u : 0x7c00u;
  } else if (u < (113u << 23)) {  // below 2^-14: the half result is subnormal or zero
    const float shifted = float_of(u) + float_of(denorm_magic);
    out = bits_of(shifted) - denorm_magic;
  } else {
    const std::uint32_t mant_odd = (u >> 13) & 1u;
    u += (static_cast<std::uint32_t>(15 - 127) << 23) + 0xfffu;
    u += mant_odd;
    out = u >> 13;
  }
  return static_cast<std::uint16_t>(out | (sign >> 16));
}

FI_HD float bf16_to_float(std::uint16_t h) { return float_of(static_cast<std::uint32_t>(h) << 16); }

FI_HD float f16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  const std::uint32_t mant = h & 0x3ffu;
  if (exp == 0x1fu) return float_of(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
    const float magnitude = static_cast<float>(mant) * 0x1p-24f;
    return float_of(bits_of(magnitude) | sign);
  }
  return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
}

FI_NAMESPACE_END
