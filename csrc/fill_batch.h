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

// Layouts whose offsets are listed to prove them disjoint when the strides alone do not.
constexpr std::int64_t kOverlapCheckLimit = std::int64_t{1} << 26;

// Whether no two elements of a collapsed layout share a memory location. Proven from the strides
// when, by increasing |stride|, each dim's stride is at least the span of the dims before it
// (every dense, transposed, sliced or stepped view); otherwise the offsets are listed and
// sorted (the rare interleaved views). Throws for a layout too large to list.
inline bool layout_is_disjoint(const Layout& l) {
  std::int64_t order[kMaxDims];
  for (int d = 0; d < l.ndim; ++d) order[d] = d;
  auto magnitude = [&](std::int64_t d) { return l.mem_stride[d] < 0 ? -l.mem_stride[d] : l.mem_stride[d]; };
  std::sort(order, order + l.ndim, [&](std::int64_t a, std::int64_t b) { return magnitude(a) < magnitude(b); });
  std::int64_t span = 0;  // largest offset difference within the dims so far
  bool proven = true;
  for (int i = 0; i < l.ndim; ++i) {
    const std::int64_t d = order[i];
    if (magnitude(d) <= span) {
      proven = false;
      break;
    }
    span += (l.shape[d] - 1) * magnitude(d);
  }
  if (proven) return true;
  if (l.numel > kOverlapCheckLimit)
    throw std::invalid_argument("fastinit: cannot prove that the view's " + std::to_string(l.numel) +
                                " elements are distinct memory locations; clone() it first");
  struct Offset {  // a type of this build's namespace: no template instance shared across builds
    std::int64_t value;
  };
  std::vector<Offset> offsets(static_cast<std::size_t>(l.numel));
  for (std::int64_t i = 0; i < l.numel; ++i) {
    std::int64_t mem = 0;
    std::uint64_t unused = 0;
    unravel(i, l.ndim, l.shape, l.mem_stride, l.logical_stride, mem, unused);
    offsets[static_cast<std::size_t>(i)].value = mem;
  }
  std::sort(offsets.begin(), offsets.end(), [](const Offset& a, const Offset& b) { return a.value < b.value; });
  return std::adjacent_find(offsets.begin(), offsets.end(),
                            [](const Offset& a, const Offset& b) { return a.value == b.value; }) == offsets.end();
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
    const std::uintptr_t data = batch.data[i];
    if (data == 0) fail("null data pointer");  // (unaligned addresses are fine on the CPU)
    if (!layout_is_disjoint(p.layout))
      fail("unsupported operation: more than one element of the written-to tensor refers to a "
           "single memory location");
    p.index = i;
    p.op = batch.op[i];
    p.dtype = batch.dtype[i];
    p.data = batch.data[i];
    p.key = StreamKey{static_cast<std::uint32_t>(batch.key[i]), static_cast<std::uint32_t>(batch.key[i] >> 32),
                      batch.purpose[i]};
    p.params = batch.params + record * kRequestMaxParams;
    if (batch.bounds != nullptr) {
      const FillExtent e = fill_extent(p, 0);
      if (e.lo < batch.bounds[2 * i] || e.hi > batch.bounds[2 * i + 1] || e.lo > e.hi)
        fail("the view's strides reach outside its storage");
    }
    out.push_back(p);
  }
  if (dim != batch.dims) throw std::invalid_argument("fastinit: the dims of the requests do not add up");
  return out;
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

// The checks of a request, for a ContiguousFill (throws std::invalid_argument).
inline void check_contiguous_fill(const ContiguousFill& f) {
  if (!valid_op(f.op)) throw std::invalid_argument("fastinit: unknown fill op code " + std::to_string(f.op));
  if (!valid_dtype(f.dtype)) throw std::invalid_argument("fastinit: unknown dtype code " + std::to_string(f.dtype));
  if (f.numel < 0) throw std::invalid_argument("fastinit: negative size");
  if (f.numel > 0 && f.data == 0) throw std::invalid_argument("fastinit: null data pointer");
  if (f.params == nullptr) throw std::invalid_argument("fastinit: no parameters");
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
