// Device helpers of the fill kernels, shared by the per-tensor launchers (fill_cuda.cu) and the
// batched one (fill_many_cuda.cu): the rounding of a Philox block's values to the output dtype,
// the stores of a block, the value of one lane, and a few host-side helpers of the launchers.
//
// 16-bit outputs of uniform_, normal_ and trunc_normal_ are rounded by the hardware's packed
// conversion (cvt.rn.bf16x2.f32 / cvt.rn.f16x2.f32, one instruction per two values): IEEE round
// to nearest even with overflow to infinity and subnormals kept, the same result as
// bf16_bits_rne / f16_bits_rne for every non-NaN float. They differ only in the payload of a
// NaN, which these ops cannot produce from finite parameters; the host checks that
// (hardware_rounding_ok) and otherwise the software rounding (op.finish) is used.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>

#include "../common/constant_op.h"
#include "../common/distributions.h"
#include "../common/layout.h"

FI_NAMESPACE_BEGIN
namespace gpu {

constexpr int kThreads = 256;  // threads per CTA, every kernel

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
  static constexpr Finish value = Finish::kRounded;  // rounds, then clamps to [lo, hi]
};
template <>
struct FinishKind<NormalOp<float>> {
  static constexpr Finish value = Finish::kRounded;  // rounds, then clamps to [lo, hi]
};
template <bool kFar>
struct FinishKind<TruncNormalOp<float, kFar>> {
  static constexpr Finish value = Finish::kRounded;
};

// ---------------------------------------------------------------------------- clamp-free ops

// Variants of uniform_ and normal_ for parameters whose clamp the host proved to change no value
// (with_fast_op below): the same values, without the clamp's compare-and-select per value.
//   uniform: the draws madd(k, step, start) are monotone in the cell k (one correctly rounded
//            fma, or a rounded product then a rounded sum, of a k that grows), and so is their
//            rounding to Out: when both extreme cells round into [lo, hi] every draw does, and
//            round_and_clamp<Out>(v) is store(v) (store rounds as round_to does).
//   normal:  with lo = -inf and hi = +inf, round_and_clamp<Out>(v) compares false both ways
//            (NaN included) and returns store(round_to<Out>(v)) = store(v): rounding a value
//            that Out represents, back from its compute type, gives the same bits (NaNs keep
//            the quiet payload the first store gave them).
template <class T>
struct UnclampedUniformOp {
  UniformOp<T> base;
  static constexpr int kPerBlock = Family<T>::kPerBlock;
  FI_HD Values<T, kPerBlock> block(Words4 r) const { return base.draws(r); }
  template <class Out>
  FI_HD Out finish(T v) const {
    return OutTraits<Out>::store(v);
  }
};
template <class T>
struct UnclampedNormalOp {
  NormalOp<T> base;
  static constexpr int kPerBlock = Family<T>::kPerBlock;
  FI_HD Values<T, kPerBlock> block(Words4 r) const { return base.block(r); }
  template <class Out>
  FI_HD Out finish(T v) const {
    return OutTraits<Out>::store(v);
  }
};
template <>
struct FinishKind<UnclampedUniformOp<float>> {
  static constexpr Finish value = Finish::kPlain;
};
template <>
struct FinishKind<UnclampedNormalOp<float>> {
  static constexpr Finish value = Finish::kPlain;
};

// Host: whether the clamp of `op` is the identity on every draw of an Out output (false with
// any NaN): both extreme draws, rounded to Out, lie in [lo, hi].
template <class Out, class T>
bool uniform_clamp_is_identity(const UniformOp<T>& op) {
  // The two extreme draws, computed as madd does on the device: a fused multiply-add for
  // float; for double a rounded product (volatile: no contraction by the host compiler) then
  // a rounded sum.
  T first, last;
  if constexpr (std::is_same<T, float>::value) {
    first = std::fma(0.0f, op.step, op.start);
    last = std::fma(UniformOp<T>::kMaxCell, op.step, op.start);
  } else {
    volatile T p0 = T(0) * op.step, p1 = UniformOp<T>::kMaxCell * op.step;
    first = p0 + op.start;
    last = p1 + op.start;
  }
  first = round_to<Out>(first);
  last = round_to<Out>(last);
  const T low = first < last ? first : last, high = first < last ? last : first;
  return op.lo <= low && high <= op.hi;
}
template <class T>
bool normal_clamp_is_identity(const NormalOp<T>& op) {
  return op.lo == -std::numeric_limits<T>::infinity() && op.hi == std::numeric_limits<T>::infinity();
}

// Calls f with the clamp-free variant of `op` for an Out output when its clamp changes nothing,
// else with `op`.
template <class Out, class Op, class F>
void with_fast_op(const Op& op, F&& f) {
  f(op);
}
template <class Out, class T, class F>
void with_fast_op(const UniformOp<T>& op, F&& f) {
  if (uniform_clamp_is_identity<Out>(op)) return f(UnclampedUniformOp<T>{op});
  f(op);
}
template <class Out, class T, class F>
void with_fast_op(const NormalOp<T>& op, F&& f) {
  if (normal_clamp_is_identity(op)) return f(UnclampedNormalOp<T>{op});
  f(op);
}

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

