// CPU statistics kernel: any number of tensors of any float dtype and strided layout, reduced in
// one parallel pass with the accumulator of csrc/common/stats_accumulator.h.
//
// Work is cut into fixed pieces that depend only on each tensor's layout:
//   tile  kStatsTile elements (in memory order), converted to float64 into an L1 buffer, then
//         summarised by kStatsLanes independent SIMD lanes (stats_lanes.h) with the corrected
//         two-pass formula;
//   item  kStatsItemTiles consecutive tiles of one tensor, their summaries merged in order: the
//         unit of parallel work (thread_pool.h), each writing its own partial.
// The partials of a tensor are then merged by a fixed pairwise tree. Nothing depends on the
// thread count, so 1 thread and N threads give the same bits.
// Histograms: each thread counts into private sub-histograms (one per lane, so that runs of
// equal bins — half the values of a ReLU output are 0 — do not serialise on one counter) and
// adds them to the tensor's histogram once per tensor it worked on: no contended atomics.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../common/out_types.h"
#include "../common/stats_accumulator.h"
#include "../stats_request.h"
#include "../run_control.h"
#include "omp_compat.h"
#include "stats_lanes.h"
#include "thread_pool.h"

FI_NAMESPACE_BEGIN
namespace cpu {

constexpr std::int64_t kStatsTile = 2048;     // 16 KiB of float64: stays in L1
constexpr std::int64_t kStatsItemTiles = 32;  // 64 Ki elements per unit of parallel work
constexpr std::int64_t kStatsItem = kStatsTile * kStatsItemTiles;
constexpr int kStatsMaxLaneHistBins = 1 << 16;  // more bins: one sub-histogram per thread

// An owning array. (Not std::vector: this header is compiled once per instruction set, and a
// std::vector<std::uint64_t> instantiated with -mavx2 could be the copy the linker keeps for the
// portable build too; a class in the per-build namespace cannot be shared.)
template <class T>
class StatsBuffer {
 public:
  explicit StatsBuffer(std::int64_t n, T value = T()) : n_(n), p_(n > 0 ? new T[n] : nullptr) {
    for (std::int64_t i = 0; i < n; ++i) p_[i] = value;
  }
  ~StatsBuffer() { delete[] p_; }
  StatsBuffer(const StatsBuffer&) = delete;
  StatsBuffer& operator=(const StatsBuffer&) = delete;
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](std::int64_t i) { return p_[i]; }
  const T& operator[](std::int64_t i) const { return p_[i]; }
  std::int64_t size() const { return n_; }

 private:
  std::int64_t n_;
  T* p_;
};

// One tensor, prepared: its memory-order layout and what to count.
struct StatsJob {
  Layout layout;
  const unsigned char* base = nullptr;  // the element with the lowest address
  int dtype = 0;
  HistGrid grid{};
  std::int64_t first_item = 0;
  std::int64_t items = 0;
};

template <class In>
inline double load_double(In v) {
  return static_cast<double>(OutTraits<In>::load(v));
}

// Elements [first, first + count) of the layout (memory order), as float64.
template <class In>
void gather_tile(const Layout& layout, const In* base, std::int64_t first, std::int64_t count,
                 double* buf) {
  const std::int64_t inner = layout.ndim == 0 ? 1 : layout.shape[layout.ndim - 1];
  const std::int64_t step = layout.ndim == 0 ? 1 : layout.mem_stride[layout.ndim - 1];
  std::int64_t run = first / inner;
  std::int64_t pos = first % inner;
  while (count > 0) {
    std::int64_t mem = 0;
    std::uint64_t unused = 0;
    layout.run_start(run, mem, unused);
    const std::int64_t take = std::min(count, inner - pos);
    const In* p = base + mem + pos * step;
    if (step == 1) {
      FI_OMP_SIMD
      for (std::int64_t i = 0; i < take; ++i) buf[i] = load_double(p[i]);
    } else {
      for (std::int64_t i = 0; i < take; ++i) buf[i] = load_double(p[i * step]);
    }
    buf += take;
    count -= take;
    ++run;
    pos = 0;
  }
}

