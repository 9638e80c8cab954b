// Body of one instruction-set build of the CPU fill: from a batch of requests to the templated
// kernels. Included once per build by cpu_<isa>.cpp with FASTINIT_ISA set.
//
// One OpenMP parallel region per segment of the batch (fill_batch.h: requests that write
// disjoint memory, usually the whole batch) over the tiles of all its requests, handed out
// dynamically: a thread that drew a small tensor's tile takes the next, so small and large
// tensors mix without idle threads. A single fill is a batch of one (its tiles split statically).
#pragma once
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../fill_batch.h"
#include "../fill_dispatch.h"
#include "../fill_request.h"
#include "fill_kernels.h"
#include "omp_compat.h"

FI_NAMESPACE_BEGIN
namespace cpu {

inline std::int64_t tiles_of(const PreparedFill& p) {
  return (p.layout.numel + kTileElements - 1) / kTileElements;
}

// Tile `tile` of a prepared fill.
inline void fill_tile(const PreparedFill& p, std::int64_t tile) {
  const std::int64_t begin = tile * kTileElements;
  const std::int64_t end = std::min(begin + kTileElements, p.layout.numel);
  visit_fill<true>(p.op, p.dtype, p.params, [&](const auto& op, auto* out_type) {
    using Out = std::remove_pointer_t<decltype(out_type)>;
    fill_elements(op, p.key, p.layout, reinterpret_cast<Out*>(p.data), begin, end);
  });
}

// All tiles of fills[0, count), in parallel; fills[i].first_tile is set here.
inline void fill_segment(PreparedFill* fills, std::size_t count, int threads) {
  std::int64_t tiles = 0;
  for (std::size_t i = 0; i < count; ++i) {
    fills[i].first_tile = tiles;
    tiles += tiles_of(fills[i]);
  }
#if defined(FASTINIT_HAS_OPENMP)
  const int nt = threads > 0 ? threads : omp_get_max_threads();
#else
  (void)threads;
#endif
  auto run_tile = [fills, count](std::int64_t tile) {
    const PreparedFill* p = std::upper_bound(fills, fills + count, tile, [](std::int64_t t, const PreparedFill& f) {
      return t < f.first_tile;
    }) - 1;
    fill_tile(*p, tile - p->first_tile);
  };
  if (count == 1) {  // one tensor: a contiguous share of its tiles per thread, as few
                     // neighbouring tiles on two threads as possible (a transposed view's
                     // neighbouring tiles write the same cache lines)
    FI_OMP_PARALLEL_FOR_STATIC(nt, tiles > 1)
    for (std::int64_t tile = 0; tile < tiles; ++tile) run_tile(tile);
  } else {
    FI_OMP_PARALLEL_FOR_DYNAMIC(nt, tiles > 1)
    for (std::int64_t tile = 0; tile < tiles; ++tile) run_tile(tile);
  }
}

// threads: OpenMP threads, 0 for the default. Throws std::invalid_argument (nothing written)
// for a bad request.
inline void cpu_fill_many_impl(const FillBatch& batch, int threads) {
  std::vector<PreparedFill> fills = prepare_fills(batch);
  for (const FillSegment& s : disjoint_segments(fills))
    fill_segment(fills.data() + s.begin, s.end - s.begin, threads);
}

inline void cpu_fill_impl(const FillRequest& request) {
  const SingleFillBatch single(request);
  cpu_fill_many_impl(single.batch, 0);
}

}  // namespace cpu
FI_NAMESPACE_END
