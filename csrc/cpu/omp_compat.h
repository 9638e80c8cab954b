// OpenMP pragmas behind macros so the core builds (serially) without OpenMP.
#pragma once

#define FI_PRAGMA(x) _Pragma(#x)

#if defined(FASTINIT_HAS_OPENMP)
#include <omp.h>
// A loop over units of work on `threads` threads: an equal contiguous share each (static), or
// handed out one at a time (dynamic).
#define FI_OMP_PARALLEL_FOR_STATIC(threads, cond) \
  FI_PRAGMA(omp parallel for schedule(static) num_threads(threads) if (cond))
#define FI_OMP_PARALLEL_FOR_DYNAMIC(threads, cond) \
  FI_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(threads) if (cond))
#define FI_OMP_SIMD FI_PRAGMA(omp simd)
#else
#define FI_OMP_PARALLEL_FOR_STATIC(threads, cond)
#define FI_OMP_PARALLEL_FOR_DYNAMIC(threads, cond)
#if defined(__GNUC__) && !defined(__clang__)
#define FI_OMP_SIMD FI_PRAGMA(GCC ivdep)
#else
#define FI_OMP_SIMD
#endif
#endif
