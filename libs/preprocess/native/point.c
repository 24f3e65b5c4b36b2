/*
 * The point encoder's grouping (MODEL_SPEC §3.7 steps 1–2) in C: farthest-point sampling and the
 * kNN of each centre, computing what src/point/fps.ts, group.ts and torch-topk.ts compute, bit for
 * bit and index for index:
 * - every float operation is one IEEE float32 operation (compiled with -ffp-contract=off), which
 *   is what the TypeScript Math.fround chains yield;
 * - the GEMM dot product is fmaf(z, z', fmaf(y, y', x·x')), as torch's FMA float32 kernels do;
 * - torch.topk(largest=False, sorted=False) is libstdc++'s partial_sort (k·64 ≤ n) or
 *   nth_element at k − 1 on (value, index) pairs compared by value, NaN after every number,
 *   replayed step by step so ties are kept, dropped and ordered exactly as torch leaves them.
 * Both run synchronously: they are called from the preprocessing worker threads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"
#include "napi-util.h"


/* Four float32 / int32 lanes (GCC and Clang vector extensions: SSE2 / NEON registers). */
enum { LANES = 4 };
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(LANES * sizeof(int32_t))));

/* mask ? a : b per lane, the mask being a vector comparison's all-ones / zero lanes. */
static inline vf select_f(vi mask, vf a, vf b) {
  vi ai, bi;
  memcpy(&ai, &a, sizeof ai);
  memcpy(&bi, &b, sizeof bi);
  const vi r = (mask & ai) | (~mask & bi);
  vf out;
  memcpy(&out, &r, sizeof out);
  return out;
}

static inline int any_lane(vi mask) {
  uint64_t half[2];
  memcpy(half, &mask, sizeof half);
  return (half[0] | half[1]) != 0;
}

/*
 * fps(points, count, numSamples, start, out)
 *   points: [count, 3] float32; out: Int32Array(numSamples), the chosen indices in order.
 */
napi_value media_point_fps(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "media native: pointFps takes 5 arguments");
    return NULL;
  }
  float *points;
  int32_t *out;
  size_t points_len, out_len;
  int64_t count, samples, start;
  if (arg_f32_array(env, argv[0], "points", &points, &points_len) != 0 ||
      arg_int(env, argv[1], "count", 1, INT32_MAX, &count) != 0 ||
      arg_int(env, argv[2], "numSamples", 1, count, &samples) != 0 ||
      arg_int(env, argv[3], "start", 0, count - 1, &start) != 0 ||
      arg_i32_array(env, argv[4], "out", &out, &out_len) != 0)
    return NULL;
  if (points_len < (size_t)count * 3 || out_len != (size_t)samples) {
    napi_throw_range_error(env, NULL, "media native: pointFps buffers do not match count / numSamples");
    return NULL;
  }
  const size_t n = (size_t)count;
  /* Structure of arrays: the distance update reads three streams, four lanes at a time. */
  float *dist = malloc(n * 4 * sizeof(float));
  if (dist == NULL) {
    throw_coded(env, "EMEMORY", "media native: no memory for farthest-point sampling");
    return NULL;
  }
  float *xs = dist + n, *ys = xs + n, *zs = ys + n;
  for (size_t j = 0; j < n; j++) {
    dist[j] = 1e10f;
    xs[j] = points[3 * j];
    ys[j] = points[3 * j + 1];
    zs[j] = points[3 * j + 2];
  }
  size_t far = (size_t)start;
  for (int64_t s = 0; s < samples; s++) {
    out[s] = (int32_t)far;
    const float cx = xs[far], cy = ys[far], cz = zs[far];
    /*
     * dist = min(dist, d) as the TypeScript `if (d < current)` does it, and the first index of the
     * largest distance. Per lane: its largest value and the first index holding it (strict >);
     * across lanes the largest, lowest index first, which is the first index overall. dist is
     * never NaN (1e10, then only ever a smaller d), so best = max and the order is total.
     */
    const vf vcx = {cx, cx, cx, cx}, vcy = {cy, cy, cy, cy}, vcz = {cz, cz, cz, cz};
    vf vbest = {-1.0f, -1.0f, -1.0f, -1.0f};
    vi vindex = {0, 0, 0, 0}, vj = {0, 1, 2, 3};
    const vi step = {LANES, LANES, LANES, LANES};
    size_t j = 0;
    for (; j + LANES <= n; j += LANES, vj += step) {
      vf x, y, z, old;
      memcpy(&x, xs + j, sizeof x);
      memcpy(&y, ys + j, sizeof y);
      memcpy(&z, zs + j, sizeof z);
      memcpy(&old, dist + j, sizeof old);
      const vf dx = x - vcx, dy = y - vcy, dz = z - vcz;
      const vf d = (dx * dx + dy * dy) + dz * dz;
      const vf kept = select_f(d < old, d, old);
      memcpy(dist + j, &kept, sizeof kept);
      const vi wins = kept > vbest;
      vbest = select_f(wins, kept, vbest);
      vindex = (wins & vj) | (~wins & vindex);
    }
    float lane_best[LANES];
    int32_t lane_index[LANES];
    memcpy(lane_best, &vbest, sizeof vbest);
    memcpy(lane_index, &vindex, sizeof vindex);
    float best = -1.0f;
    size_t best_index = 0;
    for (int l = 0; l < LANES; l++) {
      if (lane_best[l] > best || (lane_best[l] == best && (size_t)lane_index[l] < best_index)) {
        best = lane_best[l];
        best_index = (size_t)lane_index[l];
      }
    }
    for (; j < n; j++) {
      const float dx = xs[j] - cx, dy = ys[j] - cy, dz = zs[j] - cz;
      const float d = (dx * dx + dy * dy) + dz * dz;
      if (d < dist[j]) dist[j] = d;
      if (dist[j] > best) {
        best = dist[j];
        best_index = j;
      }
    }
    far = best_index;
  }
  free(dist);
  return NULL;
}

