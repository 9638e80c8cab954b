// Batched CUDA fills: the requests of one device (csrc/fill_batch.h checks them, drops the
// empty ones and cuts the batch where two requests write the same memory) in one launch per
// group of requests with the same operation and output dtype, enqueued on the caller's stream.
// Values are those of the per-tensor kernels (fill_cuda.cu), bit for bit: each element is a
// pure function of (key, logical index), whoever computes it.
//
// The request table travels as a __grid_constant__ kernel parameter (CUDA >= 12.1 allows
// 32 KiB): the launch copies it, so the host's table can go at once, nothing is allocated on
// the device, no copy needs a host buffer kept alive (pageable memory would make
// cudaMemcpyAsync synchronise; a pinned buffer would have to outlive the copy, and, under graph
// capture, every replay), and a captured launch keeps its own table. A group larger than one
// table (BatchTable::kCapacity requests, kPool dims of strided layouts) takes several launches.
//
// Request i gets ctas(i) CTAs of kThreads threads; cta_begin is their prefix sum. A CTA finds
// its request by binary search over cta_begin (the same index in the whole CTA: constant-cache
// broadcasts), then covers its share of the request:
//   contiguous  one run, logical and memory order contiguous (whole tensors, shards, row
//               slices): kItems Philox blocks per thread, a CTA's threads on neighbouring
//               blocks, one vector store per block when the blocks are aligned; the partial
//               blocks at the ends lane by lane (write_block);
//   strided     anything else: kItems elements per thread, each computing its element's Philox
//               block (the per-tensor element path), dims ordered by memory stride.
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/layout.h"
#include "../fill_batch.h"
#include "../fill_dispatch.h"
#include "cuda_check.h"
#include "fill_cuda.h"
#include "fill_device.cuh"

FI_NAMESPACE_BEGIN
namespace gpu {

constexpr int kItems = 8;                                        // blocks or elements per thread
constexpr std::uint64_t kPerCta = std::uint64_t{kThreads} * kItems;
constexpr std::uint64_t kMaxCtas = (1ull << 31) - 1;            // grid x
constexpr std::size_t kTableBytes = 32000;                       // of the 32764 a launch may pass

enum : std::uint32_t { kStrided = 1u, kVectorStores = 2u, kHardwareRounding = 4u, kNdimShift = 8 };

// One request, as the kernel reads it.
template <class Op>
struct BatchEntry {
  Op op;
  StreamKey key;
  std::uint32_t flags;      // kStrided | kVectorStores | kHardwareRounding | ndim << kNdimShift
  std::uintptr_t data;      // contiguous: the element of logical index `first`; strided: the base
  std::uint64_t first;      // contiguous: logical index of data[0]; strided: the logical base
  std::uint64_t count;      // elements
  std::uint32_t cta_begin;  // the request's first CTA in the launch
  std::int32_t dims;        // strided: shape, mem_stride, logical_stride at pool[dims ...]
};

template <class Op>
struct BatchTable {
  static constexpr int kPool = 3 * 96;  // int64 per strided layout: 3 per dim, at most 3 * 16
  static constexpr int kCapacity =
      static_cast<int>((kTableBytes - 2 * sizeof(std::int64_t) - kPool * sizeof(std::int64_t)) /
                       sizeof(BatchEntry<Op>));
  std::int32_t count;
  std::uint32_t ctas;  // grid size
  std::int64_t pool[kPool];
  BatchEntry<Op> entry[kCapacity];
};

template <class Op, class Out>
__global__ void __launch_bounds__(kThreads) fill_many_kernel(const __grid_constant__ BatchTable<Op> table) {
  constexpr int K = Op::kPerBlock;
  const std::uint32_t cta = blockIdx.x;
  int lo = 0, hi = table.count - 1;  // the last request with cta_begin <= cta
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (table.entry[mid].cta_begin <= cta)
      lo = mid;
    else
      hi = mid - 1;
  }
  const BatchEntry<Op>& e = table.entry[lo];
  const Op op = e.op;
  const StreamKey key = e.key;
  const std::uint32_t flags = e.flags;
  const std::uint64_t start = static_cast<std::uint64_t>(cta - e.cta_begin) * kPerCta + threadIdx.x;
  if (!(flags & kStrided)) {
    const std::uint64_t first = e.first;
    const std::uint64_t end = first + e.count;
    const std::uint64_t first_block = first / K;
    const std::uint64_t blocks = (end + K - 1) / K - first_block;
    Out* const out = reinterpret_cast<Out*>(e.data);
    const bool vector_ok = (flags & kVectorStores) != 0, hw_round = (flags & kHardwareRounding) != 0;
    std::uint64_t b = start;
    for (int j = 0; j < kItems && b < blocks; ++j, b += kThreads)
      write_block(op, key, first_block + b, first, end, out, 1, vector_ok, hw_round);
  } else {
    const int ndim = static_cast<int>(flags >> kNdimShift);
    const std::int64_t* dims = table.pool + e.dims;
    Out* const base = reinterpret_cast<Out*>(e.data);
    std::uint64_t i = start;
    for (int j = 0; j < kItems && i < e.count; ++j, i += kThreads) {
      std::int64_t offset = 0;
      std::uint64_t logical = e.first;
      unravel(static_cast<std::int64_t>(i), ndim, dims, dims + ndim, dims + 2 * ndim, offset, logical);
      base[offset] = LaneValue<Op, Out>::get(op, stream_block(key, logical / K), static_cast<int>(logical % K));
    }
  }
}