// The Philox blocks of a run of logical indices [first, end), numbered from first / K: blocks
// [full_begin, full_end) are whole (none when full_end <= full_begin), and at most two partial
// ones sit at the ends (edge(0), edge(1); -1 when absent).
struct RunBlocks {
  std::uint64_t first_block, blocks, full_begin, full_end;
  std::int64_t head, tail;  // the partial blocks (relative), or -1
  FI_HD std::uint64_t full() const { return full_end > full_begin ? full_end - full_begin : 0; }
};
template <int K>
FI_HD RunBlocks run_blocks(std::uint64_t first, std::uint64_t end) {
  RunBlocks r;
  r.first_block = first / K;
  r.blocks = (end + K - 1) / K - r.first_block;
  r.full_begin = first % K != 0 ? 1 : 0;
  r.full_end = end / K - r.first_block;
  r.head = first % K != 0 ? 0 : -1;
  r.tail = end % K != 0 && r.full_end >= r.full_begin ? static_cast<std::int64_t>(r.full_end) : -1;
  return r;
}

// Write the lanes of Philox block `block` that fall inside the run [first, end) of logical
// indices, one by one; logical index i lives at run_out[(i - first) * mem_step].
template <class Op, class Out, class Keys>
__device__ __forceinline__ void write_lanes(const Op& op, const Keys& keys, std::uint64_t block,
                                            std::uint64_t first, std::uint64_t end, Out* run_out,
                                            std::int64_t mem_step, bool hw_round) {
  constexpr int K = Op::kPerBlock;
  const std::uint64_t lane0 = block * K;
  const OutBlock<Out, K> o = block_outputs<Op, Out>(op, stream_block(keys, block), hw_round);
  const std::int64_t offset0 = static_cast<std::int64_t>(lane0 - first);  // < 0 in a head block
  FI_UNROLL
  for (int k = 0; k < K; ++k) {
    const std::uint64_t i = lane0 + static_cast<std::uint64_t>(k);
    if (i >= first && i < end) run_out[(offset0 + k) * mem_step] = o.v[k];
  }
}

// `count` whole blocks block0, block0 + step, ..., each with one aligned vector store, the first
// at out0 (lane 0 of block0), the next step * K elements further. The loop has nothing but the
// block: lane checks and the partial edge blocks are the caller's, outside it (a loop that also
// held the lane-by-lane stores had the compiler merge both into scalar stores). kHw: the 16-bit
// hardware rounding (hoisted out of the loop).
template <class Op, class Out, bool kHw, class Keys>
__device__ __forceinline__ void store_full_blocks_as(const Op& op, const Keys& keys, std::uint64_t block0,
                                                     std::uint64_t step, std::uint64_t count, Out* out0) {
  constexpr int K = Op::kPerBlock;
  std::uint64_t block = block0;
  Out* p = out0;
#pragma unroll 1
  for (std::uint64_t n = 0; n < count; ++n, block += step, p += step * K)
    store_block(p, block_outputs<Op, Out>(op, stream_block(keys, block), kHw));
}
template <class Op, class Out, class Keys>
__device__ __forceinline__ void store_full_blocks(const Op& op, const Keys& keys, std::uint64_t block0,
                                                  std::uint64_t step, std::uint64_t count, Out* out0,
                                                  bool hw_round) {
  if constexpr (HasHardwareRounding<Op, Out>::value) {
    if (!hw_round) return store_full_blocks_as<Op, Out, false>(op, keys, block0, step, count, out0);
  }
  store_full_blocks_as<Op, Out, true>(op, keys, block0, step, count, out0);
}

// The blocks j0, j0 + step, ... below j_end: how many.
FI_HD std::uint64_t strided_count(std::uint64_t j0, std::uint64_t j_end, std::uint64_t step) {
  return j0 < j_end ? (j_end - j0 + step - 1) / step : 0;
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

// ---------------------------------------------------------------------------- host helpers

inline unsigned grid_dim(std::uint64_t work, std::uint64_t per_cta, std::uint64_t cap) {
  return static_cast<unsigned>(std::min<std::uint64_t>(std::max<std::uint64_t>((work + per_cta - 1) / per_cta, 1), cap));
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

// True when every parameter is finite in the compute type: then no value can be NaN (each op
// is built from finite draws by +, -, *, fma, sqrt and log of positive numbers), and the
// hardware conversion rounds exactly as the software does.
template <class T, class... Rest>
bool all_finite(T first, Rest... rest) {
  return (std::isfinite(first) && ... && std::isfinite(rest));
}

// Whether an op's 16-bit outputs may be rounded by the hardware conversion (see above).
template <class T>
bool hardware_rounding_ok(const UniformOp<T>& op) {
  return all_finite(op.step, op.start, op.lo, op.hi);
}
template <class T>
bool hardware_rounding_ok(const NormalOp<T>& op) {  // clamp bounds may be infinite
  return all_finite(op.mean, op.std) && !std::isnan(op.lo) && !std::isnan(op.hi);
}
template <class T, bool kFar, bool kCentralOnly>
bool hardware_rounding_ok(const TruncNormalOp<T, kFar, kCentralOnly>& op) {
  // Infinite clamp bounds (a one-sided interval) cannot make a NaN; NaN bounds could.
  return all_finite(op.c_lo, op.m_lo, op.c_hi, op.m_hi, op.t0, op.log_t0, op.mean, op.std) &&
         !std::isnan(op.lo) && !std::isnan(op.hi);
}
template <class T>
bool hardware_rounding_ok(const ConstantOp<T>&) {
  return false;  // a constant always rounds in software (no hardware path: FinishKind)
}
template <class T>
bool hardware_rounding_ok(const UnclampedUniformOp<T>& op) {
  return hardware_rounding_ok(op.base);
}
template <class T>
bool hardware_rounding_ok(const UnclampedNormalOp<T>& op) {
  return hardware_rounding_ok(op.base);
}

}  // namespace gpu
FI_NAMESPACE_END
