// The entry points of one build of the CPU kernels, in namespace FASTINIT_CPU_BUILD. Included
// once by each build's file (cpu_generic.cpp, cpu_avx2.cpp), which differ only by their
// compiler flags: the same source, so the two builds cannot drift apart.
#include "cpu_entry.h"
#include "fill_cpu_impl.h"
#include "stats_kernels.h"

namespace fastinit {
namespace FASTINIT_CPU_BUILD {
void cpu_fill(const FillRequest& request, const RunControl& control) { cpu::cpu_fill_impl(request, control); }
void cpu_fill_contiguous(const ContiguousFill& fill, const RunControl& control) {
  cpu::cpu_fill_contiguous_impl(fill, control);
}
void cpu_fill_many(const FillBatch& batch, const RunControl& control) { cpu::cpu_fill_many_impl(batch, control); }
void cpu_stats(const StatsRequest& request, double* out, const RunControl& control) {
  cpu::cpu_stats_impl(request, out, control);
}
}  // namespace FASTINIT_CPU_BUILD
}  // namespace fastinit
