// CUDA statistics, host side: the launches of the plan's passes on a stream. The plan (checks,
// workspace, batches) is stats_plan.h; the kernels and what they compute are stats_kernels.cuh.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "stats_cuda.h"
#include "stats_kernels.cuh"
#include "stats_plan.h"

FI_NAMESPACE_BEGIN
namespace gpu_stats {

// Resident CTAs of a partials kernel over the device (the grid of a launch is at most this).
template <class T, bool kBins>
int max_grid_of(int device, std::size_t shared) {
  int sms = 0, per_sm = 0;
  FI_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  FI_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, stats_partials_kernel<T, kBins>,
                                                              kThreads, shared));
  return std::max(1, sms * std::max(1, per_sm));
}

// One pass over a batch of tensors of dtype T: the partials, then the records.
template <class T>
void launch_pass(const Batch& batch, double* partials, unsigned long long* hist, double* out, int width,
                 int device, cudaStream_t stream) {
  if (batch.items > 0) {
    const int copies = batch.bins > 0 ? batch.hist_copies : 0;
    const std::size_t shared = static_cast<std::size_t>(copies) * batch.bins * sizeof(unsigned);
    if (batch.bins > 0) {
      const int grid = std::min(batch.items, max_grid_of<T, true>(device, shared));
      stats_partials_kernel<T, true><<<static_cast<unsigned>(grid), kThreads, shared, stream>>>(batch, partials,
                                                                                                hist);
    } else {
      const int grid = std::min(batch.items, max_grid_of<T, false>(device, 0));
      stats_partials_kernel<T, false><<<static_cast<unsigned>(grid), kThreads, 0, stream>>>(batch, partials, hist);
    }
    FI_CUDA_CHECK_LAUNCH("stats_partials_kernel");
  }
  stats_finalize_kernel<<<static_cast<unsigned>(batch.count), kThreads, 0, stream>>>(batch, partials, hist,
                                                                                      out, width);
  FI_CUDA_CHECK_LAUNCH("stats_finalize_kernel");
}

void run(const StatsRequest& request, std::uintptr_t out, std::uintptr_t workspace,
         std::size_t workspace_bytes, int device, std::uintptr_t stream_handle) {
  const StatsPlan plan = make_plan(request);
  if (workspace_bytes < plan.workspace.total)
    throw std::invalid_argument("fastinit.stats: the CUDA workspace is too small (" +
                                std::to_string(workspace_bytes) + " < " + std::to_string(plan.workspace.total) +
                                " bytes)");
  if (request.count == 0) return;
  if (workspace == 0) throw std::invalid_argument("fastinit.stats: no CUDA workspace");

  cuda_detail::DeviceGuard guard(device);
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_handle);
  unsigned char* base = reinterpret_cast<unsigned char*>(workspace);
  if (plan.bins > 0)
    FI_CUDA_CHECK(cudaMemsetAsync(base + plan.workspace.hist, 0,
                                  static_cast<std::size_t>(request.count) * plan.bins * sizeof(unsigned long long),
                                  stream));
  for_each_pass(plan, base, reinterpret_cast<double*>(out),
                [&](int dtype, const Batch& b, double* partials, unsigned long long* hist, double* records, int width) {
                  switch (dtype) {
                    case kFloat32:
                      launch_pass<float>(b, partials, hist, records, width, device, stream);
                      break;
                    case kFloat64:
                      launch_pass<double>(b, partials, hist, records, width, device, stream);
                      break;
                    case kFloat16:
                      launch_pass<Float16>(b, partials, hist, records, width, device, stream);
                      break;
                    default:
                      launch_pass<BFloat16>(b, partials, hist, records, width, device, stream);
                      break;
                  }
                });
}

}  // namespace gpu_stats
FI_NAMESPACE_END

namespace fastinit {

std::size_t cuda_stats_workspace_bytes(const std::int64_t* numels, int count, int bins, bool default_range) {
  return gpu_stats::plan_workspace(numels, count, bins, default_range).total;
}

void cuda_stats(const StatsRequest& request, std::uintptr_t out, std::uintptr_t workspace,
                std::size_t workspace_bytes, int device, std::uintptr_t stream) {
  gpu_stats::run(request, out, workspace, workspace_bytes, device, stream);
}

}  // namespace fastinit
