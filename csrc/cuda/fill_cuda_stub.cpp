// Stand-ins for the CUDA entry points in a build without CUDA.
#include <stdexcept>

#include "fill_cuda.h"

namespace fastinit {

void cuda_fill(const FillRequest&, int, std::uintptr_t) {
  throw std::runtime_error("fastinit was built without CUDA (FASTINIT_CUDA=OFF or no nvcc found)");
}
void cuda_fill_many(const FillBatch&, int, std::uintptr_t) {
  throw std::runtime_error("fastinit was built without CUDA (FASTINIT_CUDA=OFF or no nvcc found)");
}
bool cuda_compiled() { return false; }
int cuda_device_count() { return 0; }

}  // namespace fastinit
