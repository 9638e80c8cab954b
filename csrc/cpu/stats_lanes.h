// The summary of a tile of float64 values held in L1 (csrc/common/stats_accumulator.h's
// chunk step), computed by eight independent lanes in SIMD registers: lane l takes elements
// l, l + 8, l + 16, ... and the lanes combine in a fixed order, so the result depends only on
// the tile. GCC/Clang vector extensions give 4-wide float64 vectors in the AVX2 build and
// 2-wide (SSE2) in the portable one; selections are written as bit masks so that both compile
// to straight-line SIMD.
//
// Pass 1 first assumes the tile is all finite (no masking: sum, Σ|x|, Σx², min, max) and checks
// it afterwards: a NaN or an Inf anywhere makes the sum non-finite. Only then is the tile
// summarised again with finite masks. Pass 2 sums d = x − shift and d² (the corrected
// two-pass formula) and counts the zeros (there, because pass 1 has no register left for them:
// AVX2 has 16). The last < 8 elements of a tensor go through stats_of_chunk.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../common/stats_accumulator.h"

FI_NAMESPACE_BEGIN
namespace cpu {

constexpr int kStatsLanes = 8;

#if defined(__GNUC__) || defined(__clang__)

#if defined(__AVX__)
constexpr int kVecWidth = 4;
#else
constexpr int kVecWidth = 2;
#endif
constexpr int kVecs = kStatsLanes / kVecWidth;
typedef double VecD __attribute__((vector_size(8 * kVecWidth)));
typedef long long VecI __attribute__((vector_size(8 * kVecWidth)));

inline VecD vec_load(const double* p) {
  VecD v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline VecD vec_splat(double x) {
  VecD v;
  for (int k = 0; k < kVecWidth; ++k) v[k] = x;
  return v;
}
inline VecD vec_and(VecD a, VecI mask) { return reinterpret_cast<VecD>(reinterpret_cast<VecI>(a) & mask); }
inline VecD vec_select(VecI mask, VecD a, VecD b) {
  return reinterpret_cast<VecD>((reinterpret_cast<VecI>(a) & mask) | (reinterpret_cast<VecI>(b) & ~mask));
}

// Per-lane sums of pass 1.
struct LaneSums {
  VecD n[kVecs], s[kVecs], sa[kVecs], sq[kVecs], mn[kVecs], mx[kVecs], na[kVecs];
};

// Pass 1 over buf[0, count), count a multiple of kStatsLanes. kMasked: finite values only.
template <bool kMasked>
inline void lane_pass1(const double* buf, std::int64_t count, LaneSums& r) {
  const VecD zero = vec_splat(0.0), one = vec_splat(1.0), inf = vec_splat(HUGE_VAL);
  const VecD big = vec_splat(kStatsMaxFinite);
  VecI abs_mask;
  for (int k = 0; k < kVecWidth; ++k) abs_mask[k] = 0x7fffffffffffffffLL;
  VecD n[kVecs], s[kVecs], sa[kVecs], sq[kVecs], mn[kVecs], mx[kVecs], na[kVecs];
  for (int l = 0; l < kVecs; ++l) {
    n[l] = s[l] = sa[l] = sq[l] = na[l] = zero;
    mn[l] = inf;
    mx[l] = -inf;
  }
  for (std::int64_t j = 0; j < count; j += kStatsLanes) {
    for (int l = 0; l < kVecs; ++l) {
      const VecD v = vec_load(buf + j + l * kVecWidth);
      const VecD av = vec_and(v, abs_mask);
      if (kMasked) {
        const VecI fin = av <= big;
        const VecD x = vec_and(v, fin);
        n[l] += vec_and(one, fin);
        s[l] += x;
        sa[l] += vec_and(av, fin);
        sq[l] += x * x;
        mn[l] = vec_select(fin & (v < mn[l]), v, mn[l]);
        mx[l] = vec_select(fin & (v > mx[l]), v, mx[l]);
        na[l] += vec_and(one, v != v);
      } else {
        s[l] += v;
        sa[l] += av;
        sq[l] += v * v;
        mn[l] = vec_select(v < mn[l], v, mn[l]);
        mx[l] = vec_select(v > mx[l], v, mx[l]);
      }
    }
  }
  for (int l = 0; l < kVecs; ++l) {
    r.n[l] = n[l];
    r.s[l] = s[l];
    r.sa[l] = sa[l];
    r.sq[l] = sq[l];
    r.mn[l] = mn[l];
    r.mx[l] = mx[l];
    r.na[l] = na[l];
  }
}

// Pass 2: c = Σ(x − shift), q = Σ(x − shift)² and the zeros per lane, combined in lane order.
template <bool kMasked>
inline void lane_pass2(const double* buf, std::int64_t count, double shift, double& c_out,
                       double& q_out, double& zeros_out) {
  const VecD zero = vec_splat(0.0), one = vec_splat(1.0), shift_v = vec_splat(shift);
  const VecD big = vec_splat(kStatsMaxFinite);
  VecI abs_mask;
  for (int k = 0; k < kVecWidth; ++k) abs_mask[k] = 0x7fffffffffffffffLL;
  VecD c[kVecs], q[kVecs], z[kVecs];
  for (int l = 0; l < kVecs; ++l) c[l] = q[l] = z[l] = zero;
  for (std::int64_t j = 0; j < count; j += kStatsLanes) {
    for (int l = 0; l < kVecs; ++l) {
      const VecD v = vec_load(buf + j + l * kVecWidth);
      VecD d = v - shift_v;
      if (kMasked) d = vec_and(d, vec_and(v, abs_mask) <= big);
      c[l] += d;
      q[l] += d * d;
      z[l] += vec_and(one, v == zero);
    }
  }
  double cs = 0.0, qs = 0.0, zs = 0.0;
  for (int lane = 0; lane < kStatsLanes; ++lane) {
    cs += c[lane / kVecWidth][lane % kVecWidth];
    qs += q[lane / kVecWidth][lane % kVecWidth];
    zs += z[lane / kVecWidth][lane % kVecWidth];
  }
  c_out = cs;
  q_out = qs;
  zeros_out = zs;
}

// The summary of buf[0, count), count a multiple of kStatsLanes.
inline StatsAcc lanes_stats(const double* buf, std::int64_t count) {
  StatsAcc a = stats_empty();
  if (count == 0) return a;
  LaneSums r;
  lane_pass1<false>(buf, count, r);
  double sum = 0.0;
  for (int lane = 0; lane < kStatsLanes; ++lane) sum += r.s[lane / kVecWidth][lane % kVecWidth];
  const bool masked = !stats_finite(sum);  // a NaN or an Inf in the tile (or an overflow)
  if (masked) lane_pass1<true>(buf, count, r);
  sum = 0.0;
  for (int lane = 0; lane < kStatsLanes; ++lane) {  // lanes combine in a fixed order
    const int l = lane / kVecWidth, k = lane % kVecWidth;
    a.n += masked ? r.n[l][k] : 0.0;
    sum += r.s[l][k];
    a.sum_abs += r.sa[l][k];
    a.sum_sq += r.sq[l][k];
    a.min = r.mn[l][k] < a.min ? r.mn[l][k] : a.min;
    a.max = r.mx[l][k] > a.max ? r.mx[l][k] : a.max;
    a.nans += masked ? r.na[l][k] : 0.0;
  }
  if (!masked) a.n = static_cast<double>(count);
  a.infs = static_cast<double>(count) - a.n - a.nans;
  if (a.n == 0.0) return a;
  a.shift = stats_shift(a.n, sum, a.min, a.max);
  double c = 0.0, q = 0.0;
  if (masked)
    lane_pass2<true>(buf, count, a.shift, c, q, a.zeros);
  else
    lane_pass2<false>(buf, count, a.shift, c, q, a.zeros);
  stats_corrected(a.n, c, q, a.mean, a.m2);
  return a;
}

#else  // no vector extensions: chunks of eight through the common code

inline StatsAcc lanes_stats(const double* buf, std::int64_t count) {
  StatsAcc a = stats_empty();
  for (std::int64_t j = 0; j < count; j += kStatsLanes) {
    double v[kStatsLanes];
    for (int k = 0; k < kStatsLanes; ++k) v[k] = buf[j + k];
    stats_merge(a, stats_of_chunk<kStatsLanes>(v, kStatsLanes));
  }
  return a;
}

#endif

// The summary of a tile buf[0, count) of any length.
inline StatsAcc tile_stats(const double* buf, std::int64_t count) {
  const std::int64_t main = count / kStatsLanes * kStatsLanes;
  StatsAcc a = lanes_stats(buf, main);
  if (main < count) {
    double v[kStatsLanes];
    for (int k = 0; k < kStatsLanes; ++k) v[k] = main + k < count ? buf[main + k] : 0.0;
    stats_merge(a, stats_of_chunk<kStatsLanes>(v, static_cast<int>(count - main)));
  }
  return a;
}

}  // namespace cpu
FI_NAMESPACE_END
