// The portable build of the CPU kernels (baseline instruction set of the target).
#include "cpu_entry.h"
#include "fill_cpu_impl.h"

namespace fastinit {
namespace cpu_generic {
void cpu_fill(const FillRequest& request) { cpu::cpu_fill_impl(request); }
}  // namespace cpu_generic
}  // namespace fastinit
