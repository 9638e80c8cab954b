// fastinit's CPU thread pool (see thread_pool.h for why it exists and what it promises).
#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <unistd.h>
#define FI_HAS_FORK 1
#endif
#if defined(__linux__)
#include <sched.h>
#endif

namespace fastinit {
namespace pool {

struct Job {
  std::atomic<std::int64_t> next{0};
  std::atomic<bool> failed{false};
  std::int64_t count = 0;
  RegionFn fn = nullptr;
  void* ctx = nullptr;
  // Guarded by the pool's mutex.
  int seats = 0;    // workers that may still join
  int running = 0;  // workers inside fn
  std::exception_ptr error;
};

bool TaskSource::next(std::int64_t& task) {
  if (job_->failed.load(std::memory_order_relaxed)) return false;
  const std::int64_t t = job_->next.fetch_add(1, std::memory_order_relaxed);
  if (t >= job_->count) return false;
  task = t;
  return true;
}

namespace {

thread_local bool t_in_worker = false;
constexpr int kMaxWorkers = 255;

class Pool {
 public:
  // The parallel part of run(): the caller holds busy_.
  void run(Job& job, int helpers) {
    spawn(helpers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job.seats = helpers;
      job_ = &job;
      ++generation_;
    }
    wake_.notify_all();
    std::exception_ptr mine;
    TaskSource tasks(&job);
    try {
      job.fn(job.ctx, tasks);
    } catch (...) {
      mine = std::current_exception();
      job.failed.store(true);
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      job.seats = 0;  // workers that wake from now on find nothing to join
      job_ = nullptr;
      done_.wait(lock, [&] { return job.running == 0; });
    }
    if (mine) std::rethrow_exception(mine);
    if (job.error) std::rethrow_exception(job.error);
  }

  // One region at a time: a second caller (another Python thread, or a nested call) runs alone.
  bool try_acquire() { return !busy_.exchange(true, std::memory_order_acquire); }
  void release() { busy_.store(false, std::memory_order_release); }

 private:
  void spawn(int wanted) {
    wanted = std::min(wanted, kMaxWorkers);
    while (spawned_ < wanted) {
      std::thread(&Pool::worker_main, this).detach();  // lives as long as the process
      ++spawned_;
    }
  }

  void worker_main() {
    t_in_worker = true;
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return job_ != nullptr && generation_ != seen && job_->seats > 0; });
      Job* job = job_;
      seen = generation_;
      --job->seats;
      ++job->running;
      lock.unlock();
      TaskSource tasks(job);
      std::exception_ptr error;
      try {
        job->fn(job->ctx, tasks);
      } catch (...) {
        error = std::current_exception();
        job->failed.store(true);
      }
      lock.lock();
      if (error && !job->error) job->error = error;
      if (--job->running == 0) done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  Job* job_ = nullptr;
  std::uint64_t generation_ = 0;
  int spawned_ = 0;  // touched only by the thread holding busy_
  std::atomic<bool> busy_{false};
};

// The pool of this process. Never destroyed (its detached workers sleep in it until exit). A
// forked child starts with none: the parent's workers do not exist there, and a mutex a parent
// thread held at fork time would stay locked in the child forever.
Pool* g_pool = nullptr;
std::mutex g_pool_mutex;

#if defined(FI_HAS_FORK)
void before_fork() { g_pool_mutex.lock(); }
void after_fork_parent() { g_pool_mutex.unlock(); }
void after_fork_child() {
  g_pool = nullptr;  // the parent's pool is left behind (leaked, never touched)
  g_pool_mutex.unlock();
}
#endif

Pool* the_pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool == nullptr) {
#if defined(FI_HAS_FORK)
    static const bool registered = [] {
      pthread_atfork(before_fork, after_fork_parent, after_fork_child);
      return true;
    }();
    (void)registered;
#endif
    g_pool = new Pool();
  }
  return g_pool;
}

int env_threads(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return 0;
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);  // "4" or "4,2" (OpenMP's nested list)
  if (end == text || n < 1) return 0;
  return static_cast<int>(std::min<long>(n, kMaxWorkers + 1));
}

}  // namespace

int available_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

int default_threads() {
  static const int threads = [] {
    int n = env_threads("FASTINIT_NUM_THREADS");
    if (n == 0) n = env_threads("OMP_NUM_THREADS");
    return n > 0 ? n : available_cpus();
  }();
  return threads;
}

void run(int threads, std::int64_t task_count, RegionFn fn, void* ctx) {
  Job job;
  job.count = task_count;
  job.fn = fn;
  job.ctx = ctx;
  if (threads <= 0) threads = default_threads();
  const std::int64_t helpers = std::min<std::int64_t>(threads, task_count) - 1;
  if (helpers > 0 && !t_in_worker) {
    Pool* pool = the_pool();
    if (pool->try_acquire()) {
      struct Release {
        Pool* p;
        ~Release() { p->release(); }
      } release{pool};
      pool->run(job, static_cast<int>(helpers));
      return;
    }
  }
  TaskSource tasks(&job);
  fn(ctx, tasks);
}

}  // namespace pool
}  // namespace fastinit
