// The portable build of the CPU kernels (baseline instruction set of the target).
#include "cpu_entry.h"
#include "fill_cpu_impl.h"
#include "stats_kernels.h"

namespace fastinit {
namespace cpu_generic {
void cpu_fill(const FillRequest& request) { cpu::cpu_fill_impl(request); }
void cpu_fill_many(const FillBatch& batch, int threads) { cpu::cpu_fill_many_impl(batch, threads); }
void cpu_stats(const StatsRequest& request, double* out) { cpu::cpu_stats_impl(request, out); }
}  // namespace cpu_generic
}  // namespace fastinit
