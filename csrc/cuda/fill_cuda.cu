// CUDA fill kernels: every stream operation (csrc/common/distributions.h) over any strided
// layout, in place, fused (Philox, transform, scaling and rounding in one pass), enqueued on the
// caller's stream. Values depend only on (key, logical index): the launch shape, the path taken
// and the device never change a bit, so the results equal the CPU core's and the NumPy path's.
//
// Three paths, chosen on the host from the collapsed layout (csrc/common/layout.h):
//   contiguous  one run, memory and logical order both contiguous, blocks aligned (whole
//               tensors, shards, row slices): a grid-stride loop over the full Philox blocks on
//               a grid of the resident CTAs, one vector store per block (16 bytes for
//               float32/float64, 8 for the 16-bit formats); two extra threads write the
//               partial blocks at the ends.
//   runs        the last dim is contiguous in logical order and nearly so in memory (column
//               slices, permutes that keep the last dim, steps up to K), and contiguous ranges
//               whose blocks are not aligned: one thread per Philox block of a run, a CTA row
//               per run, the run's start (Layout::run_start) computed once per row.
//   elements    anything else (transposes, narrow runs, logical orders that are not contiguous
//               along the last dim): one thread per element, dims ordered by memory stride so
//               that neighbouring threads write neighbouring addresses; each thread computes its
//               element's Philox block (K times the generator work: the price of coalesced
//               writes here).
//
// 16-bit outputs of uniform_, normal_ and trunc_normal_ are rounded by the hardware's packed
// conversion (cvt.rn.bf16x2.f32 / cvt.rn.f16x2.f32, one instruction per two values): IEEE round
// to nearest even with overflow to infinity and subnormals kept, the same result as
// bf16_bits_rne / f16_bits_rne for every non-NaN float. They differ only in the payload of a
// NaN, which these ops cannot produce from finite parameters; the host checks that and
// otherwise the software rounding (op.finish) is used. The element path always uses op.finish.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../common/distributions.h"
#include "../common/layout.h"
#include "cuda_check.h"
#include "fill_cuda.h"

FI_NAMESPACE_BEGIN
namespace gpu {

constexpr int kThreads = 256;                      // threads per CTA, every kernel
constexpr std::uint64_t kMaxGridX = 1ull << 24;    // CTAs: beyond, grid-stride loops or more launches
constexpr std::uint64_t kMaxGridY = 65535;
constexpr std::int64_t kMinBlocksPerRun = 8;       // narrower runs take the element path

// ---------------------------------------------------------------------------- rounding

// Two float32 values rounded to a 16-bit format and packed: `lo` in bits 0-15, `hi` in 16-31.
__device__ __forceinline__ std::uint32_t pack_rne(float lo, float hi, BFloat16) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#else
  return static_cast<std::uint32_t>(bf16_bits_rne(lo)) |
         (static_cast<std::uint32_t>(bf16_bits_rne(hi)) << 16);
#endif
}
__device__ __forceinline__ std::uint32_t pack_rne(float lo, float hi, Float16) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#else
  return static_cast<std::uint32_t>(f16_bits_rne(lo)) |
         (static_cast<std::uint32_t>(f16_bits_rne(hi)) << 16);
#endif
}

// The two halves of a packed pair, back in float32 (exact).
__device__ __forceinline__ float unpack_lo(std::uint32_t packed, BFloat16) { return bf16_to_float(static_cast<std::uint16_t>(packed)); }
__device__ __forceinline__ float unpack_hi(std::uint32_t packed, BFloat16) { return bf16_to_float(static_cast<std::uint16_t>(packed >> 16)); }
__device__ __forceinline__ float unpack_lo(std::uint32_t packed, Float16) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(packed)));
}
__device__ __forceinline__ float unpack_hi(std::uint32_t packed, Float16) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(packed >> 16)));
}

