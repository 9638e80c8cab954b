// Stand-ins for the CUDA statistics entry points in a build without CUDA.
#include <stdexcept>

#include "stats_cuda.h"

namespace fastinit {

std::size_t cuda_stats_workspace_bytes(const std::int64_t*, int, int, bool) { return 0; }

void cuda_stats(const StatsRequest&, std::uintptr_t, std::uintptr_t, std::size_t, int, std::uintptr_t) {
  throw std::runtime_error("fastinit was built without CUDA (FASTINIT_CUDA=OFF or no nvcc found)");
}

}  // namespace fastinit
