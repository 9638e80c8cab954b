// A fill call as the binding hands it to a backend: plain data only (no member functions), so
// it is the same type in every instruction-set build.
#pragma once
#include <cstdint>

namespace fastinit {

enum OpCode : int { kOpUniform = 0, kOpNormal = 1, kOpTruncNormal = 2 };

constexpr int kRequestMaxDims = 64;  // as many dims as torch allows
constexpr int kRequestMaxParams = 16;

struct FillRequest {
  int op = 0;
  int dtype = 0;             // DtypeCode (csrc/common/out_types.h)
  std::uintptr_t data = 0;   // address of the element with all indices zero
  int ndim = 0;
  std::int64_t shape[kRequestMaxDims];
  std::int64_t mem_stride[kRequestMaxDims];      // elements
  std::int64_t logical_stride[kRequestMaxDims];  // stream elements
  std::uint64_t logical_base = 0;
  std::uint32_t k0 = 0, k1 = 0, purpose = 0;
  double params[kRequestMaxParams];  // per op, see fastinit/_stream_params.py
};

}  // namespace fastinit
