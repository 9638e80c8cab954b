// The random-stream format (v2): from (key, element index) to a value. docs/stream-format.md is the
// normative description; this header and fastinit/_numpy_stream.py implement it.
//
// Element i of a tensor (its row-major logical index) belongs to Philox block b = i / K, lane
// i % K, with K = 4 for the float32 family (float32, float16, bfloat16 outputs, computed in
// float32 and rounded once) and K = 2 for float64. The block's counter is (lo32(b), hi32(b),
// purpose, 0) and its key the call's 64-bit key. Each operation maps the block's four 32-bit
// words to K values; nothing depends on where the block sits in memory or who computes it.
#pragma once
#include <limits>

#include "out_types.h"
#include "philox.h"
#include "stream_math.h"

FI_NAMESPACE_BEGIN

struct StreamKey {
  std::uint32_t k0, k1;    // the call's key: low and high words
  std::uint32_t purpose;   // counter word 2: 0 for values, other values for auxiliary draws
};

FI_HD Words4 stream_block(const StreamKey& key, std::uint64_t block) {
  return philox4x32_10(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                       key.purpose, 0u, key.k0, key.k1);
}

// The same key with its Philox round keys computed once (philox.h): the same blocks.
struct StreamRoundKeys {
  PhiloxKeys philox;
  std::uint32_t purpose;
};

FI_HD StreamRoundKeys round_keys(const StreamKey& key) {
  return StreamRoundKeys{philox_keys(key.k0, key.k1), key.purpose};
}

FI_HD Words4 stream_block(const StreamRoundKeys& keys, std::uint64_t block) {
  return philox4x32_10(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                       keys.purpose, 0u, keys.philox);
}

template <class T, int K>
struct Values {
  T v[K];
};

template <class T>
struct Family;
template <>
struct Family<float> {
  static constexpr int kPerBlock = 4;
};
template <>
struct Family<double> {
  static constexpr int kPerBlock = 2;
};

// Words 2j and 2j+1 as one 64-bit integer (word 2j high).
FI_HD std::uint64_t join_words(const Words4& r, int j) {
  return (static_cast<std::uint64_t>(r.w[2 * j]) << 32) | r.w[2 * j + 1];
}

// Round v to Out, then clamp it to [lo, hi] (values representable in Out).
template <class Out, class T>
FI_HD Out round_and_clamp(T v, T lo, T hi) {
  T rounded = round_to<Out>(v);
  rounded = rounded < lo ? lo : rounded;
  rounded = rounded > hi ? hi : rounded;
  return OutTraits<Out>::store(rounded);
}

// --- uniform: a + (k + 1/2) (b - a) / 2^bits, as one multiply-add from host-computed step/start,
// rounded to the output dtype, then kept inside [lo, hi]: the output dtype's values nearest to
// [a, b] from inside (step and start are rounded, so an extreme cell could end a rounding error
// beyond a or b, and rounding to a 16-bit dtype can go past b).
template <class T>
struct UniformOp {
  T step;   // (b - a) * 2^-24 (float family) or 2^-52 (float64)
  T start;  // a + step / 2
  T lo = -std::numeric_limits<T>::infinity();
  T hi = std::numeric_limits<T>::infinity();
  static constexpr int kPerBlock = Family<T>::kPerBlock;

  // The draws madd(k, step, start) for the block's cell indices k, in [0, kMaxCell]: monotone
  // in k, so when the two extreme cells round into [lo, hi] every draw does and the clamp of
  // finish changes nothing (the CUDA launcher checks that and then skips it).
  static constexpr T kMaxCell = Family<T>::kPerBlock == 4 ? T(16777215) : T(4503599627370495.0);
  FI_HD Values<T, Family<T>::kPerBlock> draws(Words4 r) const;
  FI_HD Values<T, Family<T>::kPerBlock> block(Words4 r) const { return draws(r); }
  template <class Out>
  FI_HD Out finish(T v) const {
    return round_and_clamp<Out>(v, lo, hi);
  }
};

template <>
FI_HD Values<float, 4> UniformOp<float>::draws(Words4 r) const {
  Values<float, 4> out;
  FI_UNROLL
  for (int k = 0; k < 4; ++k) out.v[k] = madd(static_cast<float>(static_cast<std::int32_t>(r.w[k] >> 8)), step, start);
  return out;
}
template <>
FI_HD Values<double, 2> UniformOp<double>::draws(Words4 r) const {
  Values<double, 2> out;
  FI_UNROLL
  for (int j = 0; j < 2; ++j) out.v[j] = madd(u52_to_double(join_words(r, j) >> 12), step, start);
  return out;
}

// --- normal: Box-Muller on a pair of draws; the radius draw u1 is in (0, 1], the angle is
// reduced to a quadrant and |v| <= 1/8 turn by integer arithmetic, so no float range reduction.
template <class T>
FI_HD void box_muller(T u1, std::uint32_t quadrant, T v, T& z0, T& z1) {
  const T radius = fi_sqrt(T(-2) * stream_log(u1));
  T s, c, cos_t, sin_t;
  stream_sincos_2pi(v, s, c);
  quarter_turns(quadrant, s, c, cos_t, sin_t);
  z0 = radius * cos_t;
  z1 = radius * sin_t;
}

template <class T>
struct NormalOp {
  T mean;
  T std;
  // Clamp bounds after rounding: infinite for normal_, the interval's ends when a truncated
  // normal with both bounds beyond this op's reach is computed by it.
  T lo = -std::numeric_limits<T>::infinity();
  T hi = std::numeric_limits<T>::infinity();
  static constexpr int kPerBlock = Family<T>::kPerBlock;

