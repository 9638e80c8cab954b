// From a request's op code, dtype code and host-computed parameters (fastinit/_stream_params.py)
// to the operation object and output type the kernels are templated on. Host code, shared by
// the CPU builds and the CUDA launchers.
#pragma once
#include <stdexcept>
#include <string>

#include "common/constant_op.h"
#include "common/distributions.h"
#include "fill_request.h"

FI_NAMESPACE_BEGIN

// The operation of type Op from its parameters, rounded to its compute type.
template <class Op>
struct OpFromParams;
template <class T>
struct OpFromParams<UniformOp<T>> {
  static UniformOp<T> make(const double* p) {  // step, start, lo, hi
    return UniformOp<T>{T(p[0]), T(p[1]), T(p[2]), T(p[3])};
  }
};
template <class T>
struct OpFromParams<NormalOp<T>> {
  static NormalOp<T> make(const double* p) {  // mean, std, lo, hi
    return NormalOp<T>{T(p[0]), T(p[1]), T(p[2]), T(p[3])};
  }
};
template <class T, bool kFar, bool kCentralOnly>
struct OpFromParams<TruncNormalOp<T, kFar, kCentralOnly>> {
  static TruncNormalOp<T, kFar, kCentralOnly> make(const double* p) {
    return TruncNormalOp<T, kFar, kCentralOnly>{T(p[0]), T(p[1]), T(p[2]), T(p[3]), T(p[4]),
                                                T(p[5]), T(p[6]), T(p[7]), T(p[8]), T(p[9])};
  }
};
template <class T>
struct OpFromParams<ConstantOp<T>> {
  static ConstantOp<T> make(const double* p) { return ConstantOp<T>{T(p[0])}; }
};

template <class Op>
Op op_from_params(const double* p) {
  return OpFromParams<Op>::make(p);
}

inline bool valid_op(int op) { return op >= kOpUniform && op <= kOpConstant; }
inline bool valid_dtype(int dtype) { return dtype >= kFloat32 && dtype <= kBFloat16; }

// Calls f(op, static_cast<Out*>(nullptr)) with the request's operation in the compute type of
// its output type Out. A truncated normal whose parameters say far mode (p[10]) takes the far
// variant; with kCentralOnly, one whose draws all stay in the central piece (p[11], a hint)
// takes the central-only variant (the same bits, less work; a variant more to compile).
template <bool kCentralOnly, class Out, class F>
void visit_op(int op, const double* p, F&& f) {
  using T = typename OutTraits<Out>::Compute;
  Out* const out = nullptr;
  switch (op) {
    case kOpUniform: return f(op_from_params<UniformOp<T>>(p), out);
    case kOpNormal: return f(op_from_params<NormalOp<T>>(p), out);
    case kOpTruncNormal:
      if (p[10] != 0.0) return f(op_from_params<TruncNormalOp<T, true>>(p), out);
      if constexpr (kCentralOnly)
        if (p[11] != 0.0) return f(op_from_params<TruncNormalOp<T, false, true>>(p), out);
      return f(op_from_params<TruncNormalOp<T, false>>(p), out);
    case kOpConstant: return f(op_from_params<ConstantOp<T>>(p), out);
    default: throw std::invalid_argument("fastinit: unknown fill op code " + std::to_string(op));
  }
}

template <bool kCentralOnly, class F>
void visit_fill(int op, int dtype, const double* p, F&& f) {
  switch (dtype) {
    case kFloat32: return visit_op<kCentralOnly, float>(op, p, f);
    case kFloat64: return visit_op<kCentralOnly, double>(op, p, f);
    case kFloat16: return visit_op<kCentralOnly, Float16>(op, p, f);
    case kBFloat16: return visit_op<kCentralOnly, BFloat16>(op, p, f);
    default: throw std::invalid_argument("fastinit: unknown dtype code " + std::to_string(dtype));
  }
}

FI_NAMESPACE_END