inline void gather_any(const StatsJob& job, std::int64_t first, std::int64_t count, double* buf) {
  switch (job.dtype) {
    case kFloat32:
      return gather_tile(job.layout, reinterpret_cast<const float*>(job.base), first, count, buf);
    case kFloat64:
      return gather_tile(job.layout, reinterpret_cast<const double*>(job.base), first, count, buf);
    case kFloat16:
      return gather_tile(job.layout, reinterpret_cast<const Float16*>(job.base), first, count, buf);
    default:
      return gather_tile(job.layout, reinterpret_cast<const BFloat16*>(job.base), first, count, buf);
  }
}

// Count buf[0, count) into `copies` sub-histograms of bins + 1 counters (the last one takes
// the values outside the range, so no loop has a branch). The bins are computed first, in a
// loop the compiler vectorises; element i goes to sub-histogram i % copies, so a run of values
// in one bin increments several counters in turn instead of waiting on one.
inline void tile_hist(const double* buf, std::int64_t count, const HistGrid& grid,
                      std::uint32_t* lane_hist, int copies, int* idx) {
  const HistGrid g = grid;  // a local copy: the stores to idx cannot alias it
  const std::int64_t width = g.bins + 1;
  FI_OMP_SIMD
  for (std::int64_t i = 0; i < count; ++i) idx[i] = hist_bin(g, buf[i], g.bins);
  if (copies == kStatsLanes) {
    const std::int64_t main = count / kStatsLanes * kStatsLanes;
    for (std::int64_t j = 0; j < main; j += kStatsLanes) {
      FI_UNROLL
      for (int l = 0; l < kStatsLanes; ++l) ++lane_hist[l * width + idx[j + l]];
    }
    for (std::int64_t i = main; i < count; ++i) ++lane_hist[idx[i]];
  } else {
    for (std::int64_t i = 0; i < count; ++i) ++lane_hist[idx[i]];
  }
}

inline void atomic_add(std::uint64_t& target, std::uint64_t value) {
#if defined(__GNUC__) || defined(__clang__)
  __atomic_fetch_add(&target, value, __ATOMIC_RELAXED);
#else
#error "fastinit: an atomic add for this compiler is needed here"
#endif
}

// A thread's private histogram of the tensor it is working on.
struct ThreadHist {
  StatsBuffer<std::uint32_t> lanes;  // copies x (bins + 1)
  int copies = 1;
  int bins = 0;
  int job = -1;
  std::int64_t pending = 0;  // values counted since the last flush

  ThreadHist(int bins_, int copies_)
      : lanes(bins_ > 0 ? static_cast<std::int64_t>(copies_) * (bins_ + 1) : 0, 0u),
        copies(copies_),
        bins(bins_) {}

  // Add the counts to the shared histogram of the tensor, then start again from zero.
  void flush(std::uint64_t* hist) {
    if (bins == 0 || job < 0) return;
    std::uint64_t* out = hist + static_cast<std::int64_t>(job) * bins;
    const std::int64_t width = bins + 1;
    for (int b = 0; b < bins; ++b) {
      std::uint64_t total = 0;
      for (int c = 0; c < copies; ++c) total += lanes[c * width + b];
      if (total != 0) atomic_add(out[b], total);
    }
    for (std::int64_t i = 0; i < lanes.size(); ++i) lanes[i] = 0u;
    pending = 0;
  }
};

