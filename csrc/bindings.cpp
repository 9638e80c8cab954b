// pybind11 bindings: plain integers, floats and lists only. Pointers and streams travel as
// integers; the GIL is released while a kernel runs and no Python object is touched then.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "common/philox.h"
#include "cpu/cpu_entry.h"
#include "cuda/fill_cuda.h"
#include "cuda/stats_cuda.h"
#include "fill_dispatch.h"
#include "fill_request.h"
#include "run_control.h"
#include "stats_request.h"

namespace py = pybind11;
using fastinit::FillBatch;
using fastinit::FillRequest;

namespace {

FillRequest make_request(int op, int dtype, std::uintptr_t data, const std::vector<std::int64_t>& shape,
                         const std::vector<std::int64_t>& mem_strides,
                         const std::vector<std::int64_t>& logical_strides, std::uint64_t logical_base,
                         std::uint32_t k0, std::uint32_t k1, std::uint32_t purpose,
                         const std::vector<double>& params) {
  const std::size_t ndim = shape.size();
  if (mem_strides.size() != ndim || logical_strides.size() != ndim)
    throw std::invalid_argument("fastinit: shape and strides differ in length");
  if (ndim > static_cast<std::size_t>(fastinit::kRequestMaxDims))
    throw std::invalid_argument("fastinit: too many dimensions");
  if (params.size() > static_cast<std::size_t>(fastinit::kRequestMaxParams))
    throw std::invalid_argument("fastinit: too many parameters");
  FillRequest r;
  r.op = op;
  r.dtype = dtype;
  r.data = data;
  r.ndim = static_cast<int>(ndim);
  for (std::size_t d = 0; d < ndim; ++d) {
    if (shape[d] < 0) throw std::invalid_argument("fastinit: negative size");
    r.shape[d] = shape[d];
    r.mem_stride[d] = mem_strides[d];
    r.logical_stride[d] = logical_strides[d];
  }
  r.logical_base = logical_base;
  r.k0 = k0;
  r.k1 = k1;
  r.purpose = purpose;
  for (std::size_t i = 0; i < fastinit::kRequestMaxParams; ++i) r.params[i] = i < params.size() ? params[i] : 0.0;
  return r;
}

// The requests of a batched fill, checked for consistent lengths (fill_batch.h checks the rest).
FillBatch make_batch(const std::vector<int>& ops, const std::vector<int>& dtypes,
                     const std::vector<std::uintptr_t>& datas, const std::vector<int>& ndims,
                     const std::vector<std::int64_t>& shapes, const std::vector<std::int64_t>& mem_strides,
                     const std::vector<std::int64_t>& logical_strides,
                     const std::vector<std::uint64_t>& logical_bases, const std::vector<std::uint64_t>& keys,
                     const std::vector<std::uint32_t>& purposes, const std::vector<std::int64_t>& param_index,
                     const std::vector<double>& params, const std::vector<std::uintptr_t>& bounds) {
  const std::size_t count = ops.size();
  if (!bounds.empty() && bounds.size() != 2 * count)
    throw std::invalid_argument("fastinit: bounds must hold (first, end) byte addresses per request, or nothing");
  for (std::size_t n : {dtypes.size(), datas.size(), ndims.size(), logical_bases.size(), keys.size(),
                        purposes.size(), param_index.size()})
    if (n != count) throw std::invalid_argument("fastinit: the per-request lists differ in length");
  if (mem_strides.size() != shapes.size() || logical_strides.size() != shapes.size())
    throw std::invalid_argument("fastinit: shapes and strides differ in length");
  if (params.size() % fastinit::kRequestMaxParams != 0)
    throw std::invalid_argument("fastinit: params must hold whole records of FILL_PARAMS floats");
  FillBatch b;
  b.count = count;
  b.op = ops.data();
  b.dtype = dtypes.data();
  b.data = datas.data();
  b.ndim = ndims.data();
  b.dims = shapes.size();
  b.shape = shapes.data();
  b.mem_stride = mem_strides.data();
  b.logical_stride = logical_strides.data();
  b.logical_base = logical_bases.data();
  b.key = keys.data();
  b.purpose = purposes.data();
  b.param_index = param_index.data();
  b.params = params.data();
  b.param_records = params.size() / fastinit::kRequestMaxParams;
  b.bounds = bounds.empty() ? nullptr : bounds.data();
  return b;
}

enum class Isa { kAuto, kGeneric, kAvx2 };

// The CPU build a call asks for: "auto" (the best this processor runs), "generic" or "avx2".
Isa parse_isa(const std::string& isa) {
  if (isa == "generic") return Isa::kGeneric;
  if (isa == "avx2") {
#if defined(FASTINIT_HAS_AVX2_BUILD)
    if (fastinit::cpu_isa() != "avx2") throw std::invalid_argument("fastinit: the avx2 build cannot run here");
    return Isa::kAvx2;
#else
    throw std::invalid_argument("fastinit: built without the avx2 kernels");
#endif
  }
  return Isa::kAuto;
}

// The tensors of a statistics call, checked (all lists one entry per tensor).
std::vector<fastinit::StatsTensor> make_stats_tensors(const std::vector<int>& dtypes,
                                                      const std::vector<std::uintptr_t>& datas,
                                                      const std::vector<std::vector<std::int64_t>>& shapes,
                                                      const std::vector<std::vector<std::int64_t>>& strides) {
  const std::size_t count = dtypes.size();
  if (datas.size() != count || shapes.size() != count || strides.size() != count)
    throw std::invalid_argument("fastinit.stats: dtypes, pointers, shapes and strides differ in length");
  std::vector<fastinit::StatsTensor> tensors(count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t ndim = shapes[i].size();
    if (strides[i].size() != ndim) throw std::invalid_argument("fastinit.stats: shape and strides differ in length");
    if (ndim > static_cast<std::size_t>(fastinit::kRequestMaxDims))
      throw std::invalid_argument("fastinit.stats: too many dimensions");
    fastinit::StatsTensor& t = tensors[i];
    t.dtype = dtypes[i];
    t.data = datas[i];
    t.ndim = static_cast<int>(ndim);
    for (std::size_t d = 0; d < ndim; ++d) {
      if (shapes[i][d] < 0) throw std::invalid_argument("fastinit.stats: negative size");
      t.shape[d] = shapes[i][d];
      t.stride[d] = strides[i][d];
    }
  }
  return tensors;
}

fastinit::StatsRequest make_stats_request(const std::vector<fastinit::StatsTensor>& tensors, int bins,
                                          const std::vector<double>& ranges) {
  if (bins < 0) throw std::invalid_argument("fastinit.stats: bins must be >= 0");
  if (!ranges.empty() && ranges.size() != 2 * tensors.size())
    throw std::invalid_argument("fastinit.stats: ranges must hold (lo, hi) per tensor, or nothing");
  fastinit::StatsRequest r;
  r.tensors = tensors.data();
  r.count = static_cast<int>(tensors.size());
  r.bins = bins;
  r.ranges = ranges.empty() ? nullptr : ranges.data();
  return r;
}

// Fills smaller than this keep the GIL: releasing and taking it back costs more than they do.
constexpr std::int64_t kReleaseGilElements = std::int64_t{1} << 14;

// Asked between chunks of a long CPU call (the GIL released): a pending Ctrl-C stops the call.
bool python_interrupted(void*) {
  py::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;  // on error the KeyboardInterrupt (or other) is now set
}

// Runs a CPU call without the GIL, interruptible by Ctrl-C between chunks.
template <class F>
void run_cpu(int threads, F&& call) {
  if (threads < 0) throw std::invalid_argument("fastinit: threads must be >= 0 (0: the default)");
  const fastinit::RunControl control{threads, python_interrupted, nullptr};
  try {
    py::gil_scoped_release release;
    call(control);
  } catch (const fastinit::Interrupted&) {
    throw py::error_already_set();  // the exception PyErr_CheckSignals set
  }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = R"pbdoc(
    fastinit's compiled core: Philox4x32-10 random-stream kernels (CPU with its own thread pool, CUDA).
    Called by the Python package; not a public API.
  )pbdoc";

