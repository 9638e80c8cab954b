// The device side of the CUDA statistics: the two kernels and what they share. The host side
// is stats_plan.h (checks, workspace, batches) and stats_cuda.cu (launches); tests/cuda_emu runs
// this same file on the CPU (one coroutine per CUDA thread) to check it without a GPU.
//
// Work is cut into items of kItem elements of one tensor (fixed by the tensor's size alone).
// A CTA takes items blockIdx.x, blockIdx.x + gridDim.x, ...; in an item each thread reads
// kPerThread values (16-byte words interleaved across the CTA, so each load instruction of a
// warp reads 512 consecutive bytes) and the CTA reduces the item to one partial record.
//
// The per-item accumulator (kept within 32 registers a thread, so 8 CTAs of 256 fit an SM):
//   1. the shift s: the mean of a sample of the item, one value per thread (its first, when
//      finite), taken by a CTA reduction before the values are summed;
//   2. per value: d = x - s, Σd, Σd² (fma), Σ|x| in float64; min and max in the value's own
//      precision; counts of finite values, zeros and NaNs as packed integers. Groups of 4
//      finite non-zero values take a path without selects or counts. No division, no CALL;
//   3. the CTA sums these by fixed shuffle trees into the item's partial record (Σd, Σd² and
//      Σx² = Σd² + s (2 Σd + n s)); the finalize kernel turns each into mean = s + Σd/n and
//      M2 = Σd² - Σd (Σd/n) (stats_corrected) and merges them by Chan's formula
//      (csrc/common/stats_accumulator.h), in a fixed order.
// Error bound: M2 = Σd² - n·(mean - s)², and since s is the mean of m of the item's values,
// M2 >= m·(mean - s)², so the cancellation n·(mean - s)²/M2 is at most n/m (64 for a whole item
// whose sample is finite). With sums of 64 terms a thread and a tree of 256, M2 is exact to a
// few thousand float64 ulps in that worst case (an item whose sample holds its outliers), to a
// few ulps for data whose sample mean is near its mean; Σx² to a few hundred ulps at worst.
// float64 values near the largest double: when Σd overflows (it needs |x| above ~1e303), the
// item's Σd and Σd² are computed again from d·2^-16 and scaled back, so the mean stays right.
//
// Histograms: shared-memory counters per warp (or per CTA when bins are many), incremented with
// warp aggregation (lanes that share a bin add together, in up to two rounds), so a warp whose
// values all fall in one bin costs one atomic, and atomics never contend across warps. A CTA
// adds its counters to the tensor's global histogram once per tensor it worked on. With more
// bins than shared memory holds, warp-aggregated global atomics are the fallback.
//
// One kernel per dtype and with / without histogram; a launch reduces the tensors of one dtype,
// passed as a __grid_constant__ kernel parameter (CUDA >= 12.1 allows 32 KiB of them), so no
// host-to-device copy and no host synchronisation is needed. Nothing depends on the grid size or
// the scheduling, so the results are deterministic.
#pragma once
#include <cstdint>

#include "../common/out_types.h"
#include "../common/stats_accumulator.h"

// The kernel's dynamic shared memory (tests/cuda_emu defines its own).
#if !defined(FI_DYNAMIC_SHARED)
#define FI_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

