// A fill call as the binding hands it to a backend: plain data only (no member functions), so
// it is the same type in every instruction-set build.
#pragma once
#include <cstddef>
#include <cstdint>

#include "run_control.h"

namespace fastinit {

// kOpConstant writes params[0] rounded to the dtype (as torch's fill_ rounds a Python float);
// the others are the stream operations of docs/stream-format.md.
enum OpCode : int { kOpUniform = 0, kOpNormal = 1, kOpTruncNormal = 2, kOpConstant = 3 };

constexpr int kRequestMaxDims = 64;  // as many dims as torch allows
constexpr int kRequestMaxParams = 16;

struct FillRequest {
  int op = 0;
  int dtype = 0;             // DtypeCode (csrc/common/out_types.h)
  std::uintptr_t data = 0;   // address of the element with all indices zero
  int ndim = 0;
  std::int64_t shape[kRequestMaxDims];
  std::int64_t mem_stride[kRequestMaxDims];      // elements
  std::int64_t logical_stride[kRequestMaxDims];  // stream elements
  std::uint64_t logical_base = 0;
  std::uint32_t k0 = 0, k1 = 0, purpose = 0;
  double params[kRequestMaxParams];  // per op, see fastinit/_stream_params.py
};

// Many fill requests in one call, as flat arrays (one entry per request unless said): request
// i has ndim[i] dims, the next ndim[i] entries of shape, mem_stride and logical_stride (requests
// in order, `dims` entries in all); its parameters are the kRequestMaxParams doubles of record
// param_index[i] of params (`param_records` records), so requests sharing a call share a
// record. The result is that of the requests applied one after another, in order.
struct FillBatch {
  std::size_t count = 0;
  const int* op = nullptr;
  const int* dtype = nullptr;
  const std::uintptr_t* data = nullptr;
  const int* ndim = nullptr;
  std::size_t dims = 0;
  const std::int64_t* shape = nullptr;
  const std::int64_t* mem_stride = nullptr;
  const std::int64_t* logical_stride = nullptr;
  const std::uint64_t* logical_base = nullptr;
  const std::uint64_t* key = nullptr;  // the 64-bit key: low word k0, high word k1
  const std::uint32_t* purpose = nullptr;
  const std::int64_t* param_index = nullptr;
  const double* params = nullptr;
  std::size_t param_records = 0;
  // Optional: bounds[2 i], bounds[2 i + 1] are the first and one-past-last byte address of the
  // memory request i may write (its storage); a fill reaching outside is rejected. nullptr: not
  // checked (the caller vouches for the strides).
  const std::uintptr_t* bounds = nullptr;
};

// A contiguous tensor of numel elements whose logical index is its memory index: the common
// case of one fill, without the per-dim arrays of a FillRequest.
struct ContiguousFill {
  int op = 0;
  int dtype = 0;
  std::uintptr_t data = 0;
  std::int64_t numel = 0;
  std::uint64_t key = 0;  // low word k0, high word k1
  std::uint32_t purpose = 0;
  const double* params = nullptr;  // kRequestMaxParams doubles
};

}  // namespace fastinit
