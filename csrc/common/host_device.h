// One annotation for code compiled by both the host compiler and nvcc.
#pragma once

// Always inlined: the CPU kernels vectorise only if the whole per-block computation is inlined
// into the loop over blocks, and GCC's unit-growth limit would otherwise stop inlining in a
// translation unit that instantiates many kernels (a 10x slowdown, seen).
#if defined(__CUDACC__)
#define FI_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define FI_HD inline __attribute__((always_inline))
#else
#define FI_HD inline
#endif

#include <cstdint>

// Fully unroll a short fixed-count loop (lanes of a Philox block), so that the host compiler
// can vectorise across blocks and nvcc keeps everything in registers.
#if defined(__CUDACC__)
#define FI_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__clang__)
#define FI_UNROLL _Pragma("GCC unroll 8")
#elif defined(__clang__)
#define FI_UNROLL _Pragma("unroll")
#else
#define FI_UNROLL
#endif

// Each instruction-set build of the CPU kernels (generic, AVX2) and the CUDA build compile these
// headers with different flags; an inline namespace per build keeps their inline functions
// apart, so the linker can never hand one build's machine code to another.
#if !defined(FASTINIT_ISA)
#define FASTINIT_ISA generic
#endif
#define FI_NAMESPACE_BEGIN \
  namespace fastinit {     \
  inline namespace FASTINIT_ISA {
#define FI_NAMESPACE_END \
  }                      \
  }