// How op.finish<Out> treats a value, for the ops whose 16-bit outputs may be rounded by the
// hardware conversion (any other op always rounds through op.finish):
//   kPlain    finish<Out>(v) is OutTraits<Out>::store(v): the conversion is the whole finish.
//   kRounded  finish<Out>(v) rounds v to Out, then works on the rounded value r in float and
//             stores an Out-representable result: it equals pack(finish<float>(r)), since
//             round_to<float> and store<float> are the identity and the final store is exact.
enum class Finish { kSoftware, kPlain, kRounded };
template <class Op>
struct FinishKind {
  static constexpr Finish value = Finish::kSoftware;
};
template <>
struct FinishKind<UniformOp<float>> {
  static constexpr Finish value = Finish::kPlain;
};
template <>
struct FinishKind<NormalOp<float>> {
  static constexpr Finish value = Finish::kRounded;  // rounds, then clamps to [lo, hi]
};
template <bool kFar>
struct FinishKind<TruncNormalOp<float, kFar>> {
  static constexpr Finish value = Finish::kRounded;
};

// Whether block_outputs<Op, Out> has a hardware-rounding path (taken when hw_round is true).
template <class Op, class Out>
struct HasHardwareRounding {
  static constexpr bool value =
      (std::is_same<Out, BFloat16>::value || std::is_same<Out, Float16>::value) &&
      FinishKind<Op>::value != Finish::kSoftware;
};

template <class Out, int K>
struct OutBlock {
  Out v[K];
};

// The K outputs of one Philox block, as op.finish<Out> rounds them. hw_round (finite
// parameters: no NaN can arise) lets 16-bit outputs use the packed hardware conversion.
template <class Op, class Out>
__device__ __forceinline__ OutBlock<Out, Op::kPerBlock> block_outputs(const Op& op, const Words4& r,
                                                                     bool hw_round) {
  constexpr int K = Op::kPerBlock;
  const auto v = op.block(r);
  OutBlock<Out, K> o;
  if constexpr (HasHardwareRounding<Op, Out>::value) {
    if (hw_round) {
      FI_UNROLL
      for (int p = 0; p < K / 2; ++p) {
        std::uint32_t packed = pack_rne(v.v[2 * p], v.v[2 * p + 1], Out{});
        if constexpr (FinishKind<Op>::value == Finish::kRounded)
          packed = pack_rne(op.template finish<float>(unpack_lo(packed, Out{})),
                            op.template finish<float>(unpack_hi(packed, Out{})), Out{});
        o.v[2 * p].bits = static_cast<std::uint16_t>(packed);
        o.v[2 * p + 1].bits = static_cast<std::uint16_t>(packed >> 16);
      }
      return o;
    }
  }
  FI_UNROLL
  for (int k = 0; k < K; ++k) o.v[k] = op.template finish<Out>(v.v[k]);
  return o;
}

// One store for a whole block (the address is aligned to the block's size).
__device__ __forceinline__ void store_block(float* p, const OutBlock<float, 4>& o) {
  *reinterpret_cast<float4*>(p) = make_float4(o.v[0], o.v[1], o.v[2], o.v[3]);
}
__device__ __forceinline__ void store_block(double* p, const OutBlock<double, 2>& o) {
  *reinterpret_cast<double2*>(p) = make_double2(o.v[0], o.v[1]);
}
template <class Out16>
__device__ __forceinline__ void store_block(Out16* p, const OutBlock<Out16, 4>& o) {
  static_assert(sizeof(Out16) == 2, "16-bit output expected");
  *reinterpret_cast<uint2*>(p) =
      make_uint2(static_cast<std::uint32_t>(o.v[0].bits) | (static_cast<std::uint32_t>(o.v[1].bits) << 16),
                 static_cast<std::uint32_t>(o.v[2].bits) | (static_cast<std::uint32_t>(o.v[3].bits) << 16));
}

