// The AVX2 + FMA build of the CPU kernels (compiled with -mavx2 -mfma; chosen at run time).
#define FASTINIT_CPU_BUILD cpu_avx2
#include "cpu_entry_points.inl"
