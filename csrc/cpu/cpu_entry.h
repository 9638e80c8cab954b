// The CPU entry points, one set per instruction-set build, and the run-time choice among them.
#pragma once
#include <string>

#include "../fill_request.h"
#include "../run_control.h"
#include "../stats_request.h"

namespace fastinit {
namespace cpu_generic {
void cpu_fill(const FillRequest& request, const RunControl& control);
void cpu_fill_contiguous(const ContiguousFill& fill, const RunControl& control);
void cpu_fill_many(const FillBatch& batch, const RunControl& control);
void cpu_stats(const StatsRequest& request, double* out, const RunControl& control);
}
namespace cpu_avx2 {
void cpu_fill(const FillRequest& request, const RunControl& control);
void cpu_fill_contiguous(const ContiguousFill& fill, const RunControl& control);
void cpu_fill_many(const FillBatch& batch, const RunControl& control);
void cpu_stats(const StatsRequest& request, double* out, const RunControl& control);
}

// Fill on the CPU with the best build this processor runs (FASTINIT_CPU_ISA=generic forces the
// portable one). Throws std::invalid_argument (nothing written) for a bad request, Interrupted
// when control.interrupted says so between chunks.
void cpu_fill(const FillRequest& request, const RunControl& control);
// A contiguous tensor (no per-dim arrays): the common case, with less to set up.
void cpu_fill_contiguous(const ContiguousFill& fill, const RunControl& control);
// Many fills in one parallel loop (csrc/fill_batch.h): the result of the requests applied in
// order. Every request is checked before anything is written.
void cpu_fill_many(const FillBatch& batch, const RunControl& control);
// Statistics of request.count tensors into out: request.count records of kStatsRecordHead +
// request.bins doubles (csrc/common/stats_accumulator.h). Throws std::invalid_argument.
void cpu_stats(const StatsRequest& request, double* out, const RunControl& control);
// "avx2" or "generic": the build cpu_fill uses.
std::string cpu_isa();
// The threads a CPU call uses by default (thread_pool.h: FASTINIT_NUM_THREADS, OMP_NUM_THREADS
// or the CPUs this process may run on).
int cpu_threads();

}  // namespace fastinit
