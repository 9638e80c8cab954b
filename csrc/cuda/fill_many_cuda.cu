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
// capture, every replay), and a captured launch keeps its own table. A launch copies the whole
// parameter, so there are two table sizes: 4 KB for a group that fits (a few requests: a
// single constant fill, a small model), 32 KB otherwise. A group larger than one table
// (kCapacity requests, kPool dims of strided layouts) takes several launches.
//
// Request i gets ctas(i) CTAs of kThreads threads; cta_begin is their prefix sum. A CTA finds
// its request by binary search over cta_begin (the same index in the whole CTA: constant-cache
// broadcasts), then covers its share of the request:
//   contiguous  one run, logical and memory order contiguous (whole tensors, shards, row
//               slices): kItems Philox blocks per thread, a CTA's threads on neighbouring
//               blocks. Aligned: the CTAs share the whole blocks, one vector store each in a
//               loop of its own (store_full_blocks), and threads 0 and 1 of the request's first
//               CTA write the partial blocks at the ends lane by lane; unaligned: every block
//               lane by lane (write_lanes).
//   strided     anything else: kItems elements per thread, each computing its element's Philox
//               block (the per-tensor element path), dims ordered by memory stride.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
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
constexpr std::size_t kSmallTableBytes = 4096;                   // a group of a few requests

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

template <class Op, std::size_t kBytes>
struct BatchTable {
  // int64 for strided layouts (3 per dim, at most 3 * 16 per layout): 6 (2) full layouts.
  static constexpr int kPool = kBytes >= kTableBytes ? 3 * 96 : 3 * 32;
  static constexpr int kCapacity =
      static_cast<int>((kBytes - 2 * sizeof(std::int64_t) - kPool * sizeof(std::int64_t)) /
                       sizeof(BatchEntry<Op>));
  std::int32_t count;
  std::uint32_t ctas;  // grid size
  std::int64_t pool[kPool];
  BatchEntry<Op> entry[kCapacity];
};

template <class Op, class Out, class Table>
__global__ void __launch_bounds__(kThreads) fill_many_kernel(const __grid_constant__ Table table) {
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
  const StreamRoundKeys keys = round_keys(e.key);  // once per CTA, not per block
  const std::uint32_t flags = e.flags;
  const std::uint64_t start = static_cast<std::uint64_t>(cta - e.cta_begin) * kPerCta + threadIdx.x;
  if (!(flags & kStrided)) {
    const std::uint64_t first = e.first;
    const std::uint64_t end = first + e.count;
    const RunBlocks rb = run_blocks<K>(first, end);
    Out* const out = reinterpret_cast<Out*>(e.data);  // logical index `first`
    const bool hw_round = (flags & kHardwareRounding) != 0;
    if (flags & kVectorStores) {  // CTA c: whole blocks full_begin + c kPerCta + [0, kPerCta)
      const std::uint64_t j0 = rb.full_begin + start;
      const std::uint64_t n = strided_count(j0, rb.full_end, kThreads);
      const std::uint64_t count = n < kItems ? n : kItems;
      store_full_blocks(op, keys, rb.first_block + j0, kThreads, count,
                        out + (static_cast<std::int64_t>(j0 * K) - static_cast<std::int64_t>(first % K)), hw_round);
      const std::int64_t edge = cta != e.cta_begin ? -1 : threadIdx.x == 0 ? rb.head : threadIdx.x == 1 ? rb.tail : -1;
      if (edge >= 0) write_lanes(op, keys, rb.first_block + static_cast<std::uint64_t>(edge), first, end, out, 1, hw_round);
    } else {
      std::uint64_t b = start;
      for (int j = 0; j < kItems && b < rb.blocks; ++j, b += kThreads)
        write_lanes(op, keys, rb.first_block + b, first, end, out, 1, hw_round);
    }
  } else {
    const int ndim = static_cast<int>(flags >> kNdimShift);
    const std::int64_t* dims = table.pool + e.dims;
    Out* const base = reinterpret_cast<Out*>(e.data);
    std::uint64_t i = start;
    for (int j = 0; j < kItems && i < e.count; ++j, i += kThreads) {
      std::int64_t offset = 0;
      std::uint64_t logical = e.first;
      unravel(static_cast<std::int64_t>(i), ndim, dims, dims + ndim, dims + 2 * ndim, offset, logical);
      base[offset] = LaneValue<Op, Out>::get(op, stream_block(keys, logical / K), static_cast<int>(logical % K));
    }
  }
}

