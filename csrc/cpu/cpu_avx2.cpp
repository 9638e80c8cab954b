// The AVX2 + FMA build of the CPU kernels (compiled with -mavx2 -mfma; chosen at run time).
#include "cpu_entry.h"
#include "fill_cpu_impl.h"
#include "stats_kernels.h"

namespace fastinit {
namespace cpu_avx2 {
void cpu_fill(const FillRequest& request, const RunControl& control) { cpu::cpu_fill_impl(request, control); }
void cpu_fill_contiguous(const ContiguousFill& fill, const RunControl& control) {
  cpu::cpu_fill_contiguous_impl(fill, control);
}
void cpu_fill_many(const FillBatch& batch, const RunControl& control) { cpu::cpu_fill_many_impl(batch, control); }
void cpu_stats(const StatsRequest& request, double* out, const RunControl& control) {
  cpu::cpu_stats_impl(request, out, control);
}
}  // namespace cpu_avx2
}  // namespace fastinit
