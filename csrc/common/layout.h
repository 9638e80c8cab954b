// A strided view with a logical (row-major, possibly offset) index per element. The memory
// strides say where an element lives; the logical strides and base say which stream element it
// is: for a whole tensor the row-major strides of its own shape, for a shard those of the
// global tensor plus the shard's offset. Shared by the CPU and CUDA launchers.
#pragma once
#include "host_device.h"

FI_NAMESPACE_BEGIN

constexpr int kMaxDims = 16;

// Adds to mem_offset and logical the offsets of the element with row-major index `index` over
// the first `ndim` dims of (shape, mem_stride, logical_stride).
FI_HD void unravel(std::int64_t index, int ndim, const std::int64_t* shape, const std::int64_t* mem_stride,
                   const std::int64_t* logical_stride, std::int64_t& mem_offset, std::uint64_t& logical) {
  for (int d = ndim - 1; d >= 0; --d) {
    const std::int64_t i = index % shape[d];
    index /= shape[d];
    mem_offset += i * mem_stride[d];
    logical += static_cast<std::uint64_t>(i * logical_stride[d]);
  }
}

struct Layout {
  int ndim = 0;
  std::int64_t numel = 1;
  std::uint64_t logical_base = 0;
  std::int64_t shape[kMaxDims];
  std::int64_t mem_stride[kMaxDims];      // in elements, may be negative
  std::int64_t logical_stride[kMaxDims];  // in stream elements

  // Memory offset and logical index of the first element of run `run` (a run is one sweep of
  // the last dimension).
  FI_HD void run_start(std::int64_t run, std::int64_t& mem_offset, std::uint64_t& logical) const {
    mem_offset = 0;
    logical = logical_base;
    unravel(run, ndim - 1, shape, mem_stride, logical_stride, mem_offset, logical);
  }
};

// Drop size-1 dims and merge neighbours that are contiguous in both memory and logical order.
// Returns false when the shape has more than kMaxDims dims after that.
inline bool make_layout(int ndim, const std::int64_t* shape, const std::int64_t* mem_stride,
                        const std::int64_t* logical_stride, std::uint64_t logical_base,
                        Layout& out) {
  out = Layout{};
  out.logical_base = logical_base;
  out.numel = 1;
  for (int d = 0; d < ndim; ++d) out.numel *= shape[d];
  if (out.numel == 0) return true;
  int n = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    if (n > 0 && out.mem_stride[n - 1] == mem_stride[d] * shape[d] &&
        out.logical_stride[n - 1] == logical_stride[d] * shape[d]) {
      out.shape[n - 1] *= shape[d];
      out.mem_stride[n - 1] = mem_stride[d];
      out.logical_stride[n - 1] = logical_stride[d];
      continue;
    }
    if (n == kMaxDims) return false;
    out.shape[n] = shape[d];
    out.mem_stride[n] = mem_stride[d];
    out.logical_stride[n] = logical_stride[d];
    ++n;
  }
  out.ndim = n;
  return true;
}

FI_NAMESPACE_END