/* ---- torch.topk(largest=False, sorted=False) on one row: libstdc++'s algorithms ---- */

struct pairs {
  float *v;
  int32_t *ix;
};

/* torch's comparator: x < y, NaN after every number. */
static inline int lt(float x, float y) { return x < y || (y != y && x == x); }

static inline void move_pair(struct pairs *p, ptrdiff_t to, ptrdiff_t from) {
  p->v[to] = p->v[from];
  p->ix[to] = p->ix[from];
}

static inline void swap_pair(struct pairs *p, ptrdiff_t a, ptrdiff_t b) {
  const float v = p->v[a];
  const int32_t i = p->ix[a];
  move_pair(p, a, b);
  p->v[b] = v;
  p->ix[b] = i;
}

/* std::__adjust_heap: the hole sinks to a leaf, then (value, index) climbs back (a max-heap). */
static void adjust_heap(struct pairs *p, ptrdiff_t first, ptrdiff_t hole, ptrdiff_t len, float value,
                        int32_t index) {
  const ptrdiff_t top = hole;
  ptrdiff_t second = hole;
  while (second < (len - 1) / 2) {
    second = 2 * (second + 1);
    if (lt(p->v[first + second], p->v[first + second - 1])) second--;
    move_pair(p, first + hole, first + second);
    hole = second;
  }
  if ((len & 1) == 0 && second == (len - 2) / 2) {
    second = 2 * (second + 1);
    move_pair(p, first + hole, first + second - 1);
    hole = second - 1;
  }
  ptrdiff_t parent = (hole - 1) / 2;
  while (hole > top && lt(p->v[first + parent], value)) {
    move_pair(p, first + hole, first + parent);
    hole = parent;
    parent = (hole - 1) / 2;
  }
  p->v[first + hole] = value;
  p->ix[first + hole] = index;
}

static void make_heap(struct pairs *p, ptrdiff_t first, ptrdiff_t last) {
  const ptrdiff_t len = last - first;
  if (len < 2) return;
  for (ptrdiff_t parent = (len - 2) / 2;; parent--) {
    adjust_heap(p, first, parent, len, p->v[first + parent], p->ix[first + parent]);
    if (parent == 0) return;
  }
}

