// The CUDA statistics entry points, callable from code that nvcc does not compile. When the
// build has no CUDA, stats_cuda_stub.cpp provides them and cuda_stats throws.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../stats_request.h"

namespace fastinit {

// Bytes of device workspace cuda_stats needs for tensors of these element counts.
std::size_t cuda_stats_workspace_bytes(const std::int64_t* numels, int count, int bins,
                                       bool default_range);

// Enqueue the statistics of request.count tensors on `stream` (a cudaStream_t) of `device`: a
// raw record (kStatsRecordHead + bins doubles, csrc/common/stats_accumulator.h) per tensor into
// the device buffer `out`. One launch reduces up to several hundred tensors (more are cut into
// batches), a second launch merges its block partials in a fixed order: the results do not
// depend on the launch shape. No host synchronisation. The tensors must be dense in some memory
// order (one run after csrc/common/stats_accumulator.h's stats_memory_layout).
// Throws std::invalid_argument for a bad request, std::runtime_error for a failed CUDA call.
void cuda_stats(const StatsRequest& request, std::uintptr_t out, std::uintptr_t workspace,
                std::size_t workspace_bytes, int device, std::uintptr_t stream);

}  // namespace fastinit
