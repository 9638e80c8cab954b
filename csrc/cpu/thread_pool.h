// fastinit's CPU thread pool: parallel loops that never wait for a thread that has not started.
//
// Why not OpenMP: (1) GNU OpenMP deadlocks in a forked child that enters a parallel region its
// parent's runtime started (multiprocessing pools, DataLoader workers); (2) an OpenMP region
// ends in a barrier that waits for every thread of the team, so on a machine whose cores are
// busy (data loaders, other processes) a worker that the OS has not scheduled yet stalls the
// call for a whole time slice (8-20 ms seen); (3) torch ships its own OpenMP runtime, and two
// runtimes in one process oversubscribe the cores.
//
// Here the calling thread takes tasks itself, and pool workers join only if they wake up while
// tasks remain: the call waits only for tasks a worker has actually taken. A call is never much
// slower than the calling thread alone, whatever the machine is doing. Workers sleep on a
// condition variable (no spinning against the user's own threads). After fork() the child
// builds a new pool on first use (the parent's workers do not exist there).
//
// Compiled once (thread_pool.cpp, no ISA flags): the per-ISA kernel builds call it through a
// plain function pointer.
#pragma once
#include <cstdint>

namespace fastinit {
namespace pool {

struct Job;

// The task indices of one parallel loop, handed out one at a time to whoever asks.
class TaskSource {
 public:
  explicit TaskSource(Job* job) : job_(job) {}
  // The next task not yet taken; false when every task has been handed out.
  bool next(std::int64_t& task);

 private:
  Job* job_;
};

using RegionFn = void (*)(void* ctx, TaskSource& tasks);

// Runs fn(ctx, tasks) on the calling thread and on up to threads - 1 pool workers, each
// taking tasks from [0, task_count) until none remain; every task is handed out exactly once.
// threads <= 0: default_threads(). Returns when every task taken has finished. An exception
// thrown by fn on any thread is rethrown here (the remaining tasks are then not handed out).
// Runs on the calling thread alone when threads == 1, task_count <= 1, in a pool worker, or
// while another thread of the process is running a parallel loop.
void run(int threads, std::int64_t task_count, RegionFn fn, void* ctx);

// The default number of threads: FASTINIT_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs this
// process may run on (its affinity mask).
int default_threads();

// The CPUs this process may run on.
int available_cpus();

}  // namespace pool
}  // namespace fastinit