/* std::__pop_heap(first, last, result): the top goes to result, result's pair into the heap. */
static inline void pop_heap(struct pairs *p, ptrdiff_t first, ptrdiff_t last, ptrdiff_t result) {
  const float value = p->v[result];
  const int32_t index = p->ix[result];
  move_pair(p, result, first);
  adjust_heap(p, first, 0, last - first, value, index);
}

static void heap_select(struct pairs *p, ptrdiff_t first, ptrdiff_t middle, ptrdiff_t last) {
  make_heap(p, first, middle);
  for (ptrdiff_t i = middle; i < last; i++)
    if (lt(p->v[i], p->v[first])) pop_heap(p, first, middle, i);
}

static void median_to_first(struct pairs *p, ptrdiff_t result, ptrdiff_t a, ptrdiff_t b, ptrdiff_t c) {
  const float *v = p->v;
  if (lt(v[a], v[b])) {
    if (lt(v[b], v[c])) swap_pair(p, result, b);
    else if (lt(v[a], v[c])) swap_pair(p, result, c);
    else swap_pair(p, result, a);
  } else if (lt(v[a], v[c])) swap_pair(p, result, a);
  else if (lt(v[b], v[c])) swap_pair(p, result, c);
  else swap_pair(p, result, b);
}

static ptrdiff_t unguarded_partition(struct pairs *p, ptrdiff_t first, ptrdiff_t last, ptrdiff_t pivot) {
  for (;;) {
    while (lt(p->v[first], p->v[pivot])) first++;
    last--;
    while (lt(p->v[pivot], p->v[last])) last--;
    if (!(first < last)) return first;
    swap_pair(p, first, last);
    first++;
  }
}

static void insertion_sort(struct pairs *p, ptrdiff_t first, ptrdiff_t last) {
  if (first == last) return;
  for (ptrdiff_t i = first + 1; i < last; i++) {
    const float value = p->v[i];
    const int32_t index = p->ix[i];
    ptrdiff_t hole = i;
    if (lt(value, p->v[first])) {
      for (; hole > first; hole--) move_pair(p, hole, hole - 1);
    } else {
      for (; lt(value, p->v[hole - 1]); hole--) move_pair(p, hole, hole - 1);
    }
    p->v[hole] = value;
    p->ix[hole] = index;
  }
}

/* std::__introselect: median-of-three pivots, heap select when the depth runs out. */
static void nth_element(struct pairs *p, ptrdiff_t first, ptrdiff_t nth, ptrdiff_t last) {
  if (first == last || nth == last) return;
  int depth = 0;
  for (size_t len = (size_t)(last - first); len > 1; len >>= 1) depth++;
  depth *= 2;
  while (last - first > 3) {
    if (depth == 0) {
      heap_select(p, first, nth + 1, last);
      swap_pair(p, first, nth);
      return;
    }
    depth--;
    const ptrdiff_t mid = first + (last - first) / 2;
    median_to_first(p, first, first + 1, mid, last - 1);
    const ptrdiff_t cut = unguarded_partition(p, first + 1, last, first);
    if (cut <= nth) first = cut;
    else last = cut;
  }
  insertion_sort(p, first, last);
}

/*
 * One row of square_distance: (−2·(c·p) + |c|²) + |p|², the dot product fused as torch's GEMM does.
 * x86-64 without -mfma would call libm's fmaf per element; a clone for FMA CPUs (picked at load
 * time) keeps it in registers and vectorised. Both clones compute the same correctly rounded fmaf.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("fma", "default")))
#endif
static void distance_row(const float *xs, const float *ys, const float *zs, const float *norms, size_t n,
                         float cx, float cy, float cz, float cn, float *row) {
  for (size_t j = 0; j < n; j++) {
    const float dot = fmaf(cz, zs[j], fmaf(cy, ys[j], cx * xs[j]));
    row[j] = (-2.0f * dot + cn) + norms[j];
  }
}

/*
 * knn(points, count, centers, numCenters, groupSize, out)
 *   points: [count, 3]; centers: [numCenters, 3]; out: Int32Array(numCenters · groupSize), each
 *   group's indices in torch.topk's order.
 */
