// The statistics accumulator: one definition, compiled for the host (every CPU build) and the
// device (CUDA), mirrored operation for operation by fastinit/_numpy_stats.py.
//
// What it holds, all in float64 (counts are exact below 2^53):
//   n, shift, mean, m2  count, mean and sum of squared deviations of the FINITE values; the
//                   mean is held relative to a shift (a value near the data: the first chunk's
//                   plain mean), so that merging two summaries subtracts shifts exactly
//                   (Sterbenz) and the relative means have tiny ulps: with an offset of 1e4 and
//                   a spread of 1e-2 the variance stays exact to float64 rounding instead of
//                   losing the ulp of 1e4 at every merge. The mean is shift + mean.
//   min, max        of the finite values (+inf / -inf while n == 0)
//   sum_abs, sum_sq Σ|x| and Σx² of the finite values
//   zeros, nans, infs  exact zeros (±0), NaNs, ±Inf
//
// How values get in (the same on every backend):
//   1. a chunk of values (a CPU tile lane set, a CUDA thread's registers) is summarised exactly
//      by the corrected two-pass formula (Chan, Golub & LeVeque 1983): shift = Σx/n, then
//      mean = Σd/n (relative to shift) and M2 = Σd² − (Σd)²/n with d = x − shift. The chunk is
//      in registers or L1, so the second pass reads no memory;
//   2. summaries merge by Chan's pairwise formula (stats_merge), in an order fixed by the data
//      layout alone (never by the thread count or the launch shape), so results are
//      deterministic.
// This is Welford's update generalised to chunks (a chunk of one value is exactly Welford's
// step) and stays exact to float64 rounding with a large offset and a tiny spread.
//
// The histogram follows numpy.histogram on the float64 values: numpy's edges
// (linspace: i * step + lo, last edge = hi), the last bin closed, values outside [lo, hi]
// (and NaN) not counted; the bin index is estimated, then corrected against those edges exactly
// as numpy does, so a value on an edge lands where numpy puts it.
//
// The raw record (what kernels write and Python reads): kStatsHead doubles, then `bins` counts.
#pragma once
#include <cmath>
#include <cstdint>

#include "host_device.h"
#include "layout.h"

FI_NAMESPACE_BEGIN

// Raw record fields (fastinit/_numpy_stats.py has the same numbers).
enum StatsField : int {
  kStatN = 0,  // finite values
  kStatShift = 1,
  kStatMean = 2,  // relative to the shift
  kStatM2 = 3,
  kStatMin = 4,
  kStatMax = 5,
  kStatSumAbs = 6,
  kStatSumSq = 7,
  kStatZeros = 8,
  kStatNans = 9,
  kStatInfs = 10,
  kStatHistLo = 11,  // the histogram's range (0, 1 when there is no histogram)
  kStatHistHi = 12,
  kStatsHead = 13    // then the histogram counts
};

constexpr double kStatsMaxFinite = 1.7976931348623157e308;

struct StatsAcc {
  double n, shift, mean, m2, min, max, sum_abs, sum_sq, zeros, nans, infs;
};

FI_HD StatsAcc stats_empty() {
  StatsAcc a;
  a.n = 0.0;
  a.shift = 0.0;
  a.mean = 0.0;
  a.m2 = 0.0;
  a.min = HUGE_VAL;
  a.max = -HUGE_VAL;
  a.sum_abs = 0.0;
  a.sum_sq = 0.0;
  a.zeros = 0.0;
  a.nans = 0.0;
  a.infs = 0.0;
  return a;
}

// Finite (not NaN, not ±Inf); written as a comparison so that it vectorises.
FI_HD bool stats_finite(double v) { return (v < 0.0 ? -v : v) <= kStatsMaxFinite; }

// Step 1 of a chunk: the shift is the plain mean of its finite values (0 for none), or their
// midrange when the sum overflows (values near the largest double).
FI_HD double stats_shift(double n, double sum, double min, double max) {
  if (!(n > 0.0)) return 0.0;
  const double mean = sum / n;
  return stats_finite(mean) ? mean : 0.5 * min + 0.5 * max;
}

// Step 2 of a chunk: from c = Σ(x − shift) and q = Σ(x − shift)², the chunk's mean (relative
// to the shift) and M2.
FI_HD void stats_corrected(double n, double c, double q, double& mean, double& m2) {
  if (n > 0.0) {
    mean = c / n;
    m2 = q - c * (c / n);
    if (m2 < 0.0) m2 = 0.0;  // rounding of a spread-free chunk
  } else {
    mean = 0.0;
    m2 = 0.0;
  }
}

