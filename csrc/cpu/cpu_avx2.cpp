// The AVX2 + FMA build of the CPU kernels (compiled with -mavx2 -mfma; chosen at run time).
#include "cpu_entry.h"
#include "fill_cpu_impl.h"
#include "stats_kernels.h"

namespace fastinit {
namespace cpu_avx2 {
void cpu_fill(const FillRequest& request) { cpu::cpu_fill_impl(request); }
void cpu_fill_many(const FillBatch& batch, int threads) { cpu::cpu_fill_many_impl(batch, threads); }
void cpu_stats(const StatsRequest& request, double* out) { cpu::cpu_stats_impl(request, out); }
}  // namespace cpu_avx2
}  // namespace fastinit
