// Runs the CUDA statistics kernels (csrc/cuda/stats_kernels.cuh) and their host plan
// (csrc/cuda/stats_plan.h) on the CPU through cuda_emu.h, for tests/test_stats_cuda_emu.py.
//
//   stats_emu IN OUT GRID_CAP
// IN (little-endian): int32 count, bins, has_ranges; then per tensor int32 dtype, ndim,
// int64 shape[ndim], stride[ndim] (elements), offset (bytes from the buffer to element 0),
// nbytes, the buffer's bytes; then 2 * count doubles of ranges when has_ranges.
// OUT: count records of 13 + bins doubles. GRID_CAP caps each partials launch's grid (the GPU's
// cap is its resident CTAs), so that the grid-stride loops and histogram flushes iterate.
#include "cuda_emu.h"
//
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <vector>

#include "cuda/stats_plan.h"

using namespace fastinit;
using namespace fastinit::gpu_stats;

namespace {

template <class T>
void read(std::ifstream& in, T& v) {
  in.read(reinterpret_cast<char*>(&v), sizeof(T));
  if (!in) throw std::runtime_error("stats_emu: truncated input");
}

// 16-byte aligned storage with room for an offset.
struct Buffer {
  std::vector<unsigned char> bytes;
  unsigned char* base() {
    const auto p = reinterpret_cast<std::uintptr_t>(bytes.data());
    return bytes.data() + ((16 - p % 16) % 16);
  }
};

template <class T>
void launch_pass(const Batch& batch, double* partials, unsigned long long* hist, double* out, int width,
                 int grid_cap) {
  if (batch.items > 0) {
    const int copies = batch.bins > 0 ? batch.hist_copies : 0;
    const std::size_t shared = static_cast<std::size_t>(copies) * batch.bins * sizeof(unsigned);
    const unsigned grid = static_cast<unsigned>(std::min(batch.items, grid_cap));
    if (batch.bins > 0)
      emu::launch(stats_partials_kernel<T, true>, grid, kThreads, shared, batch, partials, hist);
    else
      emu::launch(stats_partials_kernel<T, false>, grid, kThreads, 0, batch, partials, hist);
  }
  emu::launch(stats_finalize_kernel, static_cast<unsigned>(batch.count), kThreads, 0, batch,
              static_cast<const double*>(partials), static_cast<const unsigned long long*>(hist), out, width);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: stats_emu IN OUT GRID_CAP\n");
    return 2;
  }
  try {
    std::ifstream in(argv[1], std::ios::binary);
    const int grid_cap = std::atoi(argv[3]);
    int count = 0, bins = 0, has_ranges = 0;
    read(in, count);
    read(in, bins);
    read(in, has_ranges);
    std::vector<StatsTensor> tensors(static_cast<std::size_t>(count));
    std::vector<Buffer> buffers(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      StatsTensor& t = tensors[i];
      read(in, t.dtype);
      read(in, t.ndim);
      for (int d = 0; d < t.ndim; ++d) read(in, t.shape[d]);
      for (int d = 0; d < t.ndim; ++d) read(in, t.stride[d]);
      std::int64_t offset = 0, nbytes = 0;
      read(in, offset);
      read(in, nbytes);
      buffers[i].bytes.resize(static_cast<std::size_t>(nbytes) + 16);
      in.read(reinterpret_cast<char*>(buffers[i].base()), nbytes);
      t.data = reinterpret_cast<std::uintptr_t>(buffers[i].base() + offset);
    }
    std::vector<double> ranges(static_cast<std::size_t>(2 * count));
    for (double& r : ranges)
      if (has_ranges) read(in, r);
    StatsRequest request;
    request.tensors = tensors.data();
    request.count = count;
    request.bins = bins;
    request.ranges = has_ranges ? ranges.data() : nullptr;

    const StatsPlan plan = make_plan(request);
    Buffer workspace;  // poisoned: every byte the kernels read must have been written
    workspace.bytes.assign(plan.workspace.total + 16, 0xFF);
    unsigned char* base = workspace.base();
    std::fill(base + plan.workspace.hist, base + plan.workspace.hist +
              static_cast<std::size_t>(count) * bins * sizeof(unsigned long long), 0);  // the memset
    const int width = kStatsHead + bins;
    std::vector<double> out(static_cast<std::size_t>(count) * width, -1234.5);
    for_each_pass(plan, base, out.data(),
                  [&](int dtype, const Batch& b, double* partials, unsigned long long* hist, double* records,
                      int w) {
                    switch (dtype) {
                      case kFloat32:
                        launch_pass<float>(b, partials, hist, records, w, grid_cap);
                        break;
                      case kFloat64:
                        launch_pass<double>(b, partials, hist, records, w, grid_cap);
                        break;
                      case kFloat16:
                        launch_pass<Float16>(b, partials, hist, records, w, grid_cap);
                        break;
                      default:
                        launch_pass<BFloat16>(b, partials, hist, records, w, grid_cap);
                        break;
                    }
                  });
    std::ofstream o(argv[2], std::ios::binary);
    o.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size() * sizeof(double)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