// Chan et al.'s merge of (n, shift, mean, m2) with (nb, shiftb, meanb, m2b); the result keeps
// the first shift (the other's is taken when the first is empty).
FI_HD void stats_merge_moments(double& n, double& shift, double& mean, double& m2, double nb,
                               double shiftb, double meanb, double m2b) {
  if (nb == 0.0) return;
  if (n == 0.0) {
    n = nb;
    shift = shiftb;
    mean = meanb;
    m2 = m2b;
    return;
  }
  const double total = n + nb;
  const double delta = ((shiftb - shift) + meanb) - mean;
  const double fb = nb / total;
  mean = mean + delta * fb;
  m2 = (m2 + m2b) + (delta * delta) * (n * fb);
  n = total;
}

// a <- a merged with b. Every field but the moments is order-independent.
FI_HD void stats_merge(StatsAcc& a, const StatsAcc& b) {
  stats_merge_moments(a.n, a.shift, a.mean, a.m2, b.n, b.shift, b.mean, b.m2);
  a.min = b.min < a.min ? b.min : a.min;
  a.max = b.max > a.max ? b.max : a.max;
  a.sum_abs += b.sum_abs;
  a.sum_sq += b.sum_sq;
  a.zeros += b.zeros;
  a.nans += b.nans;
  a.infs += b.infs;
}

// The summary of K values held in registers, of which the first `valid` count (the rest are
// ignored). Used by the CUDA kernel per thread; the CPU kernel does the same per lane set.
template <int K>
FI_HD StatsAcc stats_of_chunk(const double (&v)[K], int valid) {
  StatsAcc a = stats_empty();
  double sum = 0.0;
  FI_UNROLL
  for (int k = 0; k < K; ++k) {
    const double x = v[k];
    const bool in = k < valid;
    const bool fin = in && stats_finite(x);
    const double f = fin ? x : 0.0;
    a.n += fin ? 1.0 : 0.0;
    sum += f;
    a.sum_abs += f < 0.0 ? -f : f;
    a.sum_sq += f * f;
    a.min = fin && x < a.min ? x : a.min;
    a.max = fin && x > a.max ? x : a.max;
    a.zeros += in && x == 0.0 ? 1.0 : 0.0;
    a.nans += in && x != x ? 1.0 : 0.0;
  }
  a.infs = static_cast<double>(valid) - a.n - a.nans;
  const double shift = stats_shift(a.n, sum, a.min, a.max);
  a.shift = shift;
  double c = 0.0, q = 0.0;
  FI_UNROLL
  for (int k = 0; k < K; ++k) {
    const bool fin = k < valid && stats_finite(v[k]);
    const double d = fin ? v[k] - shift : 0.0;
    c += d;
    q += d * d;
  }
  stats_corrected(a.n, c, q, a.mean, a.m2);
  return a;
}

FI_HD void stats_store(const StatsAcc& a, double lo, double hi, double* rec) {
  rec[kStatN] = a.n;
  rec[kStatShift] = a.shift;
  rec[kStatMean] = a.mean;
  rec[kStatM2] = a.m2;
  rec[kStatMin] = a.min;
  rec[kStatMax] = a.max;
  rec[kStatSumAbs] = a.sum_abs;
  rec[kStatSumSq] = a.sum_sq;
  rec[kStatZeros] = a.zeros;
  rec[kStatNans] = a.nans;
  rec[kStatInfs] = a.infs;
  rec[kStatHistLo] = lo;
  rec[kStatHistHi] = hi;
}

FI_HD StatsAcc stats_load(const double* rec) {
  StatsAcc a;
  a.n = rec[kStatN];
  a.shift = rec[kStatShift];
  a.mean = rec[kStatMean];
  a.m2 = rec[kStatM2];
  a.min = rec[kStatMin];
  a.max = rec[kStatMax];
  a.sum_abs = rec[kStatSumAbs];
  a.sum_sq = rec[kStatSumSq];
  a.zeros = rec[kStatZeros];
  a.nans = rec[kStatNans];
  a.infs = rec[kStatInfs];
  return a;
}

// ------------------------------------------------------------------------------- histogram

// numpy's default range: (min, max) of the data, here of its finite values; (0, 1) when there
// are none; widened by ±0.5 when min == max.
FI_HD void stats_default_range(double n, double min, double max, double& lo, double& hi) {
  if (n > 0.0) {
    lo = min;
    hi = max;
  } else {
    lo = 0.0;
    hi = 1.0;
  }
  if (lo == hi) {
    lo = lo - 0.5;
    hi = hi + 0.5;
  }
}

