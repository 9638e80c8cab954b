// CUDA statistics: many tensors reduced by one launch, then a second launch that merges the
// block partials in a fixed order. The accumulator, its merge and the histogram's bin rule are
// csrc/common/stats_accumulator.h, the same code the CPU kernel runs.
//
// Work is cut into items of kItem elements of one tensor (fixed by the tensor's size alone).
// A CTA of kThreads threads takes items blockIdx.x, blockIdx.x + gridDim.x, ...; in an item each
// thread summarises kSteps chunks of kChunk values held in registers (stats_of_chunk: the
// corrected two-pass formula), merges them (Chan), and the CTA merges its threads by a fixed
// shuffle tree into the item's partial. The finalize kernel (one CTA per tensor) merges a
// tensor's partials by a fixed strided-then-tree order. Nothing depends on the grid size or the
// scheduling, so the results are deterministic.
//
// Histograms: shared-memory counters per warp (or per CTA when bins are many), incremented with
// warp aggregation (lanes that share a bin add together, in up to two rounds), so a warp whose
// values all fall in one bin costs one atomic, and atomics never contend across warps. A CTA
// adds its counters to the tensor's global histogram once per tensor it worked on. With more
// bins than shared memory holds, warp-aggregated global atomics are the fallback.
//
// The batch of tensors travels as a __grid_constant__ kernel parameter (CUDA >= 12.1 allows
// 32 KiB of them), so no host-to-device copy and no host synchronisation is needed.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/out_types.h"
#include "../common/stats_accumulator.h"
#include "../stats_request.h"
#include "cuda_check.h"
#include "stats_cuda.h"

FI_NAMESPACE_BEGIN
namespace gpu_stats {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kChunk = 8;  // values per thread per step: one to four 16-byte loads
constexpr int kSteps = 8;  // steps per item
constexpr std::int64_t kItem = std::int64_t{kThreads} * kChunk * kSteps;  // 16 Ki elements
constexpr int kSharedCounters = 11776;  // 46 KiB of 32-bit counters: with the static shared
                                        // memory, under the 48 KiB a launch gets without opt-in
constexpr int kBatch = 600;             // tensors per launch
constexpr unsigned kFullMask = 0xffffffffu;

struct DevTensor {
  const unsigned char* data;  // the element with the lowest address
  std::int64_t numel;
  std::int64_t first_item;  // within the batch
  double lo, hi;            // the histogram's range (unless range_src)
  int dtype;
  int pad_;
};

struct Batch {
  int count;
  int bins;
  std::int64_t items;
  const double* range_src;  // records of a first pass (kStatsHead doubles per tensor): numpy's
                            // default range comes from them; nullptr: lo, hi of each tensor
  int hist_copies;          // shared-memory histograms per CTA: kWarps, 1, or 0 (global atomics)
  int pad_;
  DevTensor t[kBatch];
};
static_assert(sizeof(Batch) <= 32000, "a batch must fit in the kernel parameter space");

// ---------------------------------------------------------------------------- reductions

__device__ __forceinline__ StatsAcc shfl_down(const StatsAcc& a, int offset) {
  StatsAcc o;
  o.n = __shfl_down_sync(kFullMask, a.n, offset);
  o.shift = __shfl_down_sync(kFullMask, a.shift, offset);
  o.mean = __shfl_down_sync(kFullMask, a.mean, offset);
  o.m2 = __shfl_down_sync(kFullMask, a.m2, offset);
  o.min = __shfl_down_sync(kFullMask, a.min, offset);
  o.max = __shfl_down_sync(kFullMask, a.max, offset);
  o.sum_abs = __shfl_down_sync(kFullMask, a.sum_abs, offset);
  o.sum_sq = __shfl_down_sync(kFullMask, a.sum_sq, offset);
  o.zeros = __shfl_down_sync(kFullMask, a.zeros, offset);
  o.nans = __shfl_down_sync(kFullMask, a.nans, offset);
  o.infs = __shfl_down_sync(kFullMask, a.infs, offset);
  return o;
}

__device__ __forceinline__ StatsAcc warp_reduce(StatsAcc acc) {
  const int lane = threadIdx.x & 31;
  for (int offset = 16; offset > 0; offset >>= 1) {
    const StatsAcc other = shfl_down(acc, offset);
    if (lane + offset < 32) stats_merge(acc, other);
  }
  return acc;
}

// The CTA's merge, by a fixed tree; the result is in thread 0. Every thread must call it.
__device__ StatsAcc block_reduce(StatsAcc acc, StatsAcc* warp_acc) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  acc = warp_reduce(acc);
  if (lane == 0) warp_acc[warp] = acc;
  __syncthreads();
  if (warp == 0) acc = warp_reduce(lane < kWarps ? warp_acc[lane] : stats_empty());
  __syncthreads();  // warp_acc is reused
  return acc;
}

