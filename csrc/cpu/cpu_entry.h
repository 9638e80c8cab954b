// The CPU entry points, one set per instruction-set build, and the run-time choice among them.
#pragma once
#include <string>

#include "../fill_request.h"
#include "../stats_request.h"

namespace fastinit {
namespace cpu_generic {
void cpu_fill(const FillRequest& request);
void cpu_fill_many(const FillBatch& batch, int threads);
void cpu_stats(const StatsRequest& request, double* out);
}
namespace cpu_avx2 {
void cpu_fill(const FillRequest& request);
void cpu_fill_many(const FillBatch& batch, int threads);
void cpu_stats(const StatsRequest& request, double* out);
}

// Fill on the CPU with the best build this processor runs (FASTINIT_CPU_ISA=generic forces the
// portable one). Throws std::invalid_argument for a bad request.
void cpu_fill(const FillRequest& request);
// Many fills in one parallel region (csrc/fill_batch.h): the result of the requests applied in
// order. threads: OpenMP threads, 0 for the default. Throws std::invalid_argument, before
// writing anything, for a bad request.
void cpu_fill_many(const FillBatch& batch, int threads);
// Statistics of request.count tensors into out: request.count records of kStatsRecordHead +
// request.bins doubles (csrc/common/stats_accumulator.h). Throws std::invalid_argument.
void cpu_stats(const StatsRequest& request, double* out);
// "avx2" or "generic": the build cpu_fill uses.
std::string cpu_isa();
bool has_openmp();
int openmp_max_threads();

}  // namespace fastinit
