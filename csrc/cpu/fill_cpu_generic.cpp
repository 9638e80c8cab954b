// The portable build of the CPU fill (baseline instruction set of the target).
#include "fill_cpu.h"
#include "fill_cpu_impl.h"

namespace fastinit {
namespace cpu_generic {
void cpu_fill(const FillRequest& request) { cpu::cpu_fill_impl(request); }
}  // namespace cpu_generic
}  // namespace fastinit
