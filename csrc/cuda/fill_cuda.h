// The CUDA fill entry point, callable from code that nvcc does not compile. When the build has
// no CUDA (FASTINIT_CUDA=OFF or no nvcc), fill_cuda_stub.cpp provides these and cuda_fill throws.
#pragma once
#include <cstdint>

#include "../fill_request.h"

namespace fastinit {

// Enqueue the fill on `stream` (a cudaStream_t) of `device`; no host synchronisation.
// Throws std::runtime_error naming the CUDA call that failed.
void cuda_fill(const FillRequest& request, int device, std::uintptr_t stream);
// Enqueue many fills of `device` on `stream`: one launch per group of requests with the same
// operation and dtype (fill_many_cuda.cu); the result of the requests applied in order. Checks
// every request before enqueuing anything (std::invalid_argument); no host synchronisation.
void cuda_fill_many(const FillBatch& batch, int device, std::uintptr_t stream);
bool cuda_compiled();
int cuda_device_count();

}  // namespace fastinit
