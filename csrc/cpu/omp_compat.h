// OpenMP pragmas behind macros so the core builds (serially) without OpenMP.
#pragma once

#define FI_PRAGMA(x) _Pragma(#x)

#if defined(FASTINIT_HAS_OPENMP)
#include <omp.h>
#define FI_OMP_PARALLEL_FOR_IF(cond) FI_PRAGMA(omp parallel for schedule(static) if (cond))
#define FI_OMP_SIMD FI_PRAGMA(omp simd)
#else
#define FI_OMP_PARALLEL_FOR_IF(cond)
#if defined(__GNUC__) && !defined(__clang__)
#define FI_OMP_SIMD FI_PRAGMA(GCC ivdep)
#else
#define FI_OMP_SIMD
#endif
#endif
