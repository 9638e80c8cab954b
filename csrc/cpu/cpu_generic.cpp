// The portable build of the CPU kernels (baseline instruction set of the target).
#define FASTINIT_CPU_BUILD cpu_generic
#include "cpu_entry_points.inl"
