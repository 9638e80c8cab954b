// The elementary functions of the random stream: log, sin/cos of 2*pi*v, and the normal
// quantile. Own polynomials (stream_v1_polynomials.h), no libm, the same bits on every backend.
#pragma once
#include "fp_ops.h"
#include "stream_v1_polynomials.h"

FI_NAMESPACE_BEGIN

// Natural log of a positive normal float. x = m * 2^e with m in [sqrt(1/2), sqrt(2)) found
// by integer arithmetic on the bits; log(m) = f + f^2 P(f) with f = m - 1 (exact).
FI_HD float stream_log(float x) {
  const std::int32_t e = static_cast<std::int32_t>(bits_of(x) - 0x3f3504f3u) >> 23;
  const float m = float_of(bits_of(x) - (static_cast<std::uint32_t>(e) << 23));
  const float f = m - 1.0f;
  const float log_m = madd(f * f, poly::log1p_f32(f), f);
  const float ef = static_cast<float>(e);
  // ln 2 split so that e * LN2_HI is exact.
  return madd(ef, 0x1.62e4p-1f, madd(ef, 0x1.7f7d1cp-20f, log_m));
}

// double: log(m) = 2 atanh(s) with s = f / (2 + f), |s| <= 3 - 2 sqrt(2).
FI_HD double stream_log(double x) {
  const std::int64_t e = static_cast<std::int64_t>(bits_of(x) - 0x3fe6a09e667f3bcdull) >> 52;
  const double m = double_of(bits_of(x) - (static_cast<std::uint64_t>(e) << 52));
  const double f = m - 1.0;
  const double s = f / (2.0 + f);
  const double y = s * s;
  const double log_m = madd(s * y, poly::atanh_f64(y), 2.0 * s);
  const double ed = s51_to_double(e);
  return madd(ed, 0x1.62e42fefa4000p-1, madd(ed, -0x1.8432a1b0e2634p-43, log_m));
}

// sin and cos of 2*pi*v for |v| <= 1/8.
FI_HD void stream_sincos_2pi(float v, float& s, float& c) {
  const float y = v * v;
  s = v * poly::sin2pi_f32(y);
  c = poly::cos2pi_f32(y);
}
FI_HD void stream_sincos_2pi(double v, double& s, double& c) {
  const double y = v * v;
  s = v * poly::sin2pi_f64(y);
  c = poly::cos2pi_f64(y);
}

// Rotate (cos, sin) of the reduced angle by `quadrant` quarter turns.
template <class T>
FI_HD void quarter_turns(std::uint32_t quadrant, T s, T c, T& cos_out, T& sin_out) {
  const bool swap = (quadrant & 1u) != 0;
  const T cs = swap ? s : c;
  const T sn = swap ? c : s;
  cos_out = (((quadrant + 1u) & 2u) != 0) ? -cs : cs;  // quadrants 1 and 2
  sin_out = ((quadrant & 2u) != 0) ? -sn : sn;          // quadrants 2 and 3
}

// Thresholds between the pieces of the quantile, in w = -log(4 t (1 - t)) and sw = sqrt(w).
template <class T>
struct QuantilePieces;
template <>
struct QuantilePieces<float> {
  static constexpr float kCentralW = 5.0f;  // w < 5: central polynomial
  static constexpr float kFarSw = 4.0f;     // sw >= 4: far polynomial (far mode only)
};
template <>
struct QuantilePieces<double> {
  static constexpr double kCentralW = 6.25;
  static constexpr double kTail2Sw = 4.0;  // tail polynomial below, tail2 above
  static constexpr double kFarSw = 6.0;
};

// sqrt(2) * erfinv(x) / x as a function of w (and sw = sqrt(w)); kFar enables the piece for
// the extreme tail, needed only when the whole interval lies beyond a few sigma.
template <bool kFar, bool kCentralOnly = false>
FI_HD float quantile_factor(float w) {
  if (kCentralOnly) return poly::ndtri_central_f32(w);
  const float sw = fi_sqrt(w);
  const float g = (w < QuantilePieces<float>::kCentralW) ? poly::ndtri_central_f32(w)
                                                   : poly::ndtri_tail_f32(sw);
  if (!kFar) return g;
  return (sw >= QuantilePieces<float>::kFarSw) ? sw * poly::ndtri_far_f32(1.0f / sw) : g;
}
template <bool kFar, bool kCentralOnly = false>
FI_HD double quantile_factor(double w) {
  if (kCentralOnly) return poly::ndtri_central_f64(w);
  const double sw = fi_sqrt(w);
  const double g = (w < QuantilePieces<double>::kCentralW) ? poly::ndtri_central_f64(w)
             : (sw < QuantilePieces<double>::kTail2Sw) ? poly::ndtri_tail_f64(sw)
                                                       : poly::ndtri_tail2_f64(sw);
  if (!kFar) return g;
  return (sw >= QuantilePieces<double>::kFarSw) ? sw * poly::ndtri_far_f64(1.0 / sw) : g;
}

FI_NAMESPACE_END
