// CPU fill kernels: any stream operation over any strided layout, vectorised across Philox
// blocks; the caller runs tiles of kTileElements in parallel (fill_cpu_impl.h). Values depend
// only on (key, logical index), so the tiling and the thread count never change a bit.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../common/constant_op.h"
#include "../common/distributions.h"
#include "../common/layout.h"
#include "omp_compat.h"
#include "interleave.h"
#include "philox_avx2.h"

FI_NAMESPACE_BEGIN
namespace cpu {

// Blocks generated per step into stack buffers (a few KiB: they stay in L1).
constexpr std::int64_t kGroupBlocks = 96;

// The Philox words of blocks first .. first + count - 1, structure of arrays.
struct GroupWords {
  alignas(64) std::uint32_t w[4][kGroupBlocks];
};

inline void generate_words(const StreamKey& key, std::uint64_t first, std::int64_t count,
                           GroupWords& out) {
#if defined(__AVX2__)
  std::int64_t j = 0;
  for (; j + 24 <= count; j += 24)
    philox_x8_sets<3>(key, first + j, &out.w[0][j], &out.w[1][j], &out.w[2][j], &out.w[3][j]);
  for (; j < count; j += 8)  // kGroupBlocks is a multiple of 8: the last set may run past count
    philox_x8_sets<1>(key, first + j, &out.w[0][j], &out.w[1][j], &out.w[2][j], &out.w[3][j]);
#else
  FI_OMP_SIMD
  for (std::int64_t j = 0; j < count; ++j) {
    const Words4 r = stream_block(key, first + j);
    out.w[0][j] = r.w[0];
    out.w[1][j] = r.w[1];
    out.w[2][j] = r.w[2];
    out.w[3][j] = r.w[3];
  }
#endif
}
// Elements per unit of parallel work (a tile; a request's last tile may be shorter).
constexpr std::int64_t kTileElements = 1 << 15;

// Values for lanes [lane_begin, lane_end) of one block, for the partial blocks at either end.
template <class Op, class Out>
Out* fill_partial_block(const Op& op, const StreamKey& key, std::uint64_t block, int lane_begin,
                        int lane_end, Out* out, std::int64_t stride) {
  const auto v = op.block(stream_block(key, block));
  for (int lane = lane_begin; lane < lane_end; ++lane, out += stride)
    *out = op.template finish<Out>(v.v[lane]);
  return out;
}

// Write n values, logical indices [first, first + n), to out[0], out[stride], ...
// A group of blocks goes through three stages, each a simple loop the compiler vectorises:
// Philox words (structure of arrays), values lane by lane, rounding to Out lane by lane; then an
// interleaved store puts each block's lanes side by side. op and key are taken by value: a
// local copy cannot alias the output.
template <class Op, class Out>
void fill_run(const Op op, const StreamKey key, std::uint64_t first, std::int64_t n, Out* out,
              std::int64_t stride) {
  using T = typename OutTraits<Out>::Compute;
  constexpr int K = Op::kPerBlock;
  if (n <= 0) return;
  if constexpr (IsConstantOp<Op>::value) {
    const Out value = op.template finish<Out>(op.value);
    FI_OMP_SIMD
    for (std::int64_t j = 0; j < n; ++j) out[j * stride] = value;
    return;
  }
  std::uint64_t block = first / K;
  const std::uint64_t end = first + static_cast<std::uint64_t>(n);
  const std::uint64_t end_block = end / K;
  const int head = static_cast<int>(first % K);
  if (head != 0) {
    const int stop = block == end_block ? static_cast<int>(end % K) : K;
    out = fill_partial_block(op, key, block, head, stop, out, stride);
    ++block;
  }
  GroupWords words;
  alignas(64) T values[K][kGroupBlocks];
  alignas(64) Out rounded[K][kGroupBlocks];
  const unsigned char* lanes[K];
  for (int k = 0; k < K; ++k) lanes[k] = reinterpret_cast<const unsigned char*>(rounded[k]);
  while (block < end_block) {
    const std::int64_t blocks = std::min<std::int64_t>(kGroupBlocks, static_cast<std::int64_t>(end_block - block));
    generate_words(key, block, blocks, words);
    FI_OMP_SIMD
    for (std::int64_t j = 0; j < blocks; ++j) {
      const auto v = op.block(Words4{{words.w[0][j], words.w[1][j], words.w[2][j], words.w[3][j]}});
      // Written out, not a loop over k: v.v[k] with a loop index (even one unrolled) puts v in
      // memory, and GCC then gave up vectorising the float64 normal (4x slower).
      static_assert(K == 2 || K == 4, "two or four values per block");
      values[0][j] = v.v[0];
      values[1][j] = v.v[1];
      if constexpr (K == 4) {
        values[2][j] = v.v[2];
        values[3][j] = v.v[3];
      }
    }
    for (int k = 0; k < K; ++k) {
      FI_OMP_SIMD
      for (std::int64_t j = 0; j < blocks; ++j) rounded[k][j] = op.template finish<Out>(values[k][j]);
    }
    if (stride == 1) {
      Interleave<K, sizeof(Out)>::store(reinterpret_cast<unsigned char*>(out), lanes, blocks);
    } else {
      for (std::int64_t j = 0; j < blocks; ++j)
        for (int k = 0; k < K; ++k) out[(K * j + k) * stride] = rounded[k][j];
    }
    out += blocks * K * stride;
    block += static_cast<std::uint64_t>(blocks);
  }
  if (end % K != 0 && (head == 0 || first / K != end_block))
    fill_partial_block(op, key, end_block, 0, static_cast<int>(end % K), out, stride);
}

// Elements [begin, end) of a collapsed layout, in its row-major order: the pieces of the runs
// (sweeps of the last dim) that the range covers.
template <class Op, class Out>
void fill_elements(const Op& op, const StreamKey& key, const Layout& layout, Out* base,
                   std::int64_t begin, std::int64_t end) {
  const int last = layout.ndim - 1;
  const std::int64_t inner = layout.ndim == 0 ? 1 : layout.shape[last];
  const std::int64_t mem_step = layout.ndim == 0 ? 1 : layout.mem_stride[last];
  const std::int64_t logical_step = layout.ndim == 0 ? 1 : layout.logical_stride[last];
  std::int64_t run = begin / inner;
  std::int64_t pos = begin - run * inner;
  while (begin < end) {
    std::int64_t mem_offset = 0;
    std::uint64_t logical = 0;
    layout.run_start(run, mem_offset, logical);
    const std::int64_t count = std::min(inner - pos, end - begin);
    Out* out = base + mem_offset + pos * mem_step;
    if (logical_step == 1) {
      fill_run(op, key, logical + static_cast<std::uint64_t>(pos), count, out, mem_step);
    } else {  // a logical order that is not contiguous along the last dim: one value at a time
      for (std::int64_t e = pos; e < pos + count; ++e, out += mem_step)
        fill_run(op, key, logical + static_cast<std::uint64_t>(e * logical_step), 1, out, 1);
    }
    begin += count;
    ++run;
    pos = 0;
  }
}

}  // namespace cpu
FI_NAMESPACE_END