// ----------------------------------------------------------------------------- histogram

__device__ __forceinline__ void hist_count(int bin, unsigned n, unsigned* shared,
                                           unsigned long long* global) {
  if (shared != nullptr)
    atomicAdd(shared + bin, n);
  else
    atomicAdd(global + bin, static_cast<unsigned long long>(n));
}

// Count `bin` (-1: not counted) of every lane. Lanes sharing the bin of the lowest pending lane
// count together, for two rounds; the rest one by one. Every lane of the warp must call it.
__device__ __forceinline__ void hist_add(int bin, unsigned* shared, unsigned long long* global) {
  const int lane = threadIdx.x & 31;
  unsigned pending = __ballot_sync(kFullMask, bin >= 0);
  for (int round = 0; round < 2 && pending != 0u; ++round) {
    const int src = __ffs(pending) - 1;
    const int b = __shfl_sync(kFullMask, bin, src);
    const unsigned same = __ballot_sync(kFullMask, bin == b) & pending;
    if (lane == src) hist_count(b, static_cast<unsigned>(__popc(same)), shared, global);
    pending &= ~same;
  }
  if (pending & (1u << lane)) hist_count(bin, 1u, shared, global);
}

// Add the CTA's shared counters to a tensor's histogram and clear them. Every thread calls it.
__device__ void flush_hist(unsigned* shared, int copies, int bins, unsigned long long* out) {
  __syncthreads();
  for (int b = threadIdx.x; b < bins; b += kThreads) {
    unsigned long long total = 0;
    for (int c = 0; c < copies; ++c) {
      total += shared[c * bins + b];
      shared[c * bins + b] = 0u;
    }
    if (total != 0ull) atomicAdd(out + b, total);
  }
  __syncthreads();
}

// ---------------------------------------------------------------------------------- items

// The last tensor whose first item is <= item (an empty tensor shares its first item with the
// next one, and comes before it, so the result is never empty).
__device__ __forceinline__ int find_tensor(const Batch& batch, std::int64_t item) {
  int lo = 0, hi = batch.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (batch.t[mid].first_item <= item)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ HistGrid grid_of(const Batch& batch, int t, int bins) {
  double lo = batch.t[t].lo, hi = batch.t[t].hi;
  if (batch.range_src != nullptr) {
    const double* r = batch.range_src + static_cast<std::int64_t>(t) * kStatsHead;
    stats_default_range(r[kStatN], r[kStatMin], r[kStatMax], lo, hi);
  }
  return make_hist_grid(lo, hi, bins);
}

template <class T>
struct Loads {
  static constexpr int kPer16 = 16 / static_cast<int>(sizeof(T));  // values per 16-byte load
  static constexpr int kCount = kChunk / kPer16;                    // loads per chunk
  union Word {
    uint4 u;
    T v[kPer16];
  };
};

// Element of value k of step s for this thread: 16-byte words interleaved across the CTA, so
// each load instruction of a warp reads 512 consecutive bytes. Both load paths use this map.
template <class T>
__device__ __forceinline__ std::int64_t element_of(int s, int k) {
  using L = Loads<T>;
  const int j = k / L::kPer16, m = k % L::kPer16;
  return ((static_cast<std::int64_t>(s) * L::kCount + j) * kThreads + threadIdx.x) * L::kPer16 + m;
}

template <class T>
__device__ __forceinline__ void load_words(const T* p, int s, uint4 (&w)[Loads<T>::kCount]) {
  using L = Loads<T>;
  const uint4* words = reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int j = 0; j < L::kCount; ++j)
    w[j] = __ldg(words + (static_cast<std::int64_t>(s) * L::kCount + j) * kThreads + threadIdx.x);
}

template <class T>
__device__ __forceinline__ void words_to_values(const uint4 (&w)[Loads<T>::kCount], double (&v)[kChunk]) {
  using L = Loads<T>;
#pragma unroll
  for (int j = 0; j < L::kCount; ++j) {
    typename L::Word word;
    word.u = w[j];
#pragma unroll
    for (int m = 0; m < L::kPer16; ++m)
      v[j * L::kPer16 + m] = static_cast<double>(OutTraits<T>::load(word.v[m]));
  }
}

