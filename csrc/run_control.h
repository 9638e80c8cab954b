// How a long CPU call runs: on how many threads, and how the caller can stop it between chunks
// (Ctrl-C in Python). Plain data, the same type in every instruction-set build.
#pragma once
#include <exception>

namespace fastinit {

struct RunControl {
  int threads = 0;  // threads to use at most; 0: the default (thread_pool.h)
  // Asked by the calling thread between chunks of a long call; true stops the call, which then
  // throws Interrupted (the chunks before are written). nullptr: never asked.
  bool (*interrupted)(void* ctx) = nullptr;
  void* ctx = nullptr;
};

// Thrown when RunControl::interrupted said so. (what() is defined in one translation unit
// compiled without instruction-set flags.)
class Interrupted : public std::exception {
 public:
  const char* what() const noexcept override;
};

}  // namespace fastinit