FI_NAMESPACE_BEGIN
namespace gpu_stats {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kPerThread = 64;  // values of an item per thread
constexpr std::int64_t kItem = std::int64_t{kThreads} * kPerThread;  // 16 Ki elements
constexpr int kSharedCounters = 11776;  // 46 KiB of 32-bit counters: with the static shared
                                        // memory, under the 48 KiB a launch gets without opt-in
constexpr int kBatch = 600;             // tensors per launch
constexpr int kMaxBatchItems = 1 << 30; // items per launch (int indices; 2^44 elements)
constexpr unsigned kFullMask = 0xffffffffu;

struct DevTensor {
  const unsigned char* data;  // the element with the lowest address
  std::int64_t numel;
  std::int64_t first_item;  // within the batch
  double lo, hi;            // the histogram's range (unless range_src)
  int index;                // in the request: its record, histogram and range_src row
  int pad_;
};

struct Batch {
  int count;
  int bins;
  int items;                // at most kMaxBatchItems
  int pad0_;
  const double* range_src;  // records of a first pass (kStatsHead doubles per tensor): numpy's
                            // default range comes from them; nullptr: lo, hi of each tensor
  int hist_copies;          // shared-memory histograms per CTA: kWarps, 1, or 0 (global atomics)
  int pad_;
  DevTensor t[kBatch];
};
static_assert(sizeof(Batch) <= 32000, "a batch must fit in the kernel parameter space");

// ------------------------------------------------------------------------------ values

// What a stored element is summed as: float for the float32 family, double for float64.
template <class T>
struct Value {
  using V = float;
  static constexpr V kMaxFinite = 3.40282347e38f;
};
template <>
struct Value<double> {
  using V = double;
  static constexpr V kMaxFinite = kStatsMaxFinite;
};

__device__ __forceinline__ float value_of(float x) { return x; }
__device__ __forceinline__ double value_of(double x) { return x; }
__device__ __forceinline__ float value_of(BFloat16 x) { return bf16_to_float(x.bits); }
__device__ __forceinline__ float value_of(Float16 x) {
#if defined(__CUDA_ARCH__)
  float f;  // exact: one conversion instruction instead of the portable bit manipulation
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
  return f;
#else
  return f16_to_float(x.bits);
#endif
}

// NaN-ignoring min and max (one instruction each for float).
__device__ __forceinline__ float vmin(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ float vmax(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double vmin(double a, double b) { return fmin(a, b); }
__device__ __forceinline__ double vmax(double a, double b) { return fmax(a, b); }

// min and max of values known not to be NaN: a comparison and a select for double (fmin's NaN
// and signed-zero rules cost four instructions and register moves there).
__device__ __forceinline__ float plain_min(float a, float b) { return fminf(a, b); }
__device__ __forceinline__ float plain_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double plain_min(double a, double b) { return b < a ? b : a; }
__device__ __forceinline__ double plain_max(double a, double b) { return b > a ? b : a; }

// The element of value m of word w of this thread: words interleaved across the CTA.
template <class T>
struct Words {
  static constexpr int kPer = 16 / static_cast<int>(sizeof(T));  // values per 16-byte word
  static constexpr int kCount = kPerThread / kPer;                 // words per thread and item
  union Word {
    uint4 u;
    T v[kPer];
  };
  __device__ __forceinline__ static int element(int w, int m) {  // < kItem
    return (w * kThreads + static_cast<int>(threadIdx.x)) * kPer + m;
  }
};

// --------------------------------------------------------------------------- accumulator

// One thread's sums over its values of an item (fields as in the header comment; Σx² is
// derived from them per item: Σx² = Σd² + s (2 Σd + n s)).
template <class V>
struct ThreadSums {
  double c, q, sum_abs;
  V min, max;
  unsigned counts;    // while adding: n | zeros << 8 | nans << 16 (at most 64 each)
  int n, zeros, nans;  // unpacked for the CTA's sums
};

constexpr unsigned kCountN = 1u, kCountZero = 1u << 8, kCountNan = 1u << 16;

template <class V>
__device__ __forceinline__ ThreadSums<V> sums_empty() {
  ThreadSums<V> a;
  a.c = a.q = a.sum_abs = 0.0;
  a.min = static_cast<V>(HUGE_VAL);
  a.max = static_cast<V>(-HUGE_VAL);
  a.counts = 0u;
  a.n = a.zeros = a.nans = 0;
  return a;
}

// Add x; s is the shift.
template <class V>
__device__ __forceinline__ void sums_add(ThreadSums<V>& a, V x, double s) {
  const bool fin = fabs(x) <= Value<V>::kMaxFinite;  // false for NaN and ±Inf
  const V nan_or_x = fin ? x : static_cast<V>(NAN);  // min/max ignore NaN
  a.min = vmin(a.min, nan_or_x);
  a.max = vmax(a.max, nan_or_x);
  const double f = static_cast<double>(fin ? x : V(0));
  const double d = fin ? f - s : 0.0;
  a.c += d;
  a.q = fma(d, d, a.q);
  a.sum_abs += fabs(f);
  a.counts += (fin ? kCountN : 0u) + (x == V(0) ? kCountZero : 0u) + (x != x ? kCountNan : 0u);
}

// Add K values. Groups of finite non-zero values (nearly all of them in weights) take a path
// without selects or counts; a group with a zero, NaN or ±Inf takes sums_add.
template <class V, int K>
__device__ __forceinline__ void sums_add_group(ThreadSums<V>& a, const V (&x)[K], double s) {
  bool plain = true;
#pragma unroll
  for (int k = 0; k < K; ++k) plain = plain && fabs(x[k]) <= Value<V>::kMaxFinite && x[k] != V(0);
  if (plain) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      a.min = plain_min(a.min, x[k]);
      a.max = plain_max(a.max, x[k]);
      const double f = static_cast<double>(x[k]);
      const double d = f - s;
      a.c += d;
      a.q = fma(d, d, a.q);
      a.sum_abs += fabs(f);
    }
    a.counts += K * kCountN;
  } else {
#pragma unroll
    for (int k = 0; k < K; ++k) sums_add(a, x[k], s);
  }
}

// Σd and Σd² of the values again, from d·2^-16: for an item whose Σd overflowed (float64 only).
struct ScaledSums {
  double c, q;
};

__device__ __forceinline__ void scaled_add(ScaledSums& a, double x, double s_scaled) {
  const bool fin = fabs(x) <= kStatsMaxFinite;
  const double d = fin ? x * 0x1p-16 - s_scaled : 0.0;
  a.c += d;
  a.q = fma(d, d, a.q);
}

// ---------------------------------------------------------------------------- reductions

template <class X>
__device__ __forceinline__ X warp_sum(X v) {
  // lane 0 ends with the sum of the 32 lanes, by a fixed tree (the other lanes hold partial or
  // repeated sums, never read)
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(kFullMask, v, offset);
  return v;
}

// Lane 0 gets the sums of lanes [0, kLanes) (a power of two), by a fixed tree.
template <int kLanes, class V>
__device__ __forceinline__ ThreadSums<V> warp_reduce(ThreadSums<V> a) {
  for (int offset = kLanes / 2; offset > 0; offset >>= 1) {
    a.c += __shfl_down_sync(kFullMask, a.c, offset);
    a.q += __shfl_down_sync(kFullMask, a.q, offset);
    a.sum_abs += __shfl_down_sync(kFullMask, a.sum_abs, offset);
    a.min = vmin(a.min, __shfl_down_sync(kFullMask, a.min, offset));
    a.max = vmax(a.max, __shfl_down_sync(kFullMask, a.max, offset));
    a.n += __shfl_down_sync(kFullMask, a.n, offset);
    a.zeros += __shfl_down_sync(kFullMask, a.zeros, offset);
    a.nans += __shfl_down_sync(kFullMask, a.nans, offset);
  }
  return a;
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
__device__ __forceinline__ void flush_hist(unsigned* shared, int copies, int bins, unsigned long long* out) {
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
__device__ __forceinline__ int find_tensor(const Batch& batch, int item) {
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

__device__ __forceinline__ HistGrid grid_of(const Batch& batch, const DevTensor& d) {
  double lo = d.lo, hi = d.hi;
  if (batch.range_src != nullptr) {
    const double* r = batch.range_src + static_cast<std::int64_t>(d.index) * kStatsHead;
    stats_default_range(r[kStatN], r[kStatMin], r[kStatMax], lo, hi);
  }
  return make_hist_grid(lo, hi, batch.bins);
}

// Where the histogram counts of one item go.
struct HistSink {
  HistGrid grid;
  unsigned* shared;            // this warp's or the CTA's counters, or nullptr
  unsigned long long* global;  // the tensor's counters (the fallback)
};

// Shared memory of the item reductions.
template <class V>
struct ItemShared {
  double sample_sum[kWarps];
  int sample_count[kWarps];
  ThreadSums<V> part[kWarps];
  ScaledSums scaled[kWarps];
};

// 1/m for the sample sizes m (1/0 is taken as 0): a table instead of a division, whose slow
// path would be a CALL in the item loop.
struct Inverses {
  double v[kThreads + 1];
};
constexpr Inverses make_inverses() {
  Inverses r{};
  for (int m = 1; m <= kThreads; ++m) r.v[m] = 1.0 / m;
  return r;
}
__constant__ constexpr Inverses kInverse = make_inverses();

// The item's shift: the mean of the finite values among the threads' first values (scaled by
// 2^-8 for float64 so that the sum cannot overflow). Every thread calls it and gets the shift.
template <class V>
__device__ __forceinline__ double item_shift(V first, bool valid, ItemShared<V>& sh) {
  constexpr double kScale = sizeof(V) == 8 ? 0x1p-8 : 1.0;
  const bool take = valid && fabs(first) <= Value<V>::kMaxFinite;
  const double sum = warp_sum(take ? static_cast<double>(first) * kScale : 0.0);
  const int count = warp_sum(take ? 1 : 0);
  const int warp = threadIdx.x >> 5;
  if ((threadIdx.x & 31) == 0) {
    sh.sample_sum[warp] = sum;
    sh.sample_count[warp] = count;
  }
  __syncthreads();
  double total = 0.0;
  int m = 0;
  for (int w = 0; w < kWarps; ++w) {
    total += sh.sample_sum[w];
    m += sh.sample_count[w];
  }
  const double s = total * kInverse.v[m] / kScale;  // 0 for an empty sample
  return fabs(s) <= kStatsMaxFinite ? s : (s < 0.0 ? -kStatsMaxFinite : kStatsMaxFinite);
}

template <bool kBins, class V, int K>
__device__ __forceinline__ void count_group(const V (&x)[K], const HistSink& h) {
  if (kBins) {
#pragma unroll
    for (int k = 0; k < K; ++k) hist_add(hist_bin(h.grid, static_cast<double>(x[k]), -1), h.shared, h.global);
  }
}

// Field f of an item's partial record, from the warps' sums (in warp order): what thread f
// of the CTA writes.
template <class V>
__device__ __forceinline__ double record_field(const ThreadSums<V> (&part)[kWarps], int f, double s, int count) {
  double x = 0.0;
  V lo = part[0].min, hi = part[0].max;
  int n = 0, nans = 0;
  switch (f) {
    case kStatMean:  // Σd
      for (int w = 0; w < kWarps; ++w) x += part[w].c;
      return x;
    case kStatM2:  // Σd²
      for (int w = 0; w < kWarps; ++w) x += part[w].q;
      return x;
    case kStatSumAbs:
      for (int w = 0; w < kWarps; ++w) x += part[w].sum_abs;
      return x;
    case kStatSumSq: {  // Σx² = Σ(s + d)²: a few hundred ulps off at worst (the sample's outliers)
      double c = 0.0;
      for (int w = 0; w < kWarps; ++w) {
        c += part[w].c;
        x += part[w].q;
        n += part[w].n;
      }
      x += s * (2.0 * c + static_cast<double>(n) * s);
      // NaN only from an overflow (inf - inf), and then Σx² itself overflows
      return x == x ? (x > 0.0 ? x : 0.0) : HUGE_VAL;
    }
    case kStatMin:
    case kStatMax:
      for (int w = 1; w < kWarps; ++w) {
        lo = vmin(lo, part[w].min);
        hi = vmax(hi, part[w].max);
      }
      return f == kStatMin ? (lo <= hi ? static_cast<double>(lo) : HUGE_VAL)  // ±inf when empty
                           : (lo <= hi ? static_cast<double>(hi) : -HUGE_VAL);
    case kStatShift:
      return s;
    case kStatHistLo:  // the scale of Σd and Σd² (2^16 when they were computed from d 2^-16)
      return 1.0;
    case kStatHistHi:
      return 0.0;
    default:  // the counts
      for (int w = 0; w < kWarps; ++w) {
        n += part[w].n;
        nans += part[w].nans;
        x += static_cast<double>(part[w].zeros);
      }
      nans -= static_cast<int>(kItem) - count;  // not the NaNs put past the end
      if (f == kStatN) return static_cast<double>(n);
      if (f == kStatNans) return static_cast<double>(nans);
      if (f == kStatInfs) return static_cast<double>(count - n - nans);
      return x;  // zeros
  }
}

// The CTA's record of an item of `count` values at p (count == kItem: the whole item; less: the
// tail of a tensor). Threads 0 .. kStatsHead - 1 write its fields to rec; every thread must call
// this.
template <class T, bool kBins>
__device__ __forceinline__ void item_record(const T* __restrict__ p, int count, const HistSink& hist,
                                            ItemShared<typename Value<T>::V>& sh, double* rec) {
  using V = typename Value<T>::V;
  using W = Words<T>;
  const V nan = static_cast<V>(NAN);
  // Whole aligned items take 16-byte loads; the tail of a tensor, or a misaligned one, loads
  // element by element by the same map, with NaN (not counted afterwards) past its end.
  const bool vector_path = count == kItem && (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0u;
  typename W::Word word;
  if (vector_path) {
    word.u = __ldg(reinterpret_cast<const uint4*>(p) + threadIdx.x);
  } else {
#pragma unroll
    for (int m = 0; m < W::kPer; ++m) {
      const int e = W::element(0, m);
      word.v[m] = e < count ? p[e] : T{};
    }
  }
  const bool first_valid = W::element(0, 0) < count;
  const double s = item_shift<V>(value_of(word.v[0]), first_valid, sh);
  // Values are summed in groups of up to 4 (a group's registers, not a 16-bit word's 8 values).
  constexpr int kGroup = W::kPer < 4 ? W::kPer : 4;
  ThreadSums<V> a = sums_empty<V>();
  V x[kGroup];
  if (vector_path) {
    const uint4* words = reinterpret_cast<const uint4*>(p);
    for (int w = 0; w < W::kCount; ++w) {
      if (w > 0) word.u = __ldg(words + static_cast<std::int64_t>(w) * kThreads + threadIdx.x);
#pragma unroll
      for (int g = 0; g < W::kPer; g += kGroup) {
#pragma unroll
        for (int m = 0; m < kGroup; ++m) x[m] = value_of(word.v[g + m]);
        sums_add_group(a, x, s);
        count_group<kBins>(x, hist);
      }
    }
  } else {  // value by value (few registers live)
    for (int w = 0; w < W::kCount; ++w) {
#pragma unroll
      for (int m = 0; m < W::kPer; ++m) {
        const int e = W::element(w, m);
        const V one[1] = {e < count ? value_of(p[e]) : nan};
        sums_add_group(a, one, s);
        count_group<kBins>(one, hist);
      }
    }
  }
  // The CTA's sums: each warp's by a shuffle tree into shared memory, then the 8 warps' in
  // order, one record field per thread of warp 0 (see partial_load).
  a.n = static_cast<int>(a.counts & 0xffu);
  a.zeros = static_cast<int>((a.counts >> 8) & 0xffu);
  a.nans = static_cast<int>(a.counts >> 16);
  a = warp_reduce<32>(a);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  if (lane == 0) sh.part[warp] = a;
  __syncthreads();
  if (threadIdx.x < kStatsHead) rec[threadIdx.x] = record_field(sh.part, threadIdx.x, s, count);
  if (sizeof(V) == 8) {  // float64 only: did Σd overflow? (the same answer in every thread)
    double c = sh.part[0].c;
    for (int w = 1; w < kWarps; ++w) c += sh.part[w].c;
    if (!(fabs(c) <= kStatsMaxFinite)) {
      // Σd and Σd² again from d·2^-16
      ScaledSums b{0.0, 0.0};
      const double s_scaled = s * 0x1p-16;
      for (int w = 0; w < W::kCount; ++w) {
#pragma unroll
        for (int m = 0; m < W::kPer; ++m) {
          const int e = W::element(w, m);
          scaled_add(b, e < count ? static_cast<double>(value_of(p[e])) : static_cast<double>(nan), s_scaled);
        }
      }
      b.c = warp_sum(b.c);
      b.q = warp_sum(b.q);
      if (lane == 0) sh.scaled[warp] = b;
      __syncthreads();
      if (threadIdx.x == 0) {
        b = sh.scaled[0];
        for (int w = 1; w < kWarps; ++w) {
          b.c += sh.scaled[w].c;
          b.q += sh.scaled[w].q;
        }
        rec[kStatMean] = b.c;
        rec[kStatM2] = b.q;
        rec[kStatHistLo] = 0x1p16;
      }
    }
  }
}

// An item's partial record as an accumulator: its Σd (mean field) and Σd² (m2 field), times the
// scale in the histogram-lo field, become the mean relative to the shift and M2. The division
// is here, in the finalize kernel, so that the partials kernel has none (a division's slow path
// is a CALL, and registers live across a CALL spill).
__device__ __forceinline__ StatsAcc partial_load(const double* rec) {
  StatsAcc a = stats_load(rec);
  const double scale = rec[kStatHistLo];
  stats_corrected(a.n, rec[kStatMean], rec[kStatM2], a.mean, a.m2);
  a.mean *= scale;
  a.m2 *= scale * scale;
  return a;
}

// ---------------------------------------------------------------------------------- kernels

// One partial record (kStatsHead doubles) per item; histogram counts into hist (tensor index x
// bins). Without a histogram at most 32 registers a thread: 8 CTAs of 256 threads per SM.
template <class T, bool kBins>
__global__ void __launch_bounds__(kThreads, kBins ? 4 : 8)
    stats_partials_kernel(const __grid_constant__ Batch batch, double* __restrict__ partials,
                          unsigned long long* __restrict__ hist) {
  using V = typename Value<T>::V;
  FI_DYNAMIC_SHARED(unsigned, shared_hist);
  __shared__ ItemShared<V> sh;
  const int bins = kBins ? batch.bins : 0;
  const int copies = kBins ? batch.hist_copies : 0;
  const int counters = copies * bins;
  if (kBins) {
    for (int i = threadIdx.x; i < counters; i += kThreads) shared_hist[i] = 0u;
    __syncthreads();
  }
  unsigned* my_hist = copies == kWarps ? shared_hist + (threadIdx.x >> 5) * bins
                                       : (copies == 1 ? shared_hist : nullptr);
  int current = -1;
  std::int64_t pending = 0;  // values in the shared counters (they are 32-bit)
  for (int item = blockIdx.x; item < batch.items; item += gridDim.x) {
    const int t = find_tensor(batch, item);
    const DevTensor& d = batch.t[t];
    if (kBins && counters > 0 && current >= 0 && (d.index != current || pending > (std::int64_t{1} << 30))) {
      flush_hist(shared_hist, copies, bins, hist + static_cast<std::int64_t>(current) * bins);
      pending = 0;
    }
    current = d.index;
    HistSink sink;
    sink.grid = kBins ? grid_of(batch, d) : make_hist_grid(0.0, 1.0, 0);
    sink.shared = my_hist;
    sink.global = hist + static_cast<std::int64_t>(d.index) * bins;
    const std::int64_t begin = (item - d.first_item) * kItem;
    const std::int64_t count = d.numel - begin < kItem ? d.numel - begin : kItem;
    item_record<T, kBins>(reinterpret_cast<const T*>(d.data) + begin, static_cast<int>(count), sink, sh,
                          partials + static_cast<std::int64_t>(item) * kStatsHead);
    pending += count;
  }
  if (kBins && counters > 0 && current >= 0)
    flush_hist(shared_hist, copies, bins, hist + static_cast<std::int64_t>(current) * bins);
}

// ---------------------------------------------------------------------------------- finalize

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

__device__ __forceinline__ StatsAcc warp_merge(StatsAcc acc) {
  const int lane = threadIdx.x & 31;
  for (int offset = 16; offset > 0; offset >>= 1) {
    const StatsAcc other = shfl_down(acc, offset);
    if (lane + offset < 32) stats_merge(acc, other);
  }
  return acc;
}

// One CTA per tensor of the batch: its partials merged by Chan's formula in a fixed order
// (strided, then a shuffle tree), its record written to out (row d.index).
__global__ void __launch_bounds__(kThreads)
    stats_finalize_kernel(const __grid_constant__ Batch batch, const double* __restrict__ partials,
                          const unsigned long long* __restrict__ hist, double* __restrict__ out,
                          int width) {
  __shared__ StatsAcc warp_acc[kWarps];
  const DevTensor& d = batch.t[blockIdx.x];
  const std::int64_t items = (d.numel + kItem - 1) / kItem;
  StatsAcc acc = stats_empty();
  for (std::int64_t i = threadIdx.x; i < items; i += kThreads)
    stats_merge(acc, partial_load(partials + (d.first_item + i) * kStatsHead));
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  acc = warp_merge(acc);
  if (lane == 0) warp_acc[warp] = acc;
  __syncthreads();
  if (warp == 0) acc = warp_merge(lane < kWarps ? warp_acc[lane] : stats_empty());
  const int bins = batch.bins;
  double* rec = out + static_cast<std::int64_t>(d.index) * width;
  if (threadIdx.x == 0) {
    const HistGrid grid = bins > 0 ? grid_of(batch, d) : make_hist_grid(0.0, 1.0, 0);
    stats_store(acc, grid.lo, grid.hi, rec);
  }
  for (int b = threadIdx.x; b < bins; b += kThreads)
    rec[kStatsHead + b] = static_cast<double>(hist[static_cast<std::int64_t>(d.index) * bins + b]);
}

}  // namespace gpu_stats
FI_NAMESPACE_END
