/*
 * The audio resampler's convolution (src/audio/sinc-resample.ts, resampleSinc): each output sample
 * is a dot product of the input with one phase's live taps, accumulated in double in tap order and
 * rounded to float once, exactly as the TypeScript loop does (build.mjs compiles without fused
 * multiply-adds), so both paths give the same bits. Input outside [0, length) reads as zero.
 *
 * Four outputs are worked on at once, each with its own accumulator and its own taps in their own
 * order: one dot product alone waits on its adds (a 17-tap phase, 22.05 → 16 kHz, is 17 dependent
 * additions), four in flight keep the adder busy.
 */
#include "media.h"

/* Σ in[base + j] · taps[j] over j < count, in order, reading zeros outside [0, length). */
static double dot_clamped(const float *in, int64_t length, int64_t base, const double *taps, int32_t count) {
  int64_t first = base < 0 ? -base : 0;
  int64_t last = length - base < count ? length - base : count;
  double acc = 0;
  for (int64_t j = first; j < last; j++) acc += (double)in[base + j] * taps[j];
  return acc;
}

/*
 * resampleSinc(input, offset, row, count, taps, orig, start, out)
 *   offset, row, count: one entry per phase (n = offset.length); output y = m·n + k reads
 *   input[m·orig + offset[k] + j] · taps[row[k] + j] for j < count[k]; out[i] is output start + i.
 */
napi_value media_resample_sinc(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "media native: resampleSinc takes 8 arguments");
    return NULL;
  }
  float *in, *out;
  int32_t *offset, *row, *count;
  double *taps;
  size_t in_len, phases, n_row, n_count, n_taps, out_len;
  int64_t orig, start;
  if (arg_f32_array(env, argv[0], "input", &in, &in_len) != 0 ||
      arg_i32_array(env, argv[1], "offset", &offset, &phases) != 0 ||
      arg_i32_array(env, argv[2], "row", &row, &n_row) != 0 ||
      arg_i32_array(env, argv[3], "count", &count, &n_count) != 0 ||
      arg_f64_array(env, argv[4], "taps", &taps, &n_taps) != 0 ||
      arg_int(env, argv[5], "orig", 1, (int64_t)1 << 30, &orig) != 0 ||
      arg_int(env, argv[6], "start", 0, (int64_t)1 << 50, &start) != 0 ||
      arg_f32_array(env, argv[7], "out", &out, &out_len) != 0)
    return NULL;
  int ok = phases > 0 && n_row == phases && n_count == phases;
  for (size_t k = 0; ok && k < phases; k++)
    ok = row[k] >= 0 && count[k] >= 0 && (size_t)row[k] + (size_t)count[k] <= n_taps;
  if (!ok) {
    napi_throw_range_error(env, NULL, "media native: resample kernel layout is inconsistent");
    return NULL;
  }
  const int64_t length = (int64_t)in_len, n = (int64_t)phases;
  int64_t k = start % n;
  int64_t block = (start / n) * orig;
  size_t i = 0;
  while (i < out_len) {
    /* Four consecutive outputs whose taps all lie inside the input: the unrolled path. */
    if (i + 4 <= out_len) {
      int64_t base[4], kk = k, bb = block;
      int inside = 1;
      const double *t[4];
      int32_t c[4];
      for (int l = 0; l < 4; l++) {
        base[l] = bb + offset[kk];
        t[l] = taps + row[kk];
        c[l] = count[kk];
        inside = inside && base[l] >= 0 && base[l] + c[l] <= length;
        if (++kk == n) {
          kk = 0;
          bb += orig;
        }
      }
      if (inside) {
        const float *x0 = in + base[0], *x1 = in + base[1], *x2 = in + base[2], *x3 = in + base[3];
        int32_t common = c[0];
        for (int l = 1; l < 4; l++)
          if (c[l] < common) common = c[l];
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int32_t j = 0; j < common; j++) {
          a0 += (double)x0[j] * t[0][j];
          a1 += (double)x1[j] * t[1][j];
          a2 += (double)x2[j] * t[2][j];
          a3 += (double)x3[j] * t[3][j];
        }
        for (int32_t j = common; j < c[0]; j++) a0 += (double)x0[j] * t[0][j];
        for (int32_t j = common; j < c[1]; j++) a1 += (double)x1[j] * t[1][j];
        for (int32_t j = common; j < c[2]; j++) a2 += (double)x2[j] * t[2][j];
        for (int32_t j = common; j < c[3]; j++) a3 += (double)x3[j] * t[3][j];
        out[i] = (float)a0;
        out[i + 1] = (float)a1;
        out[i + 2] = (float)a2;
        out[i + 3] = (float)a3;
        i += 4;
        k = kk;
        block = bb;
        continue;
      }
    }
    out[i++] = (float)dot_clamped(in, length, block + offset[k], taps + row[k], count[k]);
    if (++k == n) {
      k = 0;
      block += orig;
    }
  }
  return NULL;
}