template <class T>
__device__ __forceinline__ void count_chunk(const double (&v)[kChunk], int valid, const HistGrid& grid,
                                            unsigned* shared, unsigned long long* global) {
#pragma unroll
  for (int k = 0; k < kChunk; ++k) hist_add(k < valid ? hist_bin(grid, v[k], -1) : -1, shared, global);
}

// This thread's summary of an item of `count` values at p (and its histogram counts).
template <class T>
__device__ StatsAcc item_stats(const T* __restrict__ p, std::int64_t count, const HistGrid& grid,
                               unsigned* shared, unsigned long long* global) {
  using L = Loads<T>;
  StatsAcc acc = stats_empty();
  double v[kChunk];
  const bool vector_path = count == kItem && (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0u;
  if (vector_path) {  // whole aligned item: 16-byte loads, one step ahead
    uint4 next[L::kCount];
    load_words(p, 0, next);
    for (int s = 0; s < kSteps; ++s) {
      uint4 cur[L::kCount];
#pragma unroll
      for (int j = 0; j < L::kCount; ++j) cur[j] = next[j];
      if (s + 1 < kSteps) load_words(p, s + 1, next);
      words_to_values<T>(cur, v);
      stats_merge(acc, stats_of_chunk<kChunk>(v, kChunk));
      if (grid.bins > 0) count_chunk<T>(v, kChunk, grid, shared, global);
    }
  } else {  // the tail of a tensor, or a misaligned one: element by element, same map
    for (int s = 0; s < kSteps; ++s) {
      int valid = 0;
#pragma unroll
      for (int k = 0; k < kChunk; ++k) {
        const std::int64_t e = element_of<T>(s, k);
        const bool in = e < count;
        v[k] = in ? static_cast<double>(OutTraits<T>::load(p[e])) : 0.0;
        valid += in ? 1 : 0;  // the valid values are a prefix: e grows with k
      }
      stats_merge(acc, stats_of_chunk<kChunk>(v, valid));
      if (grid.bins > 0) count_chunk<T>(v, valid, grid, shared, global);
    }
  }
  return acc;
}

// ---------------------------------------------------------------------------------- kernels

// One partial (kStatsHead doubles) per item; histogram counts into hist (count x bins).
// Two CTAs per SM (at most 128 registers a thread): enough loads in flight to stream memory.
__global__ void __launch_bounds__(kThreads, 2)
    stats_partials_kernel(const __grid_constant__ Batch batch, double* __restrict__ partials,
                          unsigned long long* __restrict__ hist) {
  extern __shared__ unsigned shared_hist[];
  __shared__ StatsAcc warp_acc[kWarps];
  const int bins = batch.bins;
  const int copies = bins > 0 ? batch.hist_copies : 0;
  const int counters = copies * bins;
  for (int i = threadIdx.x; i < counters; i += kThreads) shared_hist[i] = 0u;
  __syncthreads();
  unsigned* my_hist = copies == kWarps ? shared_hist + (threadIdx.x >> 5) * bins
                                       : (copies == 1 ? shared_hist : nullptr);
  int current = -1;
  std::int64_t pending = 0;  // values in the shared counters (they are 32-bit)
  for (std::int64_t item = blockIdx.x; item < batch.items; item += gridDim.x) {
    const int t = find_tensor(batch, item);
    const DevTensor& d = batch.t[t];
    if (counters > 0 && current >= 0 && (t != current || pending > (std::int64_t{1} << 30))) {
      flush_hist(shared_hist, copies, bins, hist + static_cast<std::int64_t>(current) * bins);
      pending = 0;
    }
    current = t;
    const HistGrid grid = bins > 0 ? grid_of(batch, t, bins) : make_hist_grid(0.0, 1.0, 0);
    const std::int64_t begin = (item - d.first_item) * kItem;
    const std::int64_t count = d.numel - begin < kItem ? d.numel - begin : kItem;
    unsigned long long* global = hist + static_cast<std::int64_t>(t) * bins;
    StatsAcc acc;
    switch (d.dtype) {
      case kFloat32:
        acc = item_stats(reinterpret_cast<const float*>(d.data) + begin, count, grid, my_hist, global);
        break;
      case kFloat64:
        acc = item_stats(reinterpret_cast<const double*>(d.data) + begin, count, grid, my_hist, global);
        break;
      case kFloat16:
        acc = item_stats(reinterpret_cast<const Float16*>(d.data) + begin, count, grid, my_hist, global);
        break;
      default:
        acc = item_stats(reinterpret_cast<const BFloat16*>(d.data) + begin, count, grid, my_hist, global);
        break;
    }
    pending += count;
    acc = block_reduce(acc, warp_acc);
    if (threadIdx.x == 0) stats_store(acc, 0.0, 0.0, partials + item * kStatsHead);
  }
  if (counters > 0 && current >= 0)
    flush_hist(shared_hist, copies, bins, hist + static_cast<std::int64_t>(current) * bins);
}

// One CTA per tensor: its partials merged in a fixed order, its record written to out.
__global__ void __launch_bounds__(kThreads)
    stats_finalize_kernel(const __grid_constant__ Batch batch, const double* __restrict__ partials,
                          const unsigned long long* __restrict__ hist, double* __restrict__ out,
                          int width) {
  __shared__ StatsAcc warp_acc[kWarps];
  const int t = blockIdx.x;
  const DevTensor& d = batch.t[t];
  const std::int64_t items = (d.numel + kItem - 1) / kItem;
  StatsAcc acc = stats_empty();
  for (std::int64_t i = threadIdx.x; i < items; i += kThreads)
    stats_merge(acc, stats_load(partials + (d.first_item + i) * kStatsHead));
  acc = block_reduce(acc, warp_acc);
  const int bins = batch.bins;
  double* rec = out + static_cast<std::int64_t>(t) * width;
  if (threadIdx.x == 0) {
    const HistGrid grid = bins > 0 ? grid_of(batch, t, bins) : make_hist_grid(0.0, 1.0, 0);
    stats_store(acc, grid.lo, grid.hi, rec);
  }
  for (int b = threadIdx.x; b < bins; b += kThreads)
    rec[kStatsHead + b] = static_cast<double>(hist[static_cast<std::int64_t>(t) * bins + b]);
}

// --------------------------------------------------------------------------------- host side

inline std::int64_t items_of(std::int64_t numel) { return (numel + kItem - 1) / kItem; }

struct Workspace {
  std::size_t partials = 0, hist = 0, records = 0, total = 0;  // byte offsets, total size
};

inline std::size_t align_up(std::size_t n) { return (n + 255) / 256 * 256; }

inline Workspace plan_workspace(const std::int64_t* numels, int count, int bins, bool default_range) {
  std::int64_t items = 0;
  for (int i = 0; i < count; ++i) items += items_of(numels[i]);
  Workspace w;
  w.partials = 0;
  w.hist = align_up(static_cast<std::size_t>(items) * kStatsHead * sizeof(double));
  w.records = w.hist + align_up(static_cast<std::size_t>(count) * bins * sizeof(unsigned long long));
  w.total = w.records + (default_range && bins > 0
                             ? align_up(static_cast<std::size_t>(count) * kStatsHead * sizeof(double))
                             : 0);
  return w;
}

void launch_pass(const Batch& batch, double* partials, unsigned long long* hist, double* out, int width,
                 int max_grid, cudaStream_t stream) {
  if (batch.items > 0) {
    const int copies = batch.bins > 0 ? batch.hist_copies : 0;
    const std::size_t shared = static_cast<std::size_t>(copies) * batch.bins * sizeof(unsigned);
    const std::int64_t grid = std::min<std::int64_t>(batch.items, max_grid);
    stats_partials_kernel<<<static_cast<unsigned>(grid), kThreads, shared, stream>>>(batch, partials, hist);
    FI_CUDA_CHECK_LAUNCH("stats_partials_kernel");
  }
  stats_finalize_kernel<<<static_cast<unsigned>(batch.count), kThreads, 0, stream>>>(batch, partials, hist,
                                                                                      out, width);
  FI_CUDA_CHECK_LAUNCH("stats_finalize_kernel");
}

void run(const StatsRequest& request, std::uintptr_t out, std::uintptr_t workspace,
         std::size_t workspace_bytes, int device, std::uintptr_t stream_handle) {
  const int count = request.count;
  const int bins = request.bins;
  if (count < 0) throw std::invalid_argument("fastinit.stats: negative tensor count");
  if (bins < 0 || bins > (1 << 26))
    throw std::invalid_argument("fastinit.stats: bins must be in [0, 2^26]");
  std::vector<DevTensor> tensors(static_cast<std::size_t>(count));
  std::vector<std::int64_t> numels(static_cast<std::size_t>(count));
  static const int kItemSize[] = {4, 8, 2, 2};
  for (int i = 0; i < count; ++i) {
    const StatsTensor& t = request.tensors[i];
    if (t.dtype < kFloat32 || t.dtype > kBFloat16)
      throw std::invalid_argument("fastinit.stats: unknown dtype code " + std::to_string(t.dtype));
    if (t.ndim < 0 || t.ndim > kRequestMaxDims)
      throw std::invalid_argument("fastinit.stats: bad number of dims " + std::to_string(t.ndim));
    Layout layout;
    std::int64_t offset = 0;
    if (!stats_memory_layout(t.ndim, t.shape, t.stride, layout, offset) ||
        (layout.numel > 0 && layout.ndim > 0 && (layout.ndim > 1 || layout.mem_stride[0] != 1)))
      throw std::invalid_argument(
          "fastinit.stats: a CUDA tensor must be dense in some memory order (make it contiguous)");
    DevTensor& d = tensors[i];
    d.data = reinterpret_cast<const unsigned char*>(t.data) + offset * kItemSize[t.dtype];
    d.numel = layout.numel;
    d.first_item = 0;
    d.lo = request.ranges != nullptr ? request.ranges[2 * i] : 0.0;
    d.hi = request.ranges != nullptr ? request.ranges[2 * i + 1] : 1.0;
    d.dtype = t.dtype;
    d.pad_ = 0;
    numels[i] = layout.numel;
  }
  const bool default_range = bins > 0 && request.ranges == nullptr;
  const Workspace plan = plan_workspace(numels.data(), count, bins, default_range);
  if (workspace_bytes < plan.total)
    throw std::invalid_argument("fastinit.stats: the CUDA workspace is too small (" +
                                std::to_string(workspace_bytes) + " < " + std::to_string(plan.total) +
                                " bytes)");
  if (count == 0) return;
  if (workspace == 0) throw std::invalid_argument("fastinit.stats: no CUDA workspace");

  cuda_detail::DeviceGuard guard(device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
  unsigned char* base = reinterpret_cast<unsigned char*>(workspace);
  double* partials = reinterpret_cast<double*>(base + plan.partials);
  unsigned long long* hist = reinterpret_cast<unsigned long long*>(base + plan.hist);
  double* records = reinterpret_cast<double*>(base + plan.records);
  double* out_records = reinterpret_cast<double*>(out);
  const int width = kStatsHead + bins;

  int hist_copies = 0;
  if (bins > 0 && bins * kWarps <= kSharedCounters)
    hist_copies = kWarps;
  else if (bins > 0 && bins <= kSharedCounters)
    hist_copies = 1;
  int sms = 0;
  FI_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  int per_sm = 0;
  FI_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, stats_partials_kernel, kThreads,
      static_cast<std::size_t>(hist_copies) * bins * sizeof(unsigned)));
  const int max_grid = std::max(1, sms * std::max(1, per_sm));
  if (bins > 0)
    FI_CUDA_CHECK(cudaMemsetAsync(hist, 0, static_cast<std::size_t>(count) * bins * sizeof(unsigned long long),
                                  stream));

  std::unique_ptr<Batch> batch(new Batch());
  std::int64_t item_base = 0;
  for (int start = 0; start < count; start += kBatch) {
    const int n = std::min(kBatch, count - start);
    Batch& b = *batch;
    b.count = n;
    b.bins = bins;
    b.range_src = nullptr;
    b.hist_copies = hist_copies;
    b.pad_ = 0;
    std::int64_t items = 0;
    for (int k = 0; k < n; ++k) {
      b.t[k] = tensors[start + k];
      b.t[k].first_item = items;
      items += items_of(b.t[k].numel);
    }
    b.items = items;
    double* batch_partials = partials + item_base * kStatsHead;
    unsigned long long* batch_hist = hist + static_cast<std::int64_t>(start) * bins;
    if (default_range) {  // first pass: the records that give each tensor's range
      double* batch_records = records + static_cast<std::int64_t>(start) * kStatsHead;
      b.bins = 0;
      b.hist_copies = 0;
      launch_pass(b, batch_partials, batch_hist, batch_records, kStatsHead, max_grid, stream);
      b.bins = bins;
      b.hist_copies = hist_copies;
      b.range_src = batch_records;
    }
    launch_pass(b, batch_partials, batch_hist, out_records + static_cast<std::int64_t>(start) * width, width,
                max_grid, stream);
    item_base += items;
  }
}

}  // namespace gpu_stats
FI_NAMESPACE_END

namespace fastinit {

std::size_t cuda_stats_workspace_bytes(const std::int64_t* numels, int count, int bins, bool default_range) {
  return gpu_stats::plan_workspace(numels, count, bins, default_range).total;
}

void cuda_stats(const StatsRequest& request, std::uintptr_t out, std::uintptr_t workspace,
                std::size_t workspace_bytes, int device, std::uintptr_t stream) {
  gpu_stats::run(request, out, workspace, workspace_bytes, device, stream);
}

}  // namespace fastinit