napi_value media_point_knn(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "media native: pointKnn takes 6 arguments");
    return NULL;
  }
  float *points, *centers;
  int32_t *out;
  size_t points_len, centers_len, out_len;
  int64_t count, n_centers, k;
  if (arg_f32_array(env, argv[0], "points", &points, &points_len) != 0 ||
      arg_int(env, argv[1], "count", 1, INT32_MAX, &count) != 0 ||
      arg_f32_array(env, argv[2], "centers", &centers, &centers_len) != 0 ||
      arg_int(env, argv[3], "numCenters", 1, INT32_MAX, &n_centers) != 0 ||
      arg_int(env, argv[4], "groupSize", 1, count, &k) != 0 ||
      arg_i32_array(env, argv[5], "out", &out, &out_len) != 0)
    return NULL;
  if (points_len < (size_t)count * 3 || centers_len < (size_t)n_centers * 3 ||
      out_len != (size_t)(n_centers * k)) {
    napi_throw_range_error(env, NULL, "media native: pointKnn buffers do not match count / numCenters / groupSize");
    return NULL;
  }
  const size_t n = (size_t)count;
  float *buf = malloc(n * 5 * sizeof(float));
  int32_t *ix = malloc(n * sizeof(int32_t));
  if (buf == NULL || ix == NULL) {
    free(buf);
    free(ix);
    throw_coded(env, "EMEMORY", "media native: no memory for the kNN grouping");
    return NULL;
  }
  float *norms = buf, *xs = buf + n, *ys = xs + n, *zs = ys + n, *row = zs + n;
  for (size_t j = 0; j < n; j++) {
    const float x = points[3 * j], y = points[3 * j + 1], z = points[3 * j + 2];
    xs[j] = x;
    ys[j] = y;
    zs[j] = z;
    norms[j] = (x * x + y * y) + z * z;
  }
  struct pairs p = {row, ix};
  const int heap = k * 64 <= count;
  for (int64_t g = 0; g < n_centers; g++) {
    const float cx = centers[3 * g], cy = centers[3 * g + 1], cz = centers[3 * g + 2];
    const float cn = (cx * cx + cy * cy) + cz * cz;
    distance_row(xs, ys, zs, norms, n, cx, cy, cz, cn, row);
    /* The pairs' indices: the heap path reads only its first k slots' (the rest enter by position). */
    for (int64_t j = 0, live = heap ? k : count; j < live; j++) ix[j] = (int32_t)j;
    if (heap) {
      /*
       * heap_select(0, k, n) with the scan kept in registers: a row value enters the heap only
       * when it is below the top; the top popped out to its slot is never read again, so that
       * write is left out (the first k slots come out the same).
       */
      make_heap(&p, 0, k);
      float top = row[0];
      ptrdiff_t i = k;
      /* Four at a time while the top is a number: most rows never beat it. */
      while (i + LANES <= count && top == top) {
        vf v, vtop = {top, top, top, top};
        memcpy(&v, row + i, sizeof v);
        if (any_lane(v < vtop)) {
          for (ptrdiff_t e = i + LANES; i < e; i++) {
            if (lt(row[i], top)) {
              adjust_heap(&p, 0, 0, k, row[i], (int32_t)i);
              top = row[0];
            }
          }
        } else {
          i += LANES;
        }
      }
      for (; i < count; i++) {
        if (lt(row[i], top)) {
          adjust_heap(&p, 0, 0, k, row[i], (int32_t)i);
          top = row[0];
        }
      }
      for (ptrdiff_t last = k - 1; last > 0; last--) pop_heap(&p, 0, last, last);
    } else {
      nth_element(&p, 0, k - 1, count);
    }
    for (int64_t j = 0; j < k; j++) out[g * k + j] = ix[j];
  }
  free(buf);
  free(ix);
  return NULL;
}
