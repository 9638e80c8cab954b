// The output dtypes: which precision family computes them and how a value is rounded to them.
#pragma once
#include "fp_ops.h"

FI_NAMESPACE_BEGIN

struct BFloat16 {
  std::uint16_t bits;
};
struct Float16 {
  std::uint16_t bits;
};

// Dtype codes shared with Python (fastinit/_dtypes.py).
enum DtypeCode : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

template <class Out>
struct OutTraits;

template <>
struct OutTraits<float> {
  using Compute = float;
  FI_HD static float store(float v) { return v; }
  FI_HD static float load(float v) { return v; }
};

template <>
struct OutTraits<double> {
  using Compute = double;
  FI_HD static double store(double v) { return v; }
  FI_HD static double load(double v) { return v; }
};

template <>
struct OutTraits<BFloat16> {
  using Compute = float;
  FI_HD static BFloat16 store(float v) { return BFloat16{bf16_bits_rne(v)}; }
  FI_HD static float load(BFloat16 v) { return bf16_to_float(v.bits); }
};

template <>
struct OutTraits<Float16> {
  using Compute = float;
  FI_HD static Float16 store(float v) { return Float16{f16_bits_rne(v)}; }
  FI_HD static float load(Float16 v) { return f16_to_float(v.bits); }
};

// v rounded to Out, returned in the compute type (exactly representable there).
template <class Out>
FI_HD typename OutTraits<Out>::Compute round_to(typename OutTraits<Out>::Compute v) {
  return OutTraits<Out>::load(OutTraits<Out>::store(v));
}

FI_NAMESPACE_END
