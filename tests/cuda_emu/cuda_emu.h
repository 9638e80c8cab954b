// A CUDA execution model on the CPU, for checking kernels' logic without a GPU: each CUDA thread
// of a CTA is a coroutine on one OS thread (started on its own stack by ucontext, switched by
// _setjmp/_longjmp, which do not save the signal mask: a system call per switch otherwise),
// CTAs run one after another, and the warp intrinsics (shuffles, ballots) and __syncthreads are
// barriers between the coroutines. It checks indexing, synchronisation and the arithmetic of
// the kernel source as written (IEEE float64 / float32 on the host, no contraction: compile
// with -ffp-contract=off), not the GPU's own instructions (MUFU, hardware conversions) or its
// memory model.
//
// A warp whose lanes do not all reach a warp intrinsic, or a CTA whose threads do not all reach
// __syncthreads, deadlocks on a GPU; here it is reported (exit status 3) instead of hanging.
#pragma once
#include <setjmp.h>
#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

// ---------------------------------------------------------------------------- keywords

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __grid_constant__
#define __constant__
#define __shared__ static  // one CTA at a time: a static local is the CTA's shared variable
#define __launch_bounds__(...)
#define FI_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::emu::state().dynamic_shared.data())

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

namespace emu {

struct Dim3 {
  unsigned x, y, z;
};

struct Fiber {
  ucontext_t ctx;  // its start
  jmp_buf resume;  // where it yielded
  std::vector<char> stack;
  bool started = false, done = false;
};

struct Barrier {  // counts arrivals; a generation number releases the waiters
  int arrived = 0;
  unsigned long generation = 0;
};

struct State {
  std::vector<Fiber> fibers;
  jmp_buf scheduler;
  int current = 0;
  unsigned block = 0, grid = 0;
  int threads = 0;
  std::function<void()> body;
  Barrier cta;
  std::vector<Barrier> warps;
  std::vector<std::uint64_t> slots;  // one per thread: what a lane offers to its warp
  std::vector<unsigned char> dynamic_shared;
  unsigned long progress = 0;  // barriers released and fibers finished
};

inline State& state() {
  static State s;
  return s;
}

inline void yield() {
  State& s = state();
  if (_setjmp(s.fibers[s.current].resume) == 0) _longjmp(s.scheduler, 1);
}

inline void wait(Barrier& b, int count) {
  const unsigned long gen = b.generation;
  if (++b.arrived == count) {
    b.arrived = 0;
    ++b.generation;
    ++state().progress;
    return;
  }
  while (b.generation == gen) yield();
}

inline int tid() { return state().current; }
inline void check_mask(unsigned mask) {
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "cuda_emu: only full-warp masks are modelled\n");
    std::exit(3);
  }
}

// Every lane offers a value, all meet, each reads the lane it wants, all meet again.
template <class T>
T exchange(T v, int src_lane) {
  static_assert(sizeof(T) <= 8, "exchange of at most 8 bytes");
  State& s = state();
  const int t = tid(), warp = t / 32, lane = t % 32;
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  s.slots[t] = bits;
  wait(s.warps[warp], 32);
  T out;
  const std::uint64_t got = s.slots[warp * 32 + (src_lane >= 0 && src_lane < 32 ? src_lane : lane)];
  std::memcpy(&out, &got, sizeof(T));
  wait(s.warps[warp], 32);
  return out;
}

inline void entry() {
  State& s = state();
  s.body();
  s.fibers[s.current].done = true;
  ++s.progress;
  _longjmp(s.scheduler, 1);
}

// Run `kernel(args...)` on a grid of `grid` CTAs of `threads` threads with `shared` bytes of
// dynamic shared memory (filled with 0xA5: kernels must not read it before writing it).
template <class... P, class... A>
void launch(void (*kernel)(P...), unsigned grid, int threads, std::size_t shared, A&&... args) {
  State& s = state();
  if (threads % 32 != 0) {
    std::fprintf(stderr, "cuda_emu: CTAs of whole warps only\n");
    std::exit(3);
  }
  s.grid = grid;
  s.threads = threads;
  s.body = [=]() { kernel(args...); };
  for (unsigned b = 0; b < grid; ++b) {
    s.block = b;
    s.dynamic_shared.assign(shared, 0xA5);
    s.fibers.resize(static_cast<std::size_t>(threads));  // stacks are kept from CTA to CTA
    s.warps.assign(static_cast<std::size_t>(threads / 32), Barrier{});
    s.slots.assign(static_cast<std::size_t>(threads), 0);
    s.cta = Barrier{};
    for (int t = 0; t < threads; ++t) {
      Fiber& f = s.fibers[t];
      f.started = f.done = false;
      f.stack.resize(256 * 1024);
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack.data();
      f.ctx.uc_stack.ss_size = f.stack.size();
      f.ctx.uc_link = nullptr;
      makecontext(&f.ctx, entry, 0);
    }
    int live = threads;
    unsigned long rounds_without_progress = 0;
    while (live > 0) {
      const unsigned long before = s.progress;
      for (int t = 0; t < threads; ++t) {
        if (s.fibers[t].done) continue;
        s.current = t;
        Fiber& f = s.fibers[t];
        if (_setjmp(s.scheduler) == 0) {
          if (!f.started) {
            f.started = true;
            setcontext(&f.ctx);
          }
          _longjmp(f.resume, 1);
        }
        if (f.done) --live;
      }
      rounds_without_progress = s.progress == before ? rounds_without_progress + 1 : 0;
      if (rounds_without_progress > 4) {
        std::fprintf(stderr, "cuda_emu: deadlock in CTA %u (threads waiting at different barriers)\n", b);
        std::exit(3);
      }
    }
  }
}

}  // namespace emu

// ---------------------------------------------------------------------------- built-ins

#define threadIdx (::emu::Dim3{static_cast<unsigned>(::emu::tid()), 0u, 0u})
#define blockIdx (::emu::Dim3{::emu::state().block, 0u, 0u})
#define gridDim (::emu::Dim3{::emu::state().grid, 1u, 1u})
#define blockDim (::emu::Dim3{static_cast<unsigned>(::emu::state().threads), 1u, 1u})

inline void __syncthreads() { emu::wait(emu::state().cta, emu::state().threads); }

template <class T>
T __shfl_down_sync(unsigned mask, T v, int delta) {
  emu::check_mask(mask);
  const int lane = emu::tid() % 32;
  return emu::exchange(v, lane + delta < 32 ? lane + delta : lane);
}

template <class T>
T __shfl_sync(unsigned mask, T v, int src) {
  emu::check_mask(mask);
  return emu::exchange(v, src & 31);
}

inline unsigned __ballot_sync(unsigned mask, bool pred) {
  emu::check_mask(mask);
  emu::State& s = emu::state();
  const int t = emu::tid(), warp = t / 32;
  s.slots[t] = pred ? 1u : 0u;
  emu::wait(s.warps[warp], 32);
  unsigned out = 0;
  for (int l = 0; l < 32; ++l) out |= static_cast<unsigned>(s.slots[warp * 32 + l] & 1u) << l;
  emu::wait(s.warps[warp], 32);
  return out;
}

inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline unsigned atomicAdd(unsigned* p, unsigned v) {  // one OS thread: plain adds are atomic
  const unsigned old = *p;
  *p = old + v;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  const unsigned long long old = *p;
  *p = old + v;
  return old;
}
inline uint4 __ldg(const uint4* p) { return *p; }