// One item: its tiles in order. kMoments: summarise; kHist: count.
template <bool kMoments, bool kHist>
StatsAcc process_item(const StatsJob& job, std::int64_t item, double* buf, int* idx, ThreadHist& hist) {
  const std::int64_t begin = (item - job.first_item) * kStatsItem;
  const std::int64_t end = std::min(begin + kStatsItem, job.layout.numel);
  StatsAcc acc = stats_empty();
  for (std::int64_t t = begin; t < end; t += kStatsTile) {
    const std::int64_t count = std::min(kStatsTile, end - t);
    gather_any(job, t, count, buf);
    if (kMoments) stats_merge(acc, tile_stats(buf, count));
    if (kHist) tile_hist(buf, count, job.grid, hist.lanes.data(), hist.copies, idx);
  }
  if (kHist) hist.pending += end - begin;
  return acc;
}

// Items between two checks for an interrupt (Ctrl-C): 64 Mi elements.
constexpr std::int64_t kStatsInterruptItems = 1024;

template <bool kMoments, bool kHist>
struct StatsPass {
  const StatsBuffer<StatsJob>* jobs;
  std::int64_t first_item;  // of this chunk
  int bins;
  int copies;
  StatsBuffer<StatsAcc>* partials;
  StatsBuffer<std::uint64_t>* hist;

  // One thread's share: the items it takes (in increasing order), its own buffers and
  // histogram, flushed to the shared one when it switches tensors and at the end.
  static void run(void* ctx, pool::TaskSource& tasks) {
    const StatsPass& p = *static_cast<const StatsPass*>(ctx);
    const StatsBuffer<StatsJob>& jobs = *p.jobs;
    alignas(64) double buf[kStatsTile];
    alignas(64) int idx[kStatsTile];
    ThreadHist local(kHist ? p.bins : 0, p.copies);
    std::int64_t j = 0;
    std::int64_t task = 0;
    while (tasks.next(task)) {
      const std::int64_t item = p.first_item + task;
      while (item >= jobs[j].first_item + jobs[j].items) ++j;  // empty jobs have no items
      if (kHist && (static_cast<int>(j) != local.job || local.pending > (std::int64_t{1} << 30))) {
        local.flush(p.hist->data());
        local.job = static_cast<int>(j);
      }
      (*p.partials)[item] = process_item<kMoments, kHist>(jobs[j], item, buf, idx, local);
    }
    if (kHist) local.flush(p.hist->data());
  }
};

// One pass over every item of every job: a partial per item, counts into hist (jobs x bins).
template <bool kMoments, bool kHist>
void stats_pass(const StatsBuffer<StatsJob>& jobs, std::int64_t total_items, int bins,
                const RunControl& control, StatsBuffer<StatsAcc>& partials,
                StatsBuffer<std::uint64_t>& hist) {
  const int copies = bins <= kStatsMaxLaneHistBins ? kStatsLanes : 1;
  int threads = control.threads > 0 ? control.threads : pool::default_threads();
  // each thread at least 8 items (512 Ki elements), as the fills (kParallelGrain)
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, total_items / 8)));
  for (std::int64_t first = 0; first < total_items; first += kStatsInterruptItems) {
    if (first > 0 && control.interrupted != nullptr && control.interrupted(control.ctx))
      throw Interrupted();
    StatsPass<kMoments, kHist> pass{&jobs, first, bins, copies, &partials, &hist};
    pool::run(threads, std::min(kStatsInterruptItems, total_items - first),
              StatsPass<kMoments, kHist>::run, &pass);
  }
}

// Merge partials[first, first + count) by a fixed pairwise tree (in place).
inline StatsAcc merge_tree(StatsAcc* p, std::int64_t count) {
  if (count == 0) return stats_empty();
  for (std::int64_t width = 1; width < count; width *= 2)
    for (std::int64_t i = 0; i + width < count; i += 2 * width) stats_merge(p[i], p[i + width]);
  return p[0];
}