// Whether lane 0 of every block of a run starting at logical index `first` at address `run_out`
// sits on a multiple of the block's size in bytes (K * sizeof(Out), a power of two).
template <int K, class Out>
FI_HD bool blocks_aligned(const Out* run_out, std::uint64_t first) {
  const std::uint64_t bytes = static_cast<std::uint64_t>(K) * sizeof(Out);
  const std::uint64_t lane0 = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(run_out)) -
                              (first % K) * sizeof(Out);
  return lane0 % bytes == 0;
}

// Write the lanes of Philox block `block` that fall inside the run [first, end) of logical
// indices; logical index i lives at run_out[(i - first) * mem_step].
template <class Op, class Out>
__device__ __forceinline__ void write_block(const Op& op, const StreamKey& key, std::uint64_t block,
                                            std::uint64_t first, std::uint64_t end, Out* run_out,
                                            std::int64_t mem_step, bool vector_ok, bool hw_round) {
  constexpr int K = Op::kPerBlock;
  const std::uint64_t lane0 = block * K;
  const OutBlock<Out, K> o = block_outputs<Op, Out>(op, stream_block(key, block), hw_round);
  // Offset of lane 0 from the run's first element: negative for a run's partial head block.
  const std::int64_t offset0 = static_cast<std::int64_t>(lane0 - first);
  if (vector_ok && lane0 >= first && lane0 + K <= end) {
    store_block(run_out + offset0, o);
    return;
  }
  FI_UNROLL
  for (int k = 0; k < K; ++k) {
    const std::uint64_t i = lane0 + static_cast<std::uint64_t>(k);
    if (i >= first && i < end) run_out[(offset0 + k) * mem_step] = o.v[k];
  }
}

// ---------------------------------------------------------------------------- kernels

// The partial Philox blocks at either end of a contiguous range (at most two): lanes
// [lane_begin, lane_end) of `block`, lane_begin written at out[offset].
struct EdgeBlocks {
  int count;
  std::uint64_t block[2];
  int lane_begin[2], lane_end[2];
  std::int64_t offset[2];
};

// The hot path. Full Philox blocks first_block + t, t < blocks, go to out[t K .. t K + K), one
// aligned vector store each, in a grid-stride loop over a grid sized to the resident CTAs: the
// key schedule and the constants are set up once per thread, not once per block, and nothing
// else is checked per block. The first threads also write the partial edge blocks. Unaligned
// ranges and non-finite parameters of the 16-bit formats take the runs kernel instead.
template <class Op, class Out>
__global__ void __launch_bounds__(kThreads)
    fill_contiguous_kernel(const __grid_constant__ Op op, const StreamKey key, Out* out,
                           std::uint64_t first_block, std::uint64_t blocks,
                           const __grid_constant__ EdgeBlocks edges) {
  constexpr int K = Op::kPerBlock;
  const std::uint64_t t0 = static_cast<std::uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const std::uint64_t stride = static_cast<std::uint64_t>(gridDim.x) * kThreads;
  if (t0 < static_cast<std::uint64_t>(edges.count)) {
    const int i = static_cast<int>(t0);
    const OutBlock<Out, K> o = block_outputs<Op, Out>(op, stream_block(key, edges.block[i]), true);
    Out* p = out + edges.offset[i];
    FI_UNROLL
    for (int k = 0; k < K; ++k)
      if (k >= edges.lane_begin[i] && k < edges.lane_end[i]) p[k - edges.lane_begin[i]] = o.v[k];
  }
  for (std::uint64_t t = t0; t < blocks; t += stride)
    store_block(out + t * K, block_outputs<Op, Out>(op, stream_block(key, first_block + t), true));
}

