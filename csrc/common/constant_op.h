// A constant fill in the shape of the stream operations (distributions.h), so that the same
// kernels write it: every lane is `value`, and finish rounds it to the output dtype as torch's
// fill_ rounds a Python float (to float32 first, then to a 16-bit format). It draws nothing.
#pragma once
#include "distributions.h"

FI_NAMESPACE_BEGIN

template <class T>
struct ConstantOp {
  T value;
  static constexpr int kPerBlock = Family<T>::kPerBlock;

  FI_HD Values<T, Family<T>::kPerBlock> block(Words4) const {
    Values<T, kPerBlock> out;
    FI_UNROLL
    for (int k = 0; k < kPerBlock; ++k) out.v[k] = value;
    return out;
  }
  template <class Out>
  FI_HD Out finish(T v) const {
    return OutTraits<Out>::store(v);
  }
};

template <class Op>
struct IsConstantOp {
  static constexpr bool value = false;
};
template <class T>
struct IsConstantOp<ConstantOp<T>> {
  static constexpr bool value = true;
};

FI_NAMESPACE_END