// The clamp-free ops (fill_device.cuh) from a request's parameters.
template <class Op>
Op batch_op(const double* p) {
  return op_from_params<Op>(p);
}
template <>
UnclampedUniformOp<float> batch_op<UnclampedUniformOp<float>>(const double* p) {
  return {op_from_params<UniformOp<float>>(p)};
}
template <>
UnclampedUniformOp<double> batch_op<UnclampedUniformOp<double>>(const double* p) {
  return {op_from_params<UniformOp<double>>(p)};
}
template <>
UnclampedNormalOp<float> batch_op<UnclampedNormalOp<float>>(const double* p) {
  return {op_from_params<NormalOp<float>>(p)};
}
template <>
UnclampedNormalOp<double> batch_op<UnclampedNormalOp<double>>(const double* p) {
  return {op_from_params<NormalOp<double>>(p)};
}

// Whether a request is contiguous (one run in both orders) and, if not, its layout ordered by
// memory stride (the strided path's dims).
inline bool contiguous_request(const Layout& layout) {
  return layout.ndim == 0 || (layout.ndim == 1 && layout.mem_stride[0] == 1 && layout.logical_stride[0] == 1);
}

// Launches the requests fills[members[...]] (all of operation type Op and output type Out) with
// tables of type Table, as few launches as the table's capacity allows.
template <class Op, class Out, class Table>
void launch_group_with(const std::vector<PreparedFill>& fills, const std::vector<std::size_t>& members,
                       cudaStream_t stream) {
  constexpr int K = Op::kPerBlock;
  static_assert(sizeof(Table) <= kTableBytes, "a table must fit in the kernel parameter space");
  std::unique_ptr<Table> table(new Table());  // up to 32 KB: not on the stack
  Table& t = *table;
  int pool_used = 0;
  auto launch = [&]() {
    if (t.count == 0) return;
    fill_many_kernel<Op, Out, Table><<<t.ctas, kThreads, 0, stream>>>(t);
    FI_CUDA_CHECK_LAUNCH("fill_many_kernel");
    t.count = 0;
    t.ctas = 0;
    pool_used = 0;
  };
  for (const std::size_t m : members) {
    const PreparedFill& p = fills[m];
    const Layout& layout = p.layout;
    BatchEntry<Op> e{};
    e.op = batch_op<Op>(p.params);
    e.key = p.key;
    e.count = static_cast<std::uint64_t>(layout.numel);
    std::uint64_t work = e.count;  // elements (strided) or Philox blocks (contiguous)
    int need = 0;                  // pool entries
    Layout ordered;
    if (contiguous_request(layout)) {
      e.first = layout.logical_base;
      e.data = p.data;
      const RunBlocks rb = run_blocks<K>(e.first, e.first + e.count);
      work = rb.blocks;
      if (blocks_aligned<K>(reinterpret_cast<const Out*>(p.data), e.first)) {
        e.flags |= kVectorStores;
        work = std::max<std::uint64_t>(rb.full(), 1);  // the edges go with the first CTA
      }
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

// The small table when the whole group fits in it (one launch, 4 KB of parameters), else the
// large one.
template <class Op, class Out>
void launch_group(const std::vector<PreparedFill>& fills, const std::vector<std::size_t>& members,
                  cudaStream_t stream) {
  using Small = BatchTable<Op, kSmallTableBytes>;
  using Large = BatchTable<Op, kTableBytes>;
  int pool = 0;
  for (const std::size_t m : members)
    if (!contiguous_request(fills[m].layout)) pool += 3 * fills[m].layout.ndim;
  if (members.size() <= static_cast<std::size_t>(Small::kCapacity) && pool <= Small::kPool)
    return launch_group_with<Op, Out, Small>(fills, members, stream);
  launch_group_with<Op, Out, Large>(fills, members, stream);
}

// The kernel a request runs in: its op type (a truncated normal in far mode is its own, and so
// are the clamp-free uniform and normal) and its dtype. Requests of one group share a launch.
inline int group_of(const PreparedFill& p) {
  int variant = p.op;
  if (p.op == kOpTruncNormal && p.params[10] != 0.0) {
    variant = 4;
  } else if (p.op == kOpUniform || p.op == kOpNormal) {
    visit_fill<false>(p.op, p.dtype, p.params, [&](const auto& op, auto* out_type) {
      using Op = std::decay_t<decltype(op)>;
      using Out = std::remove_pointer_t<decltype(out_type)>;
      with_fast_op<Out>(op, [&](const auto& fast_op) {
        if (!std::is_same<std::decay_t<decltype(fast_op)>, Op>::value) variant = p.op == kOpUniform ? 5 : 6;
      });
    });
  }
  return variant * 4 + p.dtype;
}
constexpr int kGroups = 7 * 4;

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
      using Out = std::remove_pointer_t<decltype(out_type)>;
      // Every member of the group takes the same variant as `any` (group_of).
      with_fast_op<Out>(op, [&](const auto& fast_op) {
        launch_group<std::decay_t<decltype(fast_op)>, Out>(fills, members, stream);
      });
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
