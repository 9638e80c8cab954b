// A batch of fill requests made ready for a backend: every request checked before anything is
// written, its layout collapsed (csrc/common/layout.h), empty ones dropped, and the batch cut
// into segments whose requests write disjoint memory. A backend runs a segment's requests in any
// order (or all at once) and the segments one after another, which gives the result of the
// requests applied in order. Host code, shared by the CPU builds and the CUDA launchers.
//
// (Standard containers here hold only types of the per-build namespace: an instantiation over a
// shared type, compiled with -mavx2 in one build, could be the copy the linker keeps for all.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/distributions.h"
#include "common/layout.h"
#include "fill_dispatch.h"
#include "fill_request.h"

FI_NAMESPACE_BEGIN

struct PreparedFill {
  std::size_t index = 0;    // position in the batch
  int op = 0;
  int dtype = 0;
  std::uintptr_t data = 0;
  StreamKey key{};
  const double* params = nullptr;  // kRequestMaxParams doubles
  Layout layout;                   // numel > 0
  std::int64_t first_tile = 0;     // scratch for the backend
};

struct FillSegment {
  std::size_t begin, end;  // [begin, end) of the prepared fills
};

inline int dtype_bytes(int dtype) {
  static const int kBytes[] = {4, 8, 2, 2};  // DtypeCode order
  return kBytes[dtype];
}

// Checks every request and returns the non-empty ones; throws std::invalid_argument (nothing
// written) for the first bad one.
inline std::vector<PreparedFill> prepare_fills(const FillBatch& batch) {
  std::vector<PreparedFill> out;
  out.reserve(batch.count);
  std::size_t dim = 0;
  for (std::size_t i = 0; i < batch.count; ++i) {
    auto fail = [&](const std::string& what) {
      const std::string which = batch.count > 1 ? "fill request " + std::to_string(i) + ": " : "";
      throw std::invalid_argument("fastinit: " + which + what);
    };
    const int ndim = batch.ndim[i];
    if (ndim < 0 || ndim > kRequestMaxDims || static_cast<std::size_t>(ndim) > batch.dims - dim)
      fail("bad number of dims " + std::to_string(ndim));
    if (!valid_op(batch.op[i])) fail("unknown fill op code " + std::to_string(batch.op[i]));
    if (!valid_dtype(batch.dtype[i])) fail("unknown dtype code " + std::to_string(batch.dtype[i]));
    const std::int64_t record = batch.param_index[i];
    if (record < 0 || static_cast<std::uint64_t>(record) >= batch.param_records)
      fail("parameter record " + std::to_string(record) + " out of range");
    for (int d = 0; d < ndim; ++d)
      if (batch.shape[dim + d] < 0) fail("negative size");
    PreparedFill p;
    if (!make_layout(ndim, batch.shape + dim, batch.mem_stride + dim, batch.logical_stride + dim,
                     batch.logical_base[i], p.layout))
      fail("the view has more than 16 non-mergeable dims");
    dim += static_cast<std::size_t>(ndim);
    if (p.layout.numel == 0) continue;
    p.index = i;
    p.op = batch.op[i];
    p.dtype = batch.dtype[i];
    p.data = batch.data[i];
    p.key = StreamKey{static_cast<std::uint32_t>(batch.key[i]), static_cast<std::uint32_t>(batch.key[i] >> 32),
                      batch.purpose[i]};
    p.params = batch.params + record * kRequestMaxParams;
    out.push_back(p);
  }
  if (dim != batch.dims) throw std::invalid_argument("fastinit: the dims of the requests do not add up");
  return out;
}

// The bytes a fill may touch: [lo, hi) around every element of its layout.
struct FillExtent {
  std::uintptr_t lo, hi;
  std::size_t order;  // position among the prepared fills
};

inline FillExtent fill_extent(const PreparedFill& p, std::size_t order) {
  std::int64_t first = 0, last = 0;  // element offsets of the lowest and highest address
  for (int d = 0; d < p.layout.ndim; ++d) {
    const std::int64_t span = (p.layout.shape[d] - 1) * p.layout.mem_stride[d];
    (span < 0 ? first : last) += span;
  }
  const std::int64_t bytes = dtype_bytes(p.dtype);
  return FillExtent{p.data + static_cast<std::uintptr_t>(first * bytes),
                    p.data + static_cast<std::uintptr_t>((last + 1) * bytes), order};
}

// Consecutive segments in which no two fills' extents intersect: one segment unless the batch
// writes some memory twice (the same tensor twice, a view and its base), then cut so that
// every pair that intersects lies in two segments, in order.
inline std::vector<FillSegment> disjoint_segments(const std::vector<PreparedFill>& fills) {
  const std::size_t n = fills.size();
  std::vector<FillSegment> segments;
  if (n == 0) return segments;
  std::vector<FillExtent> by_start;
  by_start.reserve(n);
  for (std::size_t i = 0; i < n; ++i) by_start.push_back(fill_extent(fills[i], i));
  std::sort(by_start.begin(), by_start.end(),
            [](const FillExtent& a, const FillExtent& b) { return a.lo < b.lo; });
  // latest[j]: the last fill before j (in order) whose extent intersects j's, or -1. A sweep by
  // start address keeps the extents still open; their count is the overlap depth (small).
  struct Latest {
    std::int64_t value = -1;
  };
  std::vector<Latest> latest(n);
  std::vector<FillExtent> open;
  for (const FillExtent& e : by_start) {
    open.erase(std::remove_if(open.begin(), open.end(), [&](const FillExtent& o) { return o.hi <= e.lo; }),
               open.end());
    for (const FillExtent& o : open) {  // o.lo <= e.lo < o.hi: they intersect
      const std::size_t a = std::min(o.order, e.order), b = std::max(o.order, e.order);
      latest[b].value = std::max(latest[b].value, static_cast<std::int64_t>(a));
    }
    open.push_back(e);
  }
  std::size_t begin = 0;
  for (std::size_t j = 1; j < n; ++j) {
    if (latest[j].value >= static_cast<std::int64_t>(begin)) {
      segments.push_back(FillSegment{begin, j});
      begin = j;
    }
  }
  segments.push_back(FillSegment{begin, n});
  return segments;
}

// A single request as a batch of one.
struct SingleFillBatch {
  std::uint64_t key;
  std::int64_t param_index = 0;
  FillBatch batch;

  explicit SingleFillBatch(const FillRequest& r)
      : key(static_cast<std::uint64_t>(r.k0) | (static_cast<std::uint64_t>(r.k1) << 32)) {
    batch.count = 1;
    batch.op = &r.op;
    batch.dtype = &r.dtype;
    batch.data = &r.data;
    batch.ndim = &r.ndim;
    batch.dims = r.ndim < 0 ? 0 : static_cast<std::size_t>(r.ndim);
    batch.shape = r.shape;
    batch.mem_stride = r.mem_stride;
    batch.logical_stride = r.logical_stride;
    batch.logical_base = &r.logical_base;
    batch.key = &key;
    batch.purpose = &r.purpose;
    batch.param_index = &param_index;
    batch.params = r.params;
    batch.param_records = 1;
  }
  SingleFillBatch(const SingleFillBatch&) = delete;
  SingleFillBatch& operator=(const SingleFillBatch&) = delete;
};

FI_NAMESPACE_END
