// CUDA fill kernels for one tensor: every stream operation (csrc/common/distributions.h) over
// any strided layout, in place, fused (Philox, transform, scaling and rounding in one pass),
// enqueued on the caller's stream. Values depend only on (key, logical index): the launch
// shape, the path taken and the device never change a bit, so the results equal the CPU core's
// and the NumPy path's. Many tensors at once: fill_many_cuda.cu.
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
// The rounding of 16-bit outputs and the block stores: fill_device.cuh. The element path always
// rounds through op.finish.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "../common/layout.h"
#include "../fill_batch.h"
#include "../fill_dispatch.h"
#include "cuda_check.h"
#include "fill_cuda.h"
#include "fill_device.cuh"

FI_NAMESPACE_BEGIN
namespace gpu {

constexpr std::uint64_t kMaxGridX = 1ull << 24;    // CTAs: beyond, grid-stride loops or more launches
constexpr std::uint64_t kMaxGridY = 65535;
constexpr std::int64_t kMinBlocksPerRun = 8;       // narrower runs take the element path

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
    fill_contiguous_kernel(const __grid_constant__ Op op, const __grid_constant__ StreamRoundKeys keys, Out* out,
                           std::uint64_t first_block, std::uint64_t blocks,
                           const __grid_constant__ EdgeBlocks edges) {
  constexpr int K = Op::kPerBlock;
  const std::uint64_t t0 = static_cast<std::uint64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const std::uint64_t stride = static_cast<std::uint64_t>(gridDim.x) * kThreads;
  if (t0 < static_cast<std::uint64_t>(edges.count)) {
    const int i = static_cast<int>(t0);
    const OutBlock<Out, K> o = block_outputs<Op, Out>(op, stream_block(keys, edges.block[i]), true);
    Out* p = out + edges.offset[i];
    FI_UNROLL
    for (int k = 0; k < K; ++k)
      if (k >= edges.lane_begin[i] && k < edges.lane_end[i]) p[k - edges.lane_begin[i]] = o.v[k];
  }
  for (std::uint64_t t = t0; t < blocks; t += stride)
    store_block(out + t * K, block_outputs<Op, Out>(op, stream_block(keys, first_block + t), true));
}

// Runs along the last dim (logical step 1): CTA row threadIdx.y takes one run, its threads the
// run's Philox blocks; grid y and each CTA's rows cover the runs, grid x the blocks of a run.
template <class Op, class Out>
__global__ void __launch_bounds__(kThreads)
    fill_runs_kernel(const __grid_constant__ Op op, const __grid_constant__ StreamRoundKeys keys,
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
      const RunBlocks rb = run_blocks<K>(first, end);
      const std::uint64_t x0 = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
      if (mem_step == 1 && blocks_aligned<K>(run_out, first)) {
        // Whole blocks by vector stores, in a loop of their own; the partial ends by threads 0, 1.
        const std::uint64_t j0 = rb.full_begin + x0;
        store_full_blocks(op, keys, rb.first_block + j0, x_stride, strided_count(j0, rb.full_end, x_stride),
                          run_out + (static_cast<std::int64_t>(j0 * K) - static_cast<std::int64_t>(first % K)),
                          hw_round);
        const std::int64_t edge = x0 == 0 ? rb.head : x0 == 1 ? rb.tail : -1;
        if (edge >= 0)
          write_lanes(op, keys, rb.first_block + static_cast<std::uint64_t>(edge), first, end, run_out, 1, hw_round);
      } else {
        for (std::uint64_t j = x0; j < rb.blocks; j += x_stride)
          write_lanes(op, keys, rb.first_block + j, first, end, run_out, mem_step, hw_round);
      }
    }
    __syncthreads();  // the row's start is rewritten in the next iteration
  }
}

// Any layout: element e of the (dim-reordered) layout, one thread each.
template <class Op, class Out>
__global__ void __launch_bounds__(kThreads)
    fill_elements_kernel(const __grid_constant__ Op op, const __grid_constant__ StreamRoundKeys keys,
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
    base[offset] = LaneValue<Op, Out>::get(op, stream_block(keys, logical / K),
                                           static_cast<int>(logical % K));
  }
}

// ---------------------------------------------------------------------------- launcher


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