inline void prepare_jobs(const StatsRequest& request, StatsBuffer<StatsJob>& jobs,
                         std::int64_t& total_items) {
  total_items = 0;
  for (int i = 0; i < request.count; ++i) {
    const StatsTensor& t = request.tensors[i];
    if (t.ndim < 0 || t.ndim > kRequestMaxDims)
      throw std::invalid_argument("fastinit.stats: bad number of dims " + std::to_string(t.ndim));
    if (t.dtype < kFloat32 || t.dtype > kBFloat16)
      throw std::invalid_argument("fastinit.stats: unknown dtype code " + std::to_string(t.dtype));
    StatsJob& job = jobs[i];
    std::int64_t numel = 1;
    for (int d = 0; d < t.ndim; ++d) {
      if (t.shape[d] < 0) throw std::invalid_argument("fastinit.stats: negative size");
      numel *= t.shape[d];
    }
    if (numel > 0 && t.data == 0) throw std::invalid_argument("fastinit.stats: null data pointer");
    std::int64_t offset = 0;
    if (!stats_memory_layout(t.ndim, t.shape, t.stride, job.layout, offset))
      throw std::invalid_argument("fastinit.stats: the view has more than 16 non-mergeable dims");
    static const int kItemSize[] = {4, 8, 2, 2};
    job.base = reinterpret_cast<const unsigned char*>(t.data) + offset * kItemSize[t.dtype];
    job.dtype = t.dtype;
    job.first_item = total_items;
    job.items = (job.layout.numel + kStatsItem - 1) / kStatsItem;
    total_items += job.items;
  }
}

static_assert(kStatsRecordHead == kStatsHead, "stats_request.h and stats_accumulator.h disagree");

// The whole call: request.count records of kStatsHead + bins doubles into out.
inline void cpu_stats_impl(const StatsRequest& request, double* out, const RunControl& control) {
  const int bins = request.bins;
  if (bins < 0) throw std::invalid_argument("fastinit.stats: bins must be >= 0");
  if (request.count < 0) throw std::invalid_argument("fastinit.stats: negative tensor count");
  std::int64_t total_items = 0;
  StatsBuffer<StatsJob> jobs(request.count);
  prepare_jobs(request, jobs, total_items);
  StatsBuffer<StatsAcc> partials(total_items, stats_empty());
  StatsBuffer<std::uint64_t> hist(static_cast<std::int64_t>(request.count) * bins, 0);
  const int width = kStatsHead + bins;

  auto write_moments = [&]() {
    for (int i = 0; i < request.count; ++i) {
      const StatsAcc acc = merge_tree(partials.data() + jobs[i].first_item, jobs[i].items);
      stats_store(acc, 0.0, 1.0, out + static_cast<std::int64_t>(i) * width);
    }
  };

  if (bins == 0) {
    stats_pass<true, false>(jobs, total_items, bins, control, partials, hist);
    write_moments();
    return;
  }
  if (request.ranges != nullptr) {
    for (int i = 0; i < request.count; ++i)
      jobs[i].grid = make_hist_grid(request.ranges[2 * i], request.ranges[2 * i + 1], bins);
    stats_pass<true, true>(jobs, total_items, bins, control, partials, hist);
    write_moments();
  } else {  // numpy's default range: the finite min and max, found by a first pass
    stats_pass<true, false>(jobs, total_items, bins, control, partials, hist);
    write_moments();
    for (int i = 0; i < request.count; ++i) {
      const double* rec = out + static_cast<std::int64_t>(i) * width;
      double lo = 0.0, hi = 1.0;
      stats_default_range(rec[kStatN], rec[kStatMin], rec[kStatMax], lo, hi);
      jobs[i].grid = make_hist_grid(lo, hi, bins);
    }
    stats_pass<false, true>(jobs, total_items, bins, control, partials, hist);
  }
  for (int i = 0; i < request.count; ++i) {
    double* rec = out + static_cast<std::int64_t>(i) * width;
    rec[kStatHistLo] = jobs[i].grid.lo;
    rec[kStatHistHi] = jobs[i].grid.hi;
    for (int b = 0; b < bins; ++b)
      rec[kStatsHead + b] = static_cast<double>(hist[static_cast<std::int64_t>(i) * bins + b]);
  }
}

}  // namespace cpu
FI_NAMESPACE_END
