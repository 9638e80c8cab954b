// A statistics call as the binding hands it to a backend: plain data only (no member
// functions), so it is the same type in every instruction-set build and in the CUDA launcher.
#pragma once
#include <cstdint>

#include "fill_request.h"  // kRequestMaxDims

namespace fastinit {

// One tensor to reduce: any strided layout (strides in elements, may be negative or zero).
struct StatsTensor {
  int dtype = 0;            // DtypeCode (csrc/common/out_types.h)
  std::uintptr_t data = 0;  // address of the element with all indices zero
  int ndim = 0;
  std::int64_t shape[kRequestMaxDims];
  std::int64_t stride[kRequestMaxDims];
};

struct StatsRequest {
  const StatsTensor* tensors = nullptr;
  int count = 0;
  int bins = 0;                    // 0: no histogram
  const double* ranges = nullptr;  // 2 * count: (lo, hi) per tensor; nullptr: numpy's default
                                   // range per tensor (a first pass finds it)
};

// The raw record of a tensor: kStatsHead doubles (csrc/common/stats_accumulator.h), then bins.
constexpr int kStatsRecordHead = 13;

}  // namespace fastinit
