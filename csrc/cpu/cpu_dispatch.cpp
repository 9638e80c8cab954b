// Run-time choice of the CPU build.
#include <cstdlib>
#include <cstring>

#include "cpu_entry.h"
#include "thread_pool.h"

namespace fastinit {
namespace {

bool avx2_compiled() {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  return true;
#else
  return false;
#endif
}

bool use_avx2() {
  static const bool chosen = [] {
    const char* forced = std::getenv("FASTINIT_CPU_ISA");
    if (forced != nullptr && std::strcmp(forced, "generic") == 0) return false;
#if defined(FASTINIT_HAS_AVX2_BUILD) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return avx2_compiled() && chosen;
}

}  // namespace

void cpu_fill(const FillRequest& request, const RunControl& control) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  if (use_avx2()) return cpu_avx2::cpu_fill(request, control);
#endif
  cpu_generic::cpu_fill(request, control);
}

void cpu_fill_contiguous(const ContiguousFill& fill, const RunControl& control) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  if (use_avx2()) return cpu_avx2::cpu_fill_contiguous(fill, control);
#endif
  cpu_generic::cpu_fill_contiguous(fill, control);
}

void cpu_fill_many(const FillBatch& batch, const RunControl& control) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  if (use_avx2()) return cpu_avx2::cpu_fill_many(batch, control);
#endif
  cpu_generic::cpu_fill_many(batch, control);
}

void cpu_stats(const StatsRequest& request, double* out, const RunControl& control) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  if (use_avx2()) return cpu_avx2::cpu_stats(request, out, control);
#endif
  cpu_generic::cpu_stats(request, out, control);
}

std::string cpu_isa() { return use_avx2() ? "avx2" : "generic"; }

int cpu_threads() { return pool::default_threads(); }

const char* Interrupted::what() const noexcept { return "fastinit: interrupted"; }

}  // namespace fastinit