struct HistGrid {
  double lo, hi;
  double step;      // numpy.linspace's step: (hi - lo) / bins
  double prescale;  // 1, or 2^600 when bins / (hi - lo) would overflow (a subnormal width)
  double scale;     // bins / ((hi - lo) * prescale): the estimate is offset * prescale * scale
  int bins;         // 0: no histogram
};

FI_HD HistGrid make_hist_grid(double lo, double hi, int bins) {
  HistGrid g;
  g.lo = lo;
  g.hi = hi;
  g.bins = bins;
  const double width = hi - lo;
  g.step = bins > 0 ? width / static_cast<double>(bins) : 0.0;
  g.prescale = 1.0;
  g.scale = bins > 0 ? static_cast<double>(bins) / width : 0.0;
  if (!(g.scale <= kStatsMaxFinite) && bins > 0) {  // exact power-of-two rescaling
    g.prescale = 0x1p600;
    g.scale = static_cast<double>(bins) / (width * g.prescale);
  }
  return g;
}

// Edge i of numpy.histogram(..., bins, range=(lo, hi)), i.e. of numpy.linspace(lo, hi, bins + 1).
FI_HD double hist_edge(const HistGrid& g, int i) {
  return i == g.bins ? g.hi : static_cast<double>(i) * g.step + g.lo;
}

// The bin of v, or `outside` when v is not in [lo, hi] (NaN included). numpy's algorithm: an
// estimate, clipped to the last bin, then one correction step against numpy's edges; the
// correction makes every estimate within one bin of the truth give numpy's answer (numpy
// estimates with ((v - lo) / (hi - lo)) * bins; a multiplication is as good and vectorises
// better). Branch-free so that it vectorises.
FI_HD int hist_bin(const HistGrid& g, double v, int outside) {
  // The index is kept as an integer-valued double until the end (vector units convert float64
  // to int32 once, but shuffle a lot for int32 arithmetic next to float64).
  const double bins = static_cast<double>(g.bins);
  const bool inside = v >= g.lo && v <= g.hi;
  const double offset = inside ? v - g.lo : 0.0;
  double f = (offset * g.prescale) * g.scale;  // in [0, bins (1 + a few ulps)]
  f = f < bins ? f : bins;
  double i = (f + 0x1p52) - 0x1p52;  // nearest integer (exact for 0 <= f < 2^51) ...
  i = i > f ? i - 1.0 : i;           // ... then floor
  i = i < bins - 1.0 ? i : bins - 1.0;
  const double lower = i * g.step + g.lo;
  const double upper = (i + 1.0) * g.step + g.lo;
  i = v < lower ? i - 1.0 : ((i + 1.0 < bins && v >= upper) ? i + 1.0 : i);
  return inside ? static_cast<int>(i) : outside;
}

// --------------------------------------------------------------------- layout (host only)

// The layout a reduction walks: statistics do not depend on the order of the elements, so dims
// are put in memory order (largest stride outermost), negative strides are flipped, and dims
// that are contiguous in memory merge — a transpose of a contiguous tensor becomes one run.
// `base_offset` (elements) moves the data pointer to the element with the lowest address.
// Returns false when more than kMaxDims dims remain.
inline bool stats_memory_layout(int ndim, const std::int64_t* shape, const std::int64_t* stride,
                                Layout& out, std::int64_t& base_offset) {
  constexpr int kMaxIn = 64;
  std::int64_t sh[kMaxIn], st[kMaxIn];
  int n = 0;
  base_offset = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 0) {  // empty
      out = Layout{};
      out.numel = 0;
      return true;
    }
  }
  for (int d = 0; d < ndim && n < kMaxIn; ++d) {
    if (shape[d] == 1) continue;
    std::int64_t s = stride[d];
    if (s < 0) {
      base_offset += (shape[d] - 1) * s;
      s = -s;
    }
    // insertion by decreasing stride (stable: equal strides keep their order)
    int pos = n;
    while (pos > 0 && st[pos - 1] < s) {
      st[pos] = st[pos - 1];
      sh[pos] = sh[pos - 1];
      --pos;
    }
    st[pos] = s;
    sh[pos] = shape[d];
    ++n;
  }
  return make_layout(n, sh, st, st, 0, out);
}

FI_NAMESPACE_END