// Runs along the last dim (logical step 1): CTA row threadIdx.y takes one run, its threads the
// run's Philox blocks; grid y and each CTA's rows cover the runs, grid x the blocks of a run.
template <class Op, class Out>
__global__ void __launch_bounds__(kThreads)
    fill_runs_kernel(const __grid_constant__ Op op, const StreamKey key,
                     const __grid_constant__ Layout layout, Out* base, std::uint64_t runs,
                     bool hw_round) {
  constexpr int K = Op::kPerBlock;
  __shared__ std::int64_t s_offset[kThreads / 32];
  __shared__ std::uint64_t s_first[kThreads / 32];
  const int last = layout.ndim - 1;
  const std::uint64_t inner = static_cast<std::uint64_t>(layout.shape[last]);
  const std::int64_t mem_step = layout.mem_stride[last];
  const std::uint64_t rows = blockDim.y;
  const std::uint64_t x_stride = static_cast<std::uint64_t>(gridDim.x) * blockDim.x;
  // The loop bound is the same for every thread of the CTA, so the barriers are uniform.
  for (std::uint64_t group = blockIdx.y; group * rows < runs; group += gridDim.y) {
    const std::uint64_t run = group * rows + threadIdx.y;
    if (threadIdx.x == 0 && run < runs) layout.run_start(static_cast<std::int64_t>(run),
                                                         s_offset[threadIdx.y], s_first[threadIdx.y]);
    __syncthreads();
    if (run < runs) {
      const std::uint64_t first = s_first[threadIdx.y];
      Out* run_out = base + s_offset[threadIdx.y];
      const std::uint64_t end = first + inner;
      const std::uint64_t first_block = first / K;
      const std::uint64_t blocks = (end + K - 1) / K - first_block;
      const bool vector_ok = mem_step == 1 && blocks_aligned<K>(run_out, first);
      for (std::uint64_t j = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
           j < blocks; j += x_stride)
        write_block(op, key, first_block + j, first, end, run_out, mem_step, vector_ok, hw_round);
    }
    __syncthreads();  // the row's start is rewritten in the next iteration
  }
}

// The value of one lane of a block, rounded by op.finish<Out>.
template <class Op, class Out>
struct LaneValue {
  __device__ static Out get(const Op& op, const Words4& r, int lane) {
    const auto v = op.block(r);
    auto x = v.v[0];
    FI_UNROLL
    for (int k = 1; k < Op::kPerBlock; ++k) x = (lane == k) ? v.v[k] : x;  // no local array
    return op.template finish<Out>(x);
  }
};
// Each lane of a truncated-normal block is a draw of its own (TruncNormalOp::block reads word
// `lane`, or words 2 lane and 2 lane + 1 in float64): move that lane's words to the front and
// evaluate only lane 0, a quarter (half) of the block's work.
template <class T, bool kFar, class Out>
struct LaneValue<TruncNormalOp<T, kFar>, Out> {
  __device__ static Out get(const TruncNormalOp<T, kFar>& op, const Words4& r, int lane) {
    Words4 s = r;
    if (Family<T>::kPerBlock == 4) {
      s.w[0] = lane == 1 ? r.w[1] : lane == 2 ? r.w[2] : lane == 3 ? r.w[3] : r.w[0];
    } else if (lane == 1) {
      s.w[0] = r.w[2];
      s.w[1] = r.w[3];
    }
    return op.template finish<Out>(op.from_uniform(open_uniform(s, 0, T())));
  }
};

// Any layout: element e of the (dim-reordered) layout, one thread each.
template <class Op, class Out>
__global__ void __launch_bounds__(kThreads)
    fill_elements_kernel(const __grid_constant__ Op op, const StreamKey key,
                         const __grid_constant__ Layout layout, Out* base) {
  constexpr int K = Op::kPerBlock;
  const int last = layout.ndim - 1;
  const std::uint64_t inner = static_cast<std::uint64_t>(layout.shape[last]);
  const std::int64_t mem_step = layout.mem_stride[last];
  const std::int64_t logical_step = layout.logical_stride[last];
  const std::uint64_t numel = static_cast<std::uint64_t>(layout.numel);
  const std::uint64_t stride = static_cast<std::uint64_t>(gridDim.x) * blockDim.x;
  for (std::uint64_t e = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       e < numel; e += stride) {
    const std::uint64_t run = e / inner;
    const std::int64_t pos = static_cast<std::int64_t>(e - run * inner);
    std::int64_t offset;
    std::uint64_t logical;
    layout.run_start(static_cast<std::int64_t>(run), offset, logical);
    offset += pos * mem_step;
    logical += static_cast<std::uint64_t>(pos * logical_step);
    base[offset] = LaneValue<Op, Out>::get(op, stream_block(key, logical / K),
                                           static_cast<int>(logical % K));
  }
}