  m.def(
      "fill",
      [](int op, int dtype, std::uintptr_t data, const std::vector<std::int64_t>& shape,
         const std::vector<std::int64_t>& mem_strides, const std::vector<std::int64_t>& logical_strides,
         std::uint64_t logical_base, std::uint32_t k0, std::uint32_t k1, std::uint32_t purpose,
         const std::vector<double>& params, const std::string& isa, int threads) {
        const FillRequest request = make_request(op, dtype, data, shape, mem_strides, logical_strides,
                                                 logical_base, k0, k1, purpose, params);
        const Isa build = parse_isa(isa);
        run_cpu(threads, [&](const fastinit::RunControl& control) {
          if (build == Isa::kGeneric) {
            fastinit::cpu_generic::cpu_fill(request, control);
          } else if (build == Isa::kAvx2) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
            fastinit::cpu_avx2::cpu_fill(request, control);
#endif
          } else {
            fastinit::cpu_fill(request, control);
          }
        });
      },
      py::arg("op"), py::arg("dtype"), py::arg("data"), py::arg("shape"), py::arg("mem_strides"),
      py::arg("logical_strides"), py::arg("logical_base"), py::arg("k0"), py::arg("k1"),
      py::arg("purpose"), py::arg("params"), py::arg("isa") = "auto", py::arg("threads") = 0,
      R"pbdoc(Fill a strided CPU buffer in place with stream values (fastinit/dispatch/fill.py).
Checked first (sizes, null pointer, overlapping elements). threads: at most this
many threads, 0 for the default. Interruptible (Ctrl-C) between chunks of a long fill.)pbdoc");

  m.def(
      "fill_contiguous",
      [](int op, int dtype, std::uintptr_t data, std::int64_t numel, std::uint64_t key,
         std::uint32_t purpose, py::tuple params, int threads, std::uintptr_t key_words) {
        // The per-call path of every small init: plain integers and one tuple of floats, read
        // without building a vector; the GIL kept for fills too small to be worth releasing it.
        const std::size_t n = params.size();
        if (n > static_cast<std::size_t>(fastinit::kRequestMaxParams))
          throw std::invalid_argument("fastinit: too many parameters");
        double p[fastinit::kRequestMaxParams] = {};
        for (std::size_t i = 0; i < n; ++i) {
          p[i] = PyFloat_AsDouble(params[i].ptr());
          if (p[i] == -1.0 && PyErr_Occurred()) throw py::error_already_set();
        }
        if (key_words != 0) {  // two int64 words of 32 bits each (a key drawn into a torch buffer)
          const std::int64_t* w = reinterpret_cast<const std::int64_t*>(key_words);
          key = (static_cast<std::uint64_t>(w[0]) & 0xFFFFFFFFu) | (static_cast<std::uint64_t>(w[1]) << 32);
        }
        fastinit::ContiguousFill fill;
        fill.op = op;
        fill.dtype = dtype;
        fill.data = data;
        fill.numel = numel;
        fill.key = key;
        fill.purpose = purpose;
        fill.params = p;
        if (numel < kReleaseGilElements && threads >= 0) {
          fastinit::cpu_fill_contiguous(fill, fastinit::RunControl{threads, nullptr, nullptr});
          return;
        }
        run_cpu(threads, [&](const fastinit::RunControl& control) { fastinit::cpu_fill_contiguous(fill, control); });
      },
      py::arg("op"), py::arg("dtype"), py::arg("data"), py::arg("numel"), py::arg("key"),
      py::arg("purpose"), py::arg("params"), py::arg("threads") = 0, py::arg("key_words") = 0,
      R"pbdoc(Fill a contiguous CPU buffer of numel elements (logical index = memory index): the
common case of fill, with less to convert. params: a tuple of floats. key: the 64-bit key, or,
when key_words is an address, read there as two int64 words holding its low and high 32 bits.)pbdoc");

  m.def(
      "fill_many",
      [](const std::vector<int>& ops, const std::vector<int>& dtypes, const std::vector<std::uintptr_t>& datas,
         const std::vector<int>& ndims, const std::vector<std::int64_t>& shapes,
         const std::vector<std::int64_t>& mem_strides, const std::vector<std::int64_t>& logical_strides,
         const std::vector<std::uint64_t>& logical_bases, const std::vector<std::uint64_t>& keys,
         const std::vector<std::uint32_t>& purposes, const std::vector<std::int64_t>& param_index,
         const std::vector<double>& params, int threads, const std::string& isa,
         const std::vector<std::uintptr_t>& bounds) {
        const FillBatch batch = make_batch(ops, dtypes, datas, ndims, shapes, mem_strides, logical_strides,
                                           logical_bases, keys, purposes, param_index, params, bounds);
        const Isa build = parse_isa(isa);
        run_cpu(threads, [&](const fastinit::RunControl& control) {
          if (build == Isa::kGeneric) {
            fastinit::cpu_generic::cpu_fill_many(batch, control);
          } else if (build == Isa::kAvx2) {
#if defined(FASTINIT_HAS_AVX2_BUILD)
            fastinit::cpu_avx2::cpu_fill_many(batch, control);
#endif
          } else {
            fastinit::cpu_fill_many(batch, control);
          }
        });
      },
      py::arg("ops"), py::arg("dtypes"), py::arg("datas"), py::arg("ndims"), py::arg("shapes"),
      py::arg("mem_strides"), py::arg("logical_strides"), py::arg("logical_bases"), py::arg("keys"),
      py::arg("purposes"), py::arg("param_index"), py::arg("params"), py::arg("threads") = 0,
      py::arg("isa") = "auto", py::arg("bounds") = std::vector<std::uintptr_t>{},
      R"pbdoc(Fill many strided CPU buffers in one call: one entry per request in ops, dtypes, datas
(addresses), ndims, logical_bases, keys (64-bit), purposes and param_index; the dims of all
requests concatenated in shapes, mem_strides and logical_strides; params: records of
FILL_PARAMS floats, request i using record param_index[i]. The result is that of the requests
applied in order; every request is checked before any is written (also: null
pointers, overlapping elements, and with bounds (first, end byte address of its storage per
request) strides reaching outside). threads: at most this many threads, 0 for the default. Op 3
is a constant fill (params[0], rounded as torch's fill_ rounds). Interruptible between chunks.)pbdoc");

  m.def(
      "fill_cuda",
      [](int op, int dtype, std::uintptr_t data, const std::vector<std::int64_t>& shape,
         const std::vector<std::int64_t>& mem_strides, const std::vector<std::int64_t>& logical_strides,
         std::uint64_t logical_base, std::uint32_t k0, std::uint32_t k1, std::uint32_t purpose,
         const std::vector<double>& params, int device, std::uintptr_t stream) {
        const FillRequest request = make_request(op, dtype, data, shape, mem_strides, logical_strides,
                                                 logical_base, k0, k1, purpose, params);
        py::gil_scoped_release release;
        fastinit::cuda_fill(request, device, stream);
      },
      py::arg("op"), py::arg("dtype"), py::arg("data"), py::arg("shape"), py::arg("mem_strides"),
      py::arg("logical_strides"), py::arg("logical_base"), py::arg("k0"), py::arg("k1"),
      py::arg("purpose"), py::arg("params"), py::arg("device"), py::arg("stream"),
      R"pbdoc(Enqueue a fill of a strided CUDA buffer on `stream` (a cudaStream_t as an int).)pbdoc");

  m.def(
      "fill_cuda_many",
      [](const std::vector<int>& ops, const std::vector<int>& dtypes, const std::vector<std::uintptr_t>& datas,
         const std::vector<int>& ndims, const std::vector<std::int64_t>& shapes,
         const std::vector<std::int64_t>& mem_strides, const std::vector<std::int64_t>& logical_strides,
         const std::vector<std::uint64_t>& logical_bases, const std::vector<std::uint64_t>& keys,
         const std::vector<std::uint32_t>& purposes, const std::vector<std::int64_t>& param_index,
         const std::vector<double>& params, int device, std::uintptr_t stream) {
        const FillBatch batch = make_batch(ops, dtypes, datas, ndims, shapes, mem_strides, logical_strides,
                                           logical_bases, keys, purposes, param_index, params, {});
        py::gil_scoped_release release;
        fastinit::cuda_fill_many(batch, device, stream);
      },
      py::arg("ops"), py::arg("dtypes"), py::arg("datas"), py::arg("ndims"), py::arg("shapes"),
      py::arg("mem_strides"), py::arg("logical_strides"), py::arg("logical_bases"), py::arg("keys"),
      py::arg("purposes"), py::arg("param_index"), py::arg("params"), py::arg("device"),
      py::arg("stream"),
      R"pbdoc(Enqueue fills of many strided buffers of one CUDA device on `stream` (arguments as
fill_many): one launch per group of requests with the same operation and dtype, the request
table passed as a kernel parameter; no host synchronisation.)pbdoc");

  m.def(
      "philox4x32_10",
      [](std::uint32_t c0, std::uint32_t c1, std::uint32_t c2, std::uint32_t c3, std::uint32_t k0,
         std::uint32_t k1) {
        const fastinit::Words4 r = fastinit::philox4x32_10(c0, c1, c2, c3, k0, k1);
        return py::make_tuple(r.w[0], r.w[1], r.w[2], r.w[3]);
      },
      R"pbdoc(One Philox4x32-10 block (for the known-answer tests).)pbdoc");

  m.def(
      "transform_words",
      [](int op, int dtype, const std::vector<double>& params, const std::vector<std::uint32_t>& words) {
        if (!fastinit::valid_op(op) || !fastinit::valid_dtype(dtype))
          throw std::invalid_argument("fastinit: unknown op or dtype code");
        if (words.size() % 4 != 0) throw std::invalid_argument("fastinit: words must hold whole blocks of 4");
        if (params.size() > static_cast<std::size_t>(fastinit::kRequestMaxParams))
          throw std::invalid_argument("fastinit: too many parameters");
        double p[fastinit::kRequestMaxParams] = {};
        for (std::size_t i = 0; i < params.size(); ++i) p[i] = params[i];
        std::vector<double> out;
        fastinit::visit_fill<false>(op, dtype, p, [&](const auto& f, auto* out_type) {
          using Out = std::remove_pointer_t<decltype(out_type)>;
          using Op = std::decay_t<decltype(f)>;
          for (std::size_t b = 0; b < words.size(); b += 4) {
            const fastinit::Words4 r{{words[b], words[b + 1], words[b + 2], words[b + 3]}};
            const auto v = f.block(r);
            for (int k = 0; k < Op::kPerBlock; ++k)
              out.push_back(static_cast<double>(fastinit::OutTraits<Out>::load(f.template finish<Out>(v.v[k]))));
          }
        });
        return out;
      },
      py::arg("op"), py::arg("dtype"), py::arg("params"), py::arg("words"),
      R"pbdoc(The values (as float64) an operation gives for given Philox output words, 4 per block:
the transform of the stream alone, for known-answer tests at chosen draws (the extremes of a
uniform, say). Not for filling.)pbdoc");

  m.def(
      "stats_cpu",
      [](const std::vector<int>& dtypes, const std::vector<std::uintptr_t>& datas,
         const std::vector<std::vector<std::int64_t>>& shapes,
         const std::vector<std::vector<std::int64_t>>& strides, int bins,
         const std::vector<double>& ranges, int threads) {
        const std::vector<fastinit::StatsTensor> tensors = make_stats_tensors(dtypes, datas, shapes, strides);
        const fastinit::StatsRequest request = make_stats_request(tensors, bins, ranges);
        std::vector<double> out(tensors.size() * static_cast<std::size_t>(fastinit::kStatsRecordHead + bins));
        run_cpu(threads, [&](const fastinit::RunControl& control) { fastinit::cpu_stats(request, out.data(), control); });
        return out;
      },
      py::arg("dtypes"), py::arg("datas"), py::arg("shapes"), py::arg("strides"), py::arg("bins"),
      py::arg("ranges"), py::arg("threads") = 0,
      R"pbdoc(Statistics of strided CPU buffers (see fastinit/stats/reduce.py): one raw record of
STATS_RECORD_HEAD + bins floats per tensor, flattened. ranges: (lo, hi) per tensor, or [] for
numpy's default range (a second pass). threads: at most this many threads, 0 for the default.
Interruptible between chunks.)pbdoc");

  m.def(
      "stats_cuda_workspace_bytes",
      [](const std::vector<std::int64_t>& numels, int bins, bool default_range) {
        return fastinit::cuda_stats_workspace_bytes(numels.data(), static_cast<int>(numels.size()), bins,
                                                    default_range);
      },
      py::arg("numels"), py::arg("bins"), py::arg("default_range"),
      R"pbdoc(Bytes of device workspace that stats_cuda needs for these tensors.)pbdoc");

  m.def(
      "stats_cuda",
      [](const std::vector<int>& dtypes, const std::vector<std::uintptr_t>& datas,
         const std::vector<std::vector<std::int64_t>>& shapes,
         const std::vector<std::vector<std::int64_t>>& strides, int bins,
         const std::vector<double>& ranges, std::uintptr_t out, std::uintptr_t workspace,
         std::uint64_t workspace_bytes, int device, std::uintptr_t stream) {
        const std::vector<fastinit::StatsTensor> tensors = make_stats_tensors(dtypes, datas, shapes, strides);
        const fastinit::StatsRequest request = make_stats_request(tensors, bins, ranges);
        py::gil_scoped_release release;
        fastinit::cuda_stats(request, out, workspace, static_cast<std::size_t>(workspace_bytes), device, stream);
      },
      py::arg("dtypes"), py::arg("datas"), py::arg("shapes"), py::arg("strides"), py::arg("bins"),
      py::arg("ranges"), py::arg("out"), py::arg("workspace"), py::arg("workspace_bytes"),
      py::arg("device"), py::arg("stream"),
      R"pbdoc(Enqueue statistics of CUDA buffers on `stream`: raw records (float64, one row of
STATS_RECORD_HEAD + bins per tensor) into the device buffer `out`; no host synchronisation.
The tensors must be dense in some memory order (torch: is_non_overlapping_and_dense).)pbdoc");

  m.def("cpu_isa", &fastinit::cpu_isa, "The CPU build in use: 'avx2' or 'generic'.");
  m.def("cpu_threads", &fastinit::cpu_threads,
        "Threads a CPU call uses by default (FASTINIT_NUM_THREADS, OMP_NUM_THREADS, or the CPUs "
        "this process may run on).");
  m.def("cuda_compiled", &fastinit::cuda_compiled, "Whether CUDA kernels were compiled in.");
  m.def("cuda_device_count", &fastinit::cuda_device_count,
        "Visible CUDA devices (0 without a driver or GPU; never raises).");
  m.attr("STREAM_FORMAT_VERSION") = 2;
  m.attr("FILL_PARAMS") = fastinit::kRequestMaxParams;
  m.attr("STATS_RECORD_HEAD") = fastinit::kStatsRecordHead;
}