// Resident CTAs per multiprocessor of `kernel` on `device`, asked once per kernel and device
// (devices of different architectures differ).
template <auto kernel>
int resident_ctas(int device) {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached] = {};
  if (device >= 0 && device < kCached) {
    const int known = cache[device].load(std::memory_order_relaxed);
    if (known > 0) return known;
  }
  int n = 0;
  FI_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0));
  n = std::max(n, 1);
  if (device >= 0 && device < kCached) cache[device].store(n, std::memory_order_relaxed);
  return n;
}

template <class Out, class Op>
void launch_runs(const Op& op, const StreamRoundKeys& keys, const Layout& layout, Out* base,
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
  fill_runs_kernel<Op, Out><<<grid, block, 0, stream>>>(op, keys, layout, base, runs, hw_round);
  FI_CUDA_CHECK_LAUNCH("fill_runs_kernel");
}

template <class Out, class Op>
void launch(const Op& op, const StreamRoundKeys& keys, const Layout& in, std::uintptr_t data, int device,
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
      with_fast_op<Out>(op, [&](const auto& fast_op) {  // the clamp-free variant when it is exact
        constexpr auto kernel = fill_contiguous_kernel<std::decay_t<decltype(fast_op)>, Out>;
        const std::uint64_t resident = static_cast<std::uint64_t>(sm_count(device)) *
                                       static_cast<std::uint64_t>(resident_ctas<kernel>(device));
        const unsigned grid = grid_dim(std::max<std::uint64_t>(blocks, static_cast<std::uint64_t>(edges.count)),
                                       kThreads, resident);
        kernel<<<grid, kThreads, 0, stream>>>(fast_op, keys, full_out, full_first, blocks, edges);
        FI_CUDA_CHECK_LAUNCH("fill_contiguous_kernel");
      });
      return;
    }
    launch_runs<Out>(op, keys, layout, base, stream, hw_round);  // unaligned, or 16-bit with NaN
    return;
  }

  const int last = layout.ndim - 1;
  const std::int64_t inner = layout.shape[last];
  const std::int64_t mem_step = layout.mem_stride[last];
  const std::int64_t max_blocks = (inner + K - 1) / K + 1;  // blocks a run can touch
  if (layout.logical_stride[last] == 1 && std::llabs(mem_step) <= K && max_blocks >= kMinBlocksPerRun) {
    launch_runs<Out>(op, keys, layout, base, stream, hw_round);
    return;
  }

  const Layout ordered = by_memory_order(layout);
  fill_elements_kernel<Op, Out><<<grid_dim(numel, kThreads, kMaxGridX), kThreads, 0, stream>>>(
      op, keys, ordered, base);
  FI_CUDA_CHECK_LAUNCH("fill_elements_kernel");
}


}  // namespace gpu
FI_NAMESPACE_END

namespace fastinit {

void cuda_fill(const FillRequest& request, int device, std::uintptr_t stream) {
  if (request.op == kOpConstant) {  // written by the batched kernel (no per-tensor variant)
    const SingleFillBatch single(request);
    return cuda_fill_many(single.batch, device, stream);
  }
  if (request.ndim < 0 || request.ndim > kRequestMaxDims)
    throw std::invalid_argument("fastinit: bad number of dims " + std::to_string(request.ndim));
  if (!valid_dtype(request.dtype))
    throw std::invalid_argument("fastinit: unknown dtype code " + std::to_string(request.dtype));
  if (!valid_op(request.op))
    throw std::invalid_argument("fastinit: unknown fill op code " + std::to_string(request.op));
  Layout layout;
  if (!make_layout(request.ndim, request.shape, request.mem_stride, request.logical_stride,
                   request.logical_base, layout))
    throw std::invalid_argument("fastinit: the view has more than 16 non-mergeable dims");
  if (layout.numel == 0) return;  // nothing to launch (and no CUDA call at all)

  cuda_detail::DeviceGuard guard(device);  // the tensor's device, restored on return or throw
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  const StreamRoundKeys keys = round_keys(StreamKey{request.k0, request.k1, request.purpose});
  // p[11] (central-only) is a CPU hint: the two-piece kernel gives the same bits.
  visit_fill<false>(request.op, request.dtype, request.params, [&](const auto& op, auto* out_type) {
    using Op = std::decay_t<decltype(op)>;
    using Out = std::remove_pointer_t<decltype(out_type)>;
    if constexpr (!IsConstantOp<Op>::value)
      gpu::launch<Out>(op, keys, layout, request.data, device, s, gpu::hardware_rounding_ok(op));
  });
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
