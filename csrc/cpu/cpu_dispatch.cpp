// Run-time choice of the CPU build.
#include <cstdlib>
#include <cstring>

#include "cpu_entry.h"
#include "omp_compat.h"

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

void cpu_fill(const FillRequest& request) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  if (use_avx2()) return cpu_avx2::cpu_fill(request);
#endif
  cpu_generic::cpu_fill(request);
}

void cpu_fill_many(const FillBatch& batch, int threads) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  if (use_avx2()) return cpu_avx2::cpu_fill_many(batch, threads);
#endif
  cpu_generic::cpu_fill_many(batch, threads);
}

void cpu_stats(const StatsRequest& request, double* out) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
  if (use_avx2()) return cpu_avx2::cpu_stats(request, out);
#endif
  cpu_generic::cpu_stats(request, out);
}

std::string cpu_isa() { return use_avx2() ? "avx2" : "generic"; }

bool has_openmp() {
#if defined(FASTINIT_HAS_OPENMP)
  return true;
#else
  return false;
#endif
}

int openmp_max_threads() {
#if defined(FASTINIT_HAS_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace fastinit
