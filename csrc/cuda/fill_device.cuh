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

}  // namespace gpu
FI_NAMESPACE_END