// ---------------------------------------------------------------------------- launcher

inline unsigned grid_dim(std::uint64_t work, std::uint64_t per_cta, std::uint64_t cap) {
  return static_cast<unsigned>(std::min<std::uint64_t>(std::max<std::uint64_t>((work + per_cta - 1) / per_cta, 1), cap));
}

// Multiprocessors of `device`, asked once per device (a query, allowed during stream capture).
inline int sm_count(int device) {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached] = {};
  if (device >= 0 && device < kCached) {
    const int known = cache[device].load(std::memory_order_relaxed);
    if (known > 0) return known;
  }
  int count = 0;
  FI_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  count = std::max(count, 1);
  if (device >= 0 && device < kCached) cache[device].store(count, std::memory_order_relaxed);
  return count;
}

// Resident CTAs per multiprocessor of a kernel, asked once per kernel.
template <class Kernel>
int resident_ctas(Kernel kernel) {
  static std::atomic<int> cached{0};
  int n = cached.load(std::memory_order_relaxed);
  if (n == 0) {
    FI_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0));
    n = std::max(n, 1);
    cached.store(n, std::memory_order_relaxed);
  }
  return n;
}

// Dims ordered by decreasing |memory stride| (stable), so the last dim is the one with the
// smallest stride: consecutive element indices then land on nearby addresses.
inline Layout by_memory_order(const Layout& in) {
  Layout out = in;
  for (int i = 1; i < out.ndim; ++i) {
    for (int j = i; j > 0 && std::llabs(out.mem_stride[j - 1]) < std::llabs(out.mem_stride[j]); --j) {
      std::swap(out.shape[j - 1], out.shape[j]);
      std::swap(out.mem_stride[j - 1], out.mem_stride[j]);
      std::swap(out.logical_stride[j - 1], out.logical_stride[j]);
    }
  }
  return out;
}

template <class Out, class Op>
void launch_runs(const Op& op, const StreamKey& key, const Layout& layout, Out* base,
                 cudaStream_t stream, bool hw_round) {
  constexpr int K = Op::kPerBlock;
  const int last = layout.ndim - 1;
  const std::int64_t inner = layout.shape[last];
  const std::int64_t max_blocks = (inner + K - 1) / K + 1;  // blocks a run can touch
  const std::uint64_t runs = static_cast<std::uint64_t>(layout.numel / inner);
  unsigned width = 32;  // threads per run: a warp at least, the CTA at most
  while (width < static_cast<unsigned>(kThreads) && static_cast<std::int64_t>(width) < max_blocks) width *= 2;
  const unsigned rows = kThreads / width;
  const dim3 block(width, rows);
  const dim3 grid(grid_dim(static_cast<std::uint64_t>(max_blocks), width, kMaxGridX),
                  grid_dim(runs, rows, kMaxGridY));
  fill_runs_kernel<Op, Out><<<grid, block, 0, stream>>>(op, key, layout, base, runs, hw_round);
  FI_CUDA_CHECK_LAUNCH("fill_runs_kernel");
}

