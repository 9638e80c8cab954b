// Body of one instruction-set build of the CPU fill: from a batch of requests to the templated
// kernels. Included once per build by cpu_<isa>.cpp with FASTINIT_ISA set.
//
// One parallel loop (thread_pool.h) per segment of the batch (fill_batch.h: requests that write
// disjoint memory, usually the whole batch) over the tiles of all its requests, handed out
// dynamically: a thread that drew a small tensor's tile takes the next, so small and large
// tensors mix without idle threads. A single fill is a batch of one.
#pragma once
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../fill_batch.h"
#include "../fill_dispatch.h"
#include "../fill_request.h"
#include "fill_kernels.h"
#include "thread_pool.h"

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

// Elements a thread must get before another thread is asked to help. Waking a worker costs
// tens of microseconds, and on a busy machine a woken worker may run late or be preempted
// holding a tile (2 busy cores, normal_ 512x512: p90 7 ms on 2 threads, 0.5 ms on 1): below
// about a millisecond of work the one thread is the better bet.
constexpr std::int64_t kParallelGrain = std::int64_t{1} << 19;
// Tiles between two checks for an interrupt (Ctrl-C), so a fill of gigabytes can be stopped.
constexpr std::int64_t kInterruptTiles = 1024;

struct SegmentWork {
  const PreparedFill* fills;
  std::size_t count;
  std::int64_t first_tile;  // of this chunk
  std::int64_t tiles;       // in this chunk
  std::int64_t per_task;    // tiles per task
};

// A task: tiles [first + t * per_task, ...) of the chunk, each found among the fills.
inline void run_tasks(void* ctx, pool::TaskSource& tasks) {
  const SegmentWork& w = *static_cast<const SegmentWork*>(ctx);
  std::int64_t t = 0;
  while (tasks.next(t)) {
    const std::int64_t begin = w.first_tile + t * w.per_task;
    const std::int64_t end = std::min(begin + w.per_task, w.first_tile + w.tiles);
    for (std::int64_t tile = begin; tile < end; ++tile) {
      const PreparedFill* p = std::upper_bound(w.fills, w.fills + w.count, tile,
                                               [](std::int64_t x, const PreparedFill& f) {
                                                 return x < f.first_tile;
                                               }) - 1;
      fill_tile(*p, tile - p->first_tile);
    }
  }
}

inline std::int64_t elements_of(const PreparedFill* fills, std::size_t count) {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < count; ++i) n += fills[i].layout.numel;
  return n;
}

// How many threads a call of `elements` elements may use: each must get kParallelGrain.
inline int threads_for(std::int64_t elements, int threads) {
  if (threads <= 0) threads = pool::default_threads();
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, elements / kParallelGrain)));
}

// All tiles of fills[0, count), in parallel; fills[i].first_tile is set here. Tasks are single
// tiles when several tensors mix (a thread that drew a small tensor's tile takes the next), and
// runs of neighbouring tiles for one tensor (a transposed view's neighbouring tiles write the
// same cache lines: as few of them on two threads as possible).
inline void fill_segment(PreparedFill* fills, std::size_t count, const RunControl& control) {
  std::int64_t tiles = 0;
  for (std::size_t i = 0; i < count; ++i) {
    fills[i].first_tile = tiles;
    tiles += tiles_of(fills[i]);
  }
  const int threads = threads_for(elements_of(fills, count), control.threads);
  for (std::int64_t first = 0; first < tiles; first += kInterruptTiles) {
    if (first > 0 && control.interrupted != nullptr && control.interrupted(control.ctx))
      throw Interrupted();
    SegmentWork work{fills, count, first, std::min(kInterruptTiles, tiles - first), 1};
    if (count == 1) work.per_task = std::max<std::int64_t>(1, work.tiles / (4 * threads));
    const std::int64_t tasks = (work.tiles + work.per_task - 1) / work.per_task;
    pool::run(threads, tasks, run_tasks, &work);
  }
}

// Throws std::invalid_argument (nothing written) for a bad request, Interrupted when
// control.interrupted says so between chunks (the chunks before it are written).
inline void cpu_fill_many_impl(const FillBatch& batch, const RunControl& control) {
  std::vector<PreparedFill> fills = prepare_fills(batch);
  for (const FillSegment& s : disjoint_segments(fills))
    fill_segment(fills.data() + s.begin, s.end - s.begin, control);
}

inline void cpu_fill_impl(const FillRequest& request, const RunControl& control) {
  const SingleFillBatch single(request);
  cpu_fill_many_impl(single.batch, control);
}

// A contiguous tensor of numel elements, logical index = memory index (the common case, without
// building a request): checked like a request.
inline void cpu_fill_contiguous_impl(const ContiguousFill& f, const RunControl& control) {
  check_contiguous_fill(f);
  if (f.numel == 0) return;
  PreparedFill p;
  p.op = f.op;
  p.dtype = f.dtype;
  p.data = f.data;
  p.key = StreamKey{static_cast<std::uint32_t>(f.key), static_cast<std::uint32_t>(f.key >> 32), f.purpose};
  p.params = f.params;
  p.layout.ndim = 1;
  p.layout.numel = f.numel;
  p.layout.shape[0] = f.numel;
  p.layout.mem_stride[0] = 1;
  p.layout.logical_stride[0] = 1;
  fill_segment(&p, 1, control);
}

}  // namespace cpu
FI_NAMESPACE_END
