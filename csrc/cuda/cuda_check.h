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
// call on the tensor's device leaves torch's current device as it was (multi-GPU safe), without
// ever creating a context on a device the caller did not use (see DeviceGuard).
#pragma once
#include <cuda.h>  // driver API types only: the functions come from cudaGetDriverEntryPoint
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

// The few driver entry points the guard needs, looked up once through the runtime (no link to
// libcuda); null where the driver does not have them.
struct DriverEntryPoints {
  CUresult (*device_get)(CUdevice*, int) = nullptr;
  CUresult (*primary_ctx_get_state)(CUdevice, unsigned int*, int*) = nullptr;
  CUresult (*ctx_get_current)(CUcontext*) = nullptr;
  CUresult (*ctx_set_current)(CUcontext) = nullptr;
};

template <class F>
void driver_entry_point(const char* symbol, F*& fn) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
#if CUDART_VERSION >= 12050
  const cudaError_t err = cudaGetDriverEntryPointByVersion(symbol, &p, 12000, cudaEnableDefault, &found);
#else
  const cudaError_t err = cudaGetDriverEntryPoint(symbol, &p, cudaEnableDefault, &found);
#endif
  if (err != cudaSuccess) (void)cudaGetLastError();
  fn = err == cudaSuccess && found == cudaDriverEntryPointSuccess ? reinterpret_cast<F*>(p) : nullptr;
}

inline const DriverEntryPoints& driver() {
  static const DriverEntryPoints entry = [] {
    DriverEntryPoints e;
    driver_entry_point("cuDeviceGet", e.device_get);
    driver_entry_point("cuDevicePrimaryCtxGetState", e.primary_ctx_get_state);
    driver_entry_point("cuCtxGetCurrent", e.ctx_get_current);
    driver_entry_point("cuCtxSetCurrent", e.ctx_set_current);
    return e;
  }();
  return entry;
}

// Whether the primary context of `device` exists (torch's c10::cuda::hasPrimaryContext): then
// cudaSetDevice(device) creates nothing. Unknown (no entry point) counts as yes, the runtime's
// behaviour before this check.
inline bool has_primary_context(int device) {
  const DriverEntryPoints& d = driver();
  if (d.device_get == nullptr || d.primary_ctx_get_state == nullptr) return true;
  CUdevice dev = 0;
  unsigned int flags = 0;
  int active = 0;
  if (d.device_get(&dev, device) != CUDA_SUCCESS || d.primary_ctx_get_state(dev, &flags, &active) != CUDA_SUCCESS)
    return true;
  return active != 0;
}

// Makes `device` current for the guard's lifetime; restores the caller's state afterwards.
// Allowed during stream capture (no call here enqueues anything).
//
// Restoring by cudaSetDevice(previous) is what a thread that had no current context cannot
// afford: cudaGetDevice reports device 0 there, and setting it back would create a context on
// GPU 0 (hundreds of MB) when the caller only used, say, GPU 1. As torch's guard does
// (c10::cuda::MaybeSetDevice), the previous device is set back only when its primary context
// exists; otherwise the thread's previous current context (none) is restored through the
// driver, which creates nothing.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    FI_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) {
      const DriverEntryPoints& d = driver();
      if (d.ctx_get_current != nullptr && d.ctx_get_current(&previous_context_) != CUDA_SUCCESS)
        previous_context_ = nullptr;
      FI_CUDA_CHECK(cudaSetDevice(device));
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    // A destructor must not throw; clear the error so that no later check reports it.
    if (!switched_) return;
    if (has_primary_context(previous_)) {
      if (cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();
    } else if (driver().ctx_set_current != nullptr) {
      (void)driver().ctx_set_current(previous_context_);  // null: no current context, as before
    }
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  CUcontext previous_context_ = nullptr;
  bool switched_ = false;
};

}  // namespace cuda_detail
}  // namespace fastinit