template <class Out, class Op>
void launch(const Op& op, const StreamKey& key, const Layout& in, std::uintptr_t data, int device,
            cudaStream_t stream, bool hw_round) {
  constexpr int K = Op::kPerBlock;
  Out* base = reinterpret_cast<Out*>(data);
  Layout layout = in;
  if (layout.ndim == 0) {  // a single element: a 1-D run of one
    layout.ndim = 1;
    layout.shape[0] = 1;
    layout.mem_stride[0] = 1;
    layout.logical_stride[0] = 1;
  }
  const std::uint64_t numel = static_cast<std::uint64_t>(layout.numel);

  if (layout.ndim == 1 && layout.mem_stride[0] == 1 && layout.logical_stride[0] == 1) {
    // Logical indices [first, end) at base[0 ..): full blocks, and the partial ones at the ends.
    const std::uint64_t first = layout.logical_base;
    const std::uint64_t end = first + numel;
    std::uint64_t full_first = (first + K - 1) / K;  // first full block
    const std::uint64_t full_end = end / K;          // one past the last full block
    Out* full_out = base + (full_first * K - first);
    const bool hw_ok = hw_round || !HasHardwareRounding<Op, Out>::value;
    if (blocks_aligned<K>(full_out, 0) && hw_ok) {
      EdgeBlocks edges{};
      if (full_first > full_end) {  // the range lies inside one block
        edges.count = 1;
        edges.block[0] = first / K;
        edges.lane_begin[0] = static_cast<int>(first % K);
        edges.lane_end[0] = static_cast<int>(end % K);
        edges.offset[0] = 0;
        full_first = full_end;
        full_out = base;
      } else {
        if (first % K != 0) {
          edges.block[edges.count] = first / K;
          edges.lane_begin[edges.count] = static_cast<int>(first % K);
          edges.lane_end[edges.count] = K;
          edges.offset[edges.count] = -static_cast<std::int64_t>(full_first * K - first);
          ++edges.count;
        }
        if (end % K != 0) {
          edges.block[edges.count] = full_end;
          edges.lane_begin[edges.count] = 0;
          edges.lane_end[edges.count] = static_cast<int>(end % K);
          edges.offset[edges.count] = static_cast<std::int64_t>((full_end - full_first) * K);
          ++edges.count;
        }
      }
      // Offsets of the edges are relative to full_out.
      const std::uint64_t blocks = full_end - full_first;
      const auto kernel = fill_contiguous_kernel<Op, Out>;
      const std::uint64_t resident =
          static_cast<std::uint64_t>(sm_count(device)) * static_cast<std::uint64_t>(resident_ctas(kernel));
      const unsigned grid = grid_dim(std::max<std::uint64_t>(blocks, static_cast<std::uint64_t>(edges.count)),
                                     kThreads, resident);
      kernel<<<grid, kThreads, 0, stream>>>(op, key, full_out, full_first, blocks, edges);
      FI_CUDA_CHECK_LAUNCH("fill_contiguous_kernel");
      return;
    }
    launch_runs<Out>(op, key, layout, base, stream, hw_round);  // unaligned, or 16-bit with NaN
    return;
  }

  const int last = layout.ndim - 1;
  const std::int64_t inner = layout.shape[last];
  const std::int64_t mem_step = layout.mem_stride[last];
  const std::int64_t max_blocks = (inner + K - 1) / K + 1;  // blocks a run can touch
  if (layout.logical_stride[last] == 1 && std::llabs(mem_step) <= K && max_blocks >= kMinBlocksPerRun) {
    launch_runs<Out>(op, key, layout, base, stream, hw_round);
    return;
  }

  const Layout ordered = by_memory_order(layout);
  fill_elements_kernel<Op, Out><<<grid_dim(numel, kThreads, kMaxGridX), kThreads, 0, stream>>>(
      op, key, ordered, base);
  FI_CUDA_CHECK_LAUNCH("fill_elements_kernel");
}

// True when every parameter is finite in the compute type: then no value can be NaN (each op
// is built from finite draws by +, -, *, fma, sqrt and log of positive numbers), and the
// hardware conversion rounds exactly as the software does.
template <class T, class... Rest>
bool all_finite(T first, Rest... rest) {
  return (std::isfinite(first) && ... && std::isfinite(rest));
}

