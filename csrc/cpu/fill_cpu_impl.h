// Body of one instruction-set build of the CPU fill: from a FillRequest to the templated kernel.
// Included once per build by cpu_<isa>.cpp with FASTINIT_ISA set.
#pragma once
#include <stdexcept>

#include "../fill_request.h"
#include "fill_kernels.h"

FI_NAMESPACE_BEGIN
namespace cpu {

template <class Out, class Op>
void run_op(const Op& op, const FillRequest& request, const Layout& layout) {
  const StreamKey key{request.k0, request.k1, request.purpose};
  fill_layout(op, key, layout, reinterpret_cast<Out*>(request.data));
}

template <class Out>
void run_for_dtype(const FillRequest& request, const Layout& layout) {
  using T = typename OutTraits<Out>::Compute;
  const double* p = request.params;
  auto c = [](double v) { return static_cast<T>(v); };
  switch (request.op) {
    case kOpUniform:
      run_op<Out>(UniformOp<T>{c(p[0]), c(p[1]), c(p[2]), c(p[3])}, request, layout);
      return;
    case kOpNormal:
      run_op<Out>(NormalOp<T>{c(p[0]), c(p[1]), c(p[2]), c(p[3])}, request, layout);
      return;
    case kOpTruncNormal:
      if (p[10] != 0.0)
        run_op<Out>(TruncNormalOp<T, true>{c(p[0]), c(p[1]), c(p[2]), c(p[3]), c(p[4]), c(p[5]),
                                           c(p[6]), c(p[7]), c(p[8]), c(p[9])},
                    request, layout);
      else if (p[11] != 0.0)
        run_op<Out>(TruncNormalOp<T, false, true>{c(p[0]), c(p[1]), c(p[2]), c(p[3]), c(p[4]),
                                                  c(p[5]), c(p[6]), c(p[7]), c(p[8]), c(p[9])},
                    request, layout);
      else
        run_op<Out>(TruncNormalOp<T, false>{c(p[0]), c(p[1]), c(p[2]), c(p[3]), c(p[4]), c(p[5]),
                                            c(p[6]), c(p[7]), c(p[8]), c(p[9])},
                    request, layout);
      return;
    default:
      throw std::invalid_argument("fastinit: unknown fill op code " + std::to_string(request.op));
  }
}

inline void cpu_fill_impl(const FillRequest& request) {
  if (request.ndim < 0 || request.ndim > kRequestMaxDims)
    throw std::invalid_argument("fastinit: bad number of dims " + std::to_string(request.ndim));
  Layout layout;
  if (!make_layout(request.ndim, request.shape, request.mem_stride, request.logical_stride,
                   request.logical_base, layout))
    throw std::invalid_argument("fastinit: the view has more than 16 non-mergeable dims");
  if (layout.numel == 0) return;
  switch (request.dtype) {
    case kFloat32: return run_for_dtype<float>(request, layout);
    case kFloat64: return run_for_dtype<double>(request, layout);
    case kFloat16: return run_for_dtype<Float16>(request, layout);
    case kBFloat16: return run_for_dtype<BFloat16>(request, layout);
    default:
      throw std::invalid_argument("fastinit: unknown dtype code " + std::to_string(request.dtype));
  }
}

}  // namespace cpu
FI_NAMESPACE_END
