// The host-side plan of a CUDA statistics request: the checks, the workspace layout, and the
// passes (a partials launch and a finalize launch each) over batches of tensors of one dtype.
// No CUDA call here: stats_cuda.cu launches the passes on a stream, tests/cuda_emu runs them on
// the CPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../stats_request.h"
#include "stats_kernels.cuh"

FI_NAMESPACE_BEGIN
namespace gpu_stats {

inline std::int64_t items_of(std::int64_t numel) { return (numel + kItem - 1) / kItem; }

struct Workspace {
  std::size_t partials = 0, hist = 0, records = 0, total = 0;  // byte offsets, total size
};

inline std::size_t align_up(std::size_t n) { return (n + 255) / 256 * 256; }

inline Workspace plan_workspace(const std::int64_t* numels, int count, int bins, bool default_range) {
  std::int64_t items = 0;
  for (int i = 0; i < count; ++i) items += items_of(numels[i]);
  Workspace w;
  w.partials = 0;
  w.hist = align_up(static_cast<std::size_t>(items) * kStatsHead * sizeof(double));
  w.records = w.hist + align_up(static_cast<std::size_t>(count) * bins * sizeof(unsigned long long));
  w.total = w.records + (default_range && bins > 0
                             ? align_up(static_cast<std::size_t>(count) * kStatsHead * sizeof(double))
                             : 0);
  return w;
}

struct StatsPlan {
  std::vector<DevTensor> tensors;  // in request order
  std::vector<int> dtypes;
  Workspace workspace;
  int bins = 0;
  int hist_copies = 0;  // shared-memory histograms per CTA: kWarps, 1, or 0 (global atomics)
  bool default_range = false;
};

// The checked plan of a request (std::invalid_argument for a bad one).
inline StatsPlan make_plan(const StatsRequest& request) {
  const int count = request.count;
  const int bins = request.bins;
  if (count < 0) throw std::invalid_argument("fastinit.stats: negative tensor count");
  if (bins < 0 || bins > (1 << 26)) throw std::invalid_argument("fastinit.stats: bins must be in [0, 2^26]");
  StatsPlan plan;
  plan.tensors.resize(static_cast<std::size_t>(count));
  plan.dtypes.resize(static_cast<std::size_t>(count));
  std::vector<std::int64_t> numels(static_cast<std::size_t>(count));
  static const int kItemSize[] = {4, 8, 2, 2};
  for (int i = 0; i < count; ++i) {
    const StatsTensor& t = request.tensors[i];
    if (t.dtype < kFloat32 || t.dtype > kBFloat16)
      throw std::invalid_argument("fastinit.stats: unknown dtype code " + std::to_string(t.dtype));
    if (t.ndim < 0 || t.ndim > kRequestMaxDims)
      throw std::invalid_argument("fastinit.stats: bad number of dims " + std::to_string(t.ndim));
    Layout layout;
    std::int64_t offset = 0;
    if (!stats_memory_layout(t.ndim, t.shape, t.stride, layout, offset) ||
        (layout.numel > 0 && layout.ndim > 0 && (layout.ndim > 1 || layout.mem_stride[0] != 1)))
      throw std::invalid_argument(
          "fastinit.stats: a CUDA tensor must be dense in some memory order (make it contiguous)");
    if (items_of(layout.numel) > kMaxBatchItems)
      throw std::invalid_argument("fastinit.stats: a CUDA tensor of more than 2^44 elements");
    DevTensor& d = plan.tensors[i];
    d.data = reinterpret_cast<const unsigned char*>(t.data) + offset * kItemSize[t.dtype];
    d.numel = layout.numel;
    d.first_item = 0;
    d.lo = request.ranges != nullptr ? request.ranges[2 * i] : 0.0;
    d.hi = request.ranges != nullptr ? request.ranges[2 * i + 1] : 1.0;
    d.index = i;
    d.pad_ = 0;
    plan.dtypes[i] = t.dtype;
    numels[i] = layout.numel;
  }
  plan.bins = bins;
  plan.default_range = bins > 0 && request.ranges == nullptr;
  plan.workspace = plan_workspace(numels.data(), count, bins, plan.default_range);
  if (bins > 0 && bins * kWarps <= kSharedCounters)
    plan.hist_copies = kWarps;
  else if (bins > 0 && bins <= kSharedCounters)
    plan.hist_copies = 1;
  return plan;
}

// Calls pass(dtype, batch, partials, hist, out, width) for every pass of the plan, in order: the
// tensors of each dtype in request order, in batches of at most kBatch tensors and
// kMaxBatchItems items; with numpy's default range, a first pass without histogram per batch
// whose records (the workspace's records, width kStatsHead) give the second pass its ranges.
// Each pass writes the rows d.index of `out`; its histogram rows are d.index of `hist`.
template <class Pass>
void for_each_pass(const StatsPlan& plan, unsigned char* workspace, double* out, Pass&& pass) {
  double* partials = reinterpret_cast<double*>(workspace + plan.workspace.partials);
  unsigned long long* hist = reinterpret_cast<unsigned long long*>(workspace + plan.workspace.hist);
  double* records = reinterpret_cast<double*>(workspace + plan.workspace.records);
  const int width = kStatsHead + plan.bins;
  std::unique_ptr<Batch> batch(new Batch());
  std::int64_t item_base = 0;
  const int count = static_cast<int>(plan.tensors.size());
  for (int dtype = kFloat32; dtype <= kBFloat16; ++dtype) {
    std::vector<int> of_dtype;
    for (int i = 0; i < count; ++i)
      if (plan.dtypes[i] == dtype) of_dtype.push_back(i);
    for (std::size_t start = 0; start < of_dtype.size();) {
      Batch& b = *batch;
      int n = 0;
      std::int64_t items = 0;
      while (start + n < of_dtype.size() && n < kBatch) {
        const DevTensor& t = plan.tensors[of_dtype[start + n]];
        if (items + items_of(t.numel) > kMaxBatchItems) break;
        b.t[n] = t;
        b.t[n].first_item = items;
        items += items_of(t.numel);
        ++n;
      }
      start += n;
      b.count = n;
      b.items = static_cast<int>(items);
      b.pad0_ = 0;
      b.pad_ = 0;
      double* batch_partials = partials + item_base * kStatsHead;
      item_base += items;
      if (plan.default_range) {
        b.bins = 0;
        b.hist_copies = 0;
        b.range_src = nullptr;
        pass(dtype, static_cast<const Batch&>(b), batch_partials, hist, records, static_cast<int>(kStatsHead));
      }
      b.bins = plan.bins;
      b.hist_copies = plan.hist_copies;
      b.range_src = plan.default_range ? records : nullptr;
      pass(dtype, static_cast<const Batch&>(b), batch_partials, hist, out, width);
    }
  }
}

}  // namespace gpu_stats
FI_NAMESPACE_END