template <class Out>
void fill_dtype(const FillRequest& request, const Layout& layout, int device, cudaStream_t stream) {
  using T = typename OutTraits<Out>::Compute;
  const StreamKey key{request.k0, request.k1, request.purpose};
  const double* p = request.params;
  auto c = [](double v) { return static_cast<T>(v); };
  switch (request.op) {
    case kOpUniform: {
      const UniformOp<T> op{c(p[0]), c(p[1]), c(p[2]), c(p[3])};
      launch<Out>(op, key, layout, request.data, device, stream,
                  all_finite(op.step, op.start, op.lo, op.hi));
      return;
    }
    case kOpNormal: {
      const NormalOp<T> op{c(p[0]), c(p[1]), c(p[2]), c(p[3])};  // clamp bounds may be infinite
      launch<Out>(op, key, layout, request.data, device, stream,
                  all_finite(op.mean, op.std) && !std::isnan(op.lo) && !std::isnan(op.hi));
      return;
    }
    case kOpTruncNormal: {
      // p[11] (central-only) is a CPU hint: the two-piece kernel gives the same bits.
      // Infinite clamp bounds (a one-sided interval) cannot make a NaN; NaN bounds could.
      const bool finite = all_finite(c(p[0]), c(p[1]), c(p[2]), c(p[3]), c(p[4]), c(p[5]), c(p[6]),
                                     c(p[7])) &&
                          !std::isnan(c(p[8])) && !std::isnan(c(p[9]));
      if (p[10] != 0.0)
        launch<Out>(TruncNormalOp<T, true>{c(p[0]), c(p[1]), c(p[2]), c(p[3]), c(p[4]), c(p[5]),
                                           c(p[6]), c(p[7]), c(p[8]), c(p[9])},
                    key, layout, request.data, device, stream, finite);
      else
        launch<Out>(TruncNormalOp<T, false>{c(p[0]), c(p[1]), c(p[2]), c(p[3]), c(p[4]), c(p[5]),
                                            c(p[6]), c(p[7]), c(p[8]), c(p[9])},
                    key, layout, request.data, device, stream, finite);
      return;
    }
    default:
      throw std::invalid_argument("fastinit: unknown fill op code " + std::to_string(request.op));
  }
}

}  // namespace gpu
FI_NAMESPACE_END

namespace fastinit {

void cuda_fill(const FillRequest& request, int device, std::uintptr_t stream) {
  if (request.ndim < 0 || request.ndim > kRequestMaxDims)
    throw std::invalid_argument("fastinit: bad number of dims " + std::to_string(request.ndim));
  if (request.dtype < kFloat32 || request.dtype > kBFloat16)
    throw std::invalid_argument("fastinit: unknown dtype code " + std::to_string(request.dtype));
  if (request.op < kOpUniform || request.op > kOpTruncNormal)
    throw std::invalid_argument("fastinit: unknown fill op code " + std::to_string(request.op));
  Layout layout;
  if (!make_layout(request.ndim, request.shape, request.mem_stride, request.logical_stride,
                   request.logical_base, layout))
    throw std::invalid_argument("fastinit: the view has more than 16 non-mergeable dims");
  if (layout.numel == 0) return;  // nothing to launch (and no CUDA call at all)

  cuda_detail::DeviceGuard guard(device);  // the tensor's device, restored on return or throw
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  switch (request.dtype) {
    case kFloat32: return gpu::fill_dtype<float>(request, layout, device, s);
    case kFloat64: return gpu::fill_dtype<double>(request, layout, device, s);
    case kFloat16: return gpu::fill_dtype<Float16>(request, layout, device, s);
    case kBFloat16: return gpu::fill_dtype<BFloat16>(request, layout, device, s);
    default: break;  // rejected above
  }
}

bool cuda_compiled() { return true; }

int cuda_device_count() {
  // Never throws: without a driver or a GPU the runtime reports an error, and that means 0.
  try {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return count;
  } catch (...) {
    return 0;
  }
}

}  // namespace fastinit
