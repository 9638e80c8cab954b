// OpenMP's SIMD pragma behind a macro: compiled with -fopenmp-simd (no OpenMP runtime; the
// threads are fastinit's own, thread_pool.h), else GCC's ivdep, else nothing.
#pragma once

#define FI_PRAGMA(x) _Pragma(#x)

#if defined(FASTINIT_HAS_OPENMP_SIMD)
#define FI_OMP_SIMD FI_PRAGMA(omp simd)
#elif defined(__GNUC__) && !defined(__clang__)
#define FI_OMP_SIMD FI_PRAGMA(GCC ivdep)
#else
#define FI_OMP_SIMD
#endif