// Launches the requests fills[members[...]] (all of operation type Op and output type Out), as
// few launches as the table's capacity allows.
template <class Op, class Out>
void launch_group(const std::vector<PreparedFill>& fills, const std::vector<std::size_t>& members,
                  cudaStream_t stream) {
  using Table = BatchTable<Op>;
  constexpr int K = Op::kPerBlock;
  static_assert(sizeof(Table) <= kTableBytes, "a table must fit in the kernel parameter space");
  std::unique_ptr<Table> table(new Table());  // 32 KB: not on the stack
  Table& t = *table;
  int pool_used = 0;
  auto launch = [&]() {
    if (t.count == 0) return;
    fill_many_kernel<Op, Out><<<t.ctas, kThreads, 0, stream>>>(t);
    FI_CUDA_CHECK_LAUNCH("fill_many_kernel");
    t.count = 0;
    t.ctas = 0;
    pool_used = 0;
  };
  for (const std::size_t m : members) {
    const PreparedFill& p = fills[m];
    const Layout& layout = p.layout;
    BatchEntry<Op> e{};
    e.op = op_from_params<Op>(p.params);
    e.key = p.key;
    e.count = static_cast<std::uint64_t>(layout.numel);
    const bool contiguous = layout.ndim == 0 ||
                            (layout.ndim == 1 && layout.mem_stride[0] == 1 && layout.logical_stride[0] == 1);
    std::uint64_t work = e.count;  // elements (strided) or Philox blocks (contiguous)
    int need = 0;                  // pool entries
    Layout ordered;
    if (contiguous) {
      e.first = layout.logical_base;
      e.data = p.data;
      work = (e.first + e.count + K - 1) / K - e.first / K;
      if (blocks_aligned<K>(reinterpret_cast<const Out*>(p.data), e.first)) e.flags |= kVectorStores;
      if (hardware_rounding_ok(e.op)) e.flags |= kHardwareRounding;
    } else {
      ordered = by_memory_order(layout);
      e.first = ordered.logical_base;
      e.data = p.data;
      e.flags = kStrided | (static_cast<std::uint32_t>(ordered.ndim) << kNdimShift);
      need = 3 * ordered.ndim;
    }
    const std::uint64_t ctas = (work + kPerCta - 1) / kPerCta;
    if (ctas > kMaxCtas) throw std::invalid_argument("fastinit: a tensor too large for one launch");
    if (t.count == Table::kCapacity || pool_used + need > Table::kPool || ctas > kMaxCtas - t.ctas) launch();
    if (need > 0) {
      e.dims = pool_used;
      for (int d = 0; d < ordered.ndim; ++d) {
        t.pool[pool_used + d] = ordered.shape[d];
        t.pool[pool_used + ordered.ndim + d] = ordered.mem_stride[d];
        t.pool[pool_used + 2 * ordered.ndim + d] = ordered.logical_stride[d];
      }
      pool_used += need;
    }
    e.cta_begin = t.ctas;
    t.entry[t.count++] = e;
    t.ctas += static_cast<std::uint32_t>(ctas);
  }
  launch();
}

// The kernel a request runs in: its op type (a truncated normal in far mode is its own) and
// its dtype. Requests of one group share a launch.
inline int group_of(const PreparedFill& p) {
  const int variant = p.op == kOpTruncNormal && p.params[10] != 0.0 ? 4 : p.op;
  return variant * 4 + p.dtype;
}
constexpr int kGroups = 5 * 4;

// One segment: requests that write disjoint memory, so the groups' launches may run in any
// order (they run in the stream's order, group by group).
inline void launch_segment(const std::vector<PreparedFill>& fills, const FillSegment& segment,
                           cudaStream_t stream) {
  std::vector<std::size_t> groups[kGroups];
  for (std::size_t i = segment.begin; i < segment.end; ++i) groups[group_of(fills[i])].push_back(i);
  for (const std::vector<std::size_t>& members : groups) {
    if (members.empty()) continue;
    const PreparedFill& any = fills[members.front()];
    visit_fill<false>(any.op, any.dtype, any.params, [&](const auto& op, auto* out_type) {
      using Op = std::decay_t<decltype(op)>;
      using Out = std::remove_pointer_t<decltype(out_type)>;
      launch_group<Op, Out>(fills, members, stream);
    });
  }
}

}  // namespace gpu
FI_NAMESPACE_END

namespace fastinit {

void cuda_fill_many(const FillBatch& batch, int device, std::uintptr_t stream) {
  const std::vector<PreparedFill> fills = prepare_fills(batch);  // throws before any launch
  if (fills.empty()) return;                                     // no CUDA call at all
  cuda_detail::DeviceGuard guard(device);
  const cudaStream_t s = reinterpret_cast<cudaStream_t>(stream);
  for (const FillSegment& segment : disjoint_segments(fills)) gpu::launch_segment(fills, segment, s);
}

}  // namespace fastinit
