// Checking of CUDA runtime calls and kernel launches, for every .cu file of the core.
//
//   FI_CUDA_CHECK(cudaGetDevice(&device));   // any runtime call that returns a cudaError_t
//   kernel<<<grid, block, 0, stream>>>(...);
//   FI_CUDA_CHECK_LAUNCH("kernel name");      // cudaPeekAtLastError right after the launch
//
// A failure throws std::runtime_error("fastinit CUDA error in <call> at <file>:<line>: <reason>"),
// which pybind11 turns into a Python RuntimeError: never an abort, never print-and-continue.
// Before throwing, the runtime's last-error slot is cleared, so a non-sticky error (a bad launch
// configuration, an invalid device ordinal) is reported once and does not resurface at the next,
// correct call. (This module links the CUDA runtime statically: its last-error slot is its own,
// so an error left there by another library is never reported as ours.)
//
// DeviceGuard makes a device current for a scope and restores the caller's device after it, so a
// call on the tensor's device leaves torch's current device as it was (multi-GPU safe).
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace fastinit {
namespace cuda_detail {

inline const char* file_basename(const char* path) {
  const char* base = path;
  for (const char* p = path; *p != '\0'; ++p)
    if (*p == '/' || *p == '\\') base = p + 1;
  return base;
}

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* call, const char* file,
                                          int line) {
  (void)cudaGetLastError();  // clear a non-sticky error: report it once, here
  throw std::runtime_error(std::string("fastinit CUDA error in ") + call + " at " +
                           file_basename(file) + ":" + std::to_string(line) + ": " +
                           cudaGetErrorString(err) + " (" + cudaGetErrorName(err) + ")");
}

}  // namespace cuda_detail
}  // namespace fastinit

#define FI_CUDA_CHECK(call)                                                                 \
  do {                                                                                      \
    const cudaError_t fi_cuda_err_ = (call);                                                \
    if (fi_cuda_err_ != cudaSuccess)                                                        \
      ::fastinit::cuda_detail::throw_cuda_error(fi_cuda_err_, #call, __FILE__, __LINE__);   \
  } while (0)

// After a <<<...>>> launch: a bad configuration or a missing kernel image shows up here at once
// (errors inside the kernel are asynchronous and surface at the caller's next synchronisation).
#define FI_CUDA_CHECK_LAUNCH(kernel_name)                                                   \
  do {                                                                                      \
    const cudaError_t fi_cuda_err_ = cudaPeekAtLastError();                                 \
    if (fi_cuda_err_ != cudaSuccess)                                                        \
      ::fastinit::cuda_detail::throw_cuda_error(fi_cuda_err_, "launch of " kernel_name,     \
                                                __FILE__, __LINE__);                        \
  } while (0)

namespace fastinit {
namespace cuda_detail {

// Makes `device` current for the guard's lifetime; restores the previous device afterwards.
// Allowed during stream capture (cudaGetDevice / cudaSetDevice enqueue nothing).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    FI_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) {
      FI_CUDA_CHECK(cudaSetDevice(device));
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    // A destructor must not throw; clear the error so that no later check reports it.
    if (switched_ && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

}  // namespace cuda_detail
}  // namespace fastinit