  FI_HD Values<T, Family<T>::kPerBlock> block(Words4 r) const;
  template <class Out>
  FI_HD Out finish(T v) const {
    return round_and_clamp<Out>(v, lo, hi);
  }
};

template <>
FI_HD Values<float, 4> NormalOp<float>::block(Words4 r) const {
  Values<float, 4> out;
  FI_UNROLL
  for (int pair = 0; pair < 2; ++pair) {
    const std::uint32_t a = r.w[2 * pair], b = r.w[2 * pair + 1];
    // u1 = (a >> 1) 2^-31 + 2^-32 in (0, 1]: the tail reaches 6.66 sigma.
    const float u1 = madd(static_cast<float>(static_cast<std::int32_t>(a >> 1)), 0x1p-31f, 0x1p-32f);
    const std::int32_t k = static_cast<std::int32_t>(b >> 8);  // 24-bit angle, in 2^-24 turns
    const std::int32_t q = (k + (1 << 21)) >> 22;               // nearest quarter turn, 0..4
    const float v = static_cast<float>(k - (q << 22)) * 0x1p-24f;  // exact, |v| <= 1/8
    float z0, z1;
    box_muller(u1, static_cast<std::uint32_t>(q), v, z0, z1);
    out.v[2 * pair] = madd(z0, std, mean);
    out.v[2 * pair + 1] = madd(z1, std, mean);
  }
  return out;
}
template <>
FI_HD Values<double, 2> NormalOp<double>::block(Words4 r) const {
  // u1 = (2k + 1) 2^-53 with a 52-bit k (exact): the tail reaches 8.57 sigma.
  const double u1 = madd(u52_to_double(join_words(r, 0) >> 12), 0x1p-52, 0x1p-53);
  const std::int64_t k = static_cast<std::int64_t>(join_words(r, 1) >> 11);  // 53-bit angle
  const std::int64_t q = (k + (std::int64_t(1) << 50)) >> 51;
  const double v = s51_to_double(k - (q << 51)) * 0x1p-53;
  double z0, z1;
  box_muller(u1, static_cast<std::uint32_t>(q), v, z0, z1);
  return Values<double, 2>{{madd(z0, std, mean), madd(z1, std, mean)}};
}

// --- truncated normal by the inverse CDF, one draw per value, no rejection.
//
// The host reduces [a, b] to standard units [alpha, beta] and chooses a side: the value's tail
// mass t <= 1/2 is T0 * g with g = c_lo + u m_lo (lower side, negative z) or
// c_hi + (1 - u) m_hi (upper side), whichever is smaller; a side that cannot occur gets c = 2.
// Working with g and log(T0) keeps full relative precision in the tails, also when T0 itself
// underflows (an interval far out in one tail). Then z = -+ Phi^-1(t) via
// w = -log(4 t (1 - t)) and the quantile polynomials; the value is rounded to the output dtype
// and clamped to [lo, hi], the representable values nearest inside [a, b].
template <class T, bool kFar, bool kCentralOnly = false>
struct TruncNormalOp {
  T c_lo, m_lo, c_hi, m_hi;  // the two sides' affine maps of u
  T t0, log_t0;              // T0 and log(T0)
  T mean, std;
  T lo, hi;                  // clamp bounds, exactly representable in the output dtype
  // kFar: the interval reaches beyond the tail polynomial, so the far piece is evaluated too.
  // kCentralOnly: the host proved that every draw stays in the central piece (w < 5 with a
  // margin), so the tail piece, never selected, is not evaluated: the same bits, less work.
  static constexpr int kPerBlock = Family<T>::kPerBlock;

  FI_HD T from_uniform(T u) const {
    const T t_lo = madd(u, m_lo, c_lo);
    const T t_hi = madd(T(1) - u, m_hi, c_hi);
    const bool lower = t_lo < t_hi;
    const T g = lower ? t_lo : t_hi;
    const T t = g * t0;
    const T x = T(1) - T(2) * t;
    const T w = -log_t0 - stream_log((T(4) * g) * (T(1) - t));
    const T magnitude = x * quantile_factor<kFar, kCentralOnly>(w);
    return madd(lower ? -magnitude : magnitude, std, mean);
  }

  FI_HD Values<T, Family<T>::kPerBlock> block(Words4 r) const;

  template <class Out>
  FI_HD Out finish(T v) const {
    return round_and_clamp<Out>(v, lo, hi);
  }
};

// The uniform draw of the truncated normal: u = (2k + 1) 2^-24 from a 23-bit k (float family),
// (2k + 1) 2^-53 from a 52-bit k (float64). Exact, and so is 1 - u.
FI_HD float open_uniform(const Words4& r, int lane, float) {
  return static_cast<float>(static_cast<std::int32_t>(((r.w[lane] >> 9) << 1) | 1u)) * 0x1p-24f;
}
FI_HD double open_uniform(const Words4& r, int lane, double) {
  return madd(u52_to_double(join_words(r, lane) >> 12), 0x1p-52, 0x1p-53);
}

template <class T, bool kFar, bool kCentralOnly>
FI_HD Values<T, Family<T>::kPerBlock> TruncNormalOp<T, kFar, kCentralOnly>::block(Words4 r) const {
  Values<T, kPerBlock> out;
  FI_UNROLL
  for (int lane = 0; lane < kPerBlock; ++lane) out.v[lane] = from_uniform(open_uniform(r, lane, T()));
  return out;
}

FI_NAMESPACE_END
