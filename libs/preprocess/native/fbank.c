/*
 * The audio loader's log mel filterbank frames (MODEL_SPEC §2.3 step 5), as kaldiFbank in
 * kaldi-fbank.ts computes them: per frame the float64 mean, DC removal, pre-emphasis against the
 * replicate-padded previous sample and the window, each step rounded to float32 as torch stores it;
 * the real FFT in float64 (RealFft in fft.ts: the same packing, stage order and split, with its
 * twiddle and bit-reversal tables passed in, so every butterfly does the same float64 operations);
 * the power spectrum rounded to float32; the sparse mel products summed in float64; the log of the
 * float32 sum, floored at float32's epsilon. Compiled with -ffp-contract=off, like the rest.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"

#define FLOAT32_EPSILON 1.1920928955078125e-7

struct fft_tables {
  size_t half;
  const int32_t *bit_reverse;
  const double *cos_stage, *sin_stage, *cos_full, *sin_full;
};

/* RealFft.transform: `input` holds `size` = 2 · half samples; bins 0..half into out_re / out_im. */
static void real_fft(const struct fft_tables *t, const double *input, double *re, double *im, double *out_re,
                     double *out_im) {
  const size_t half = t->half;
  for (size_t i = 0; i < half; i++) {
    const size_t r = (size_t)t->bit_reverse[i];
    re[r] = input[2 * i];
    im[r] = input[2 * i + 1];
  }
  if (half == 2) {
    const double r0 = re[0], i0 = im[0];
    re[0] = r0 + re[1];
    im[0] = i0 + im[1];
    re[1] = r0 - re[1];
    im[1] = i0 - im[1];
  }
  /* Spans 1 and 2 as one radix-4 step (twiddles 1 and −i). */
  for (size_t a = 0; half >= 4 && a < half; a += 4) {
    const double r0 = re[a] + re[a + 1], i0 = im[a] + im[a + 1];
    const double r1 = re[a] - re[a + 1], i1 = im[a] - im[a + 1];
    const double r2 = re[a + 2] + re[a + 3], i2 = im[a + 2] + im[a + 3];
    const double r3 = re[a + 2] - re[a + 3], i3 = im[a + 2] - im[a + 3];
    re[a] = r0 + r2;
    im[a] = i0 + i2;
    re[a + 2] = r0 - r2;
    im[a + 2] = i0 - i2;
    re[a + 1] = r1 + i3;
    im[a + 1] = i1 - r3;
    re[a + 3] = r1 - i3;
    im[a + 3] = i1 + r3;
  }
  /* Two radix-2 stages (spans s and 2s) per pass. */
  size_t span = 4;
  for (; span * 4 <= half; span *= 4) {
    for (size_t j = 0; j < span; j++) {
      const double w2r = t->cos_stage[span + j], w2i = t->sin_stage[span + j];
      const double wr = t->cos_stage[2 * span + j], wi = t->sin_stage[2 * span + j];
      for (size_t a0 = j; a0 < half; a0 += 4 * span) {
        const size_t a1 = a0 + span, a2 = a1 + span, a3 = a2 + span;
        const double x1r = re[a1], x1i = im[a1];
        const double t1r = x1r * w2r - x1i * w2i, t1i = x1r * w2i + x1i * w2r;
        const double x3r = re[a3], x3i = im[a3];
        const double t3r = x3r * w2r - x3i * w2i, t3i = x3r * w2i + x3i * w2r;
        const double x0r = re[a0], x0i = im[a0], x2r = re[a2], x2i = im[a2];
        const double b0r = x0r + t1r, b0i = x0i + t1i, b1r = x0r - t1r, b1i = x0i - t1i;
        const double b2r = x2r + t3r, b2i = x2i + t3i, b3r = x2r - t3r, b3i = x2i - t3i;
        const double ur = b2r * wr - b2i * wi, ui = b2r * wi + b2i * wr;
        const double pr = b3r * wr - b3i * wi, pi = b3r * wi + b3i * wr;
        re[a0] = b0r + ur;
        im[a0] = b0i + ui;
        re[a2] = b0r - ur;
        im[a2] = b0i - ui;
        re[a1] = b1r + pi;
        im[a1] = b1i - pr;
        re[a3] = b1r - pi;
        im[a3] = b1i + pr;
      }
    }
  }
  for (; span < half; span *= 2) {
    for (size_t j = 0; j < span; j++) {
      const double wr = t->cos_stage[span + j], wi = t->sin_stage[span + j];
      for (size_t a = j; a < half; a += 2 * span) {
        const size_t b = a + span;
        const double xr = re[b], xi = im[b];
        const double br = xr * wr - xi * wi, bi = xr * wi + xi * wr;
        const double ar = re[a], ai = im[a];
        re[b] = ar - br;
        im[b] = ai - bi;
        re[a] = ar + br;
        im[a] = ai + bi;
      }
    }
  }
  /* Split into the real spectrum: X[k] = E[k] + W^k · O[k]. */
  out_re[0] = re[0] + im[0];
  out_im[0] = 0;
  out_re[half] = re[0] - im[0];
  out_im[half] = 0;
  for (size_t k = 1; k < half; k++) {
    const double zr = re[k], zi = im[k], cr = re[half - k], ci = -im[half - k];
    const double er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci);
    const double o_r = 0.5 * (zi - ci), o_i = -0.5 * (zr - cr);
    const double wr = t->cos_full[k], wi = t->sin_full[k];
    out_re[k] = er + wr * o_r - wi * o_i;
    out_im[k] = ei + wr * o_i + wi * o_r;
  }
}

/*
 * fbankFrames(waveform, frames, windowSize, windowShift, preemphasis, window, bitReverse, cosStage,
 *             sinStage, cosFull, sinFull, melFirst, melOffsets, melWeights, out)
 *   window: windowSize float32; the FFT size is 2 · bitReverse.length; mel bin b sums
 *   melWeights[melOffsets[b] .. melOffsets[b + 1]) against the power bins from melFirst[b];
 *   out: frames × melFirst.length float32.
 */
napi_value media_fbank_frames(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value argv[15];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 15) {
    napi_throw_type_error(env, NULL, "media native: fbankFrames takes 15 arguments");
    return NULL;
  }
  float *wave, *window, *out;
  int32_t *bit_reverse, *mel_first, *mel_offsets;
  double *cos_stage, *sin_stage, *cos_full, *sin_full, *mel_weights, preemphasis_d;
  size_t wave_len, window_len, half, n_cs, n_ss, n_cf, n_sf, n_mel, n_off, n_w, out_len;
  int64_t frames, window_size, window_shift;
  if (arg_f32_array(env, argv[0], "waveform", &wave, &wave_len) != 0 ||
      arg_int(env, argv[1], "frames", 1, (int64_t)1 << 30, &frames) != 0 ||
      arg_int(env, argv[2], "windowSize", 2, (int64_t)1 << 24, &window_size) != 0 ||
      arg_int(env, argv[3], "windowShift", 1, (int64_t)1 << 24, &window_shift) != 0 ||
      arg_double(env, argv[4], "preemphasis", &preemphasis_d) != 0 ||
      arg_f32_array(env, argv[5], "window", &window, &window_len) != 0 ||
      arg_i32_array(env, argv[6], "bitReverse", &bit_reverse, &half) != 0 ||
      arg_f64_array(env, argv[7], "cosStage", &cos_stage, &n_cs) != 0 ||
      arg_f64_array(env, argv[8], "sinStage", &sin_stage, &n_ss) != 0 ||
      arg_f64_array(env, argv[9], "cosFull", &cos_full, &n_cf) != 0 ||
      arg_f64_array(env, argv[10], "sinFull", &sin_full, &n_sf) != 0 ||
      arg_i32_array(env, argv[11], "melFirst", &mel_first, &n_mel) != 0 ||
      arg_i32_array(env, argv[12], "melOffsets", &mel_offsets, &n_off) != 0 ||
      arg_f64_array(env, argv[13], "melWeights", &mel_weights, &n_w) != 0 ||
      arg_f32_array(env, argv[14], "out", &out, &out_len) != 0)
    return NULL;
  const size_t ws = (size_t)window_size, shift = (size_t)window_shift, size = 2 * half;
  int ok = half >= 2 && (half & (half - 1)) == 0 && ws <= size && window_len == ws && n_cs >= half && n_ss >= half &&
           n_cf == half + 1 && n_sf == half + 1 && n_mel > 0 && n_off == n_mel + 1 &&
           out_len == (size_t)frames * n_mel && (size_t)(frames - 1) * shift + ws <= wave_len;
  for (size_t i = 0; ok && i < half; i++) ok = bit_reverse[i] >= 0 && (size_t)bit_reverse[i] < half;
  for (size_t b = 0; ok && b < n_mel; b++) {
    const int32_t from = mel_offsets[b], to = mel_offsets[b + 1];
    ok = from >= 0 && to >= from && (size_t)to <= n_w && mel_first[b] >= 0 &&
         (size_t)mel_first[b] + (size_t)(to - from) <= half + 1;
  }
  if (!ok) {
    napi_throw_range_error(env, NULL, "media native: fbank geometry is inconsistent");
    return NULL;
  }
  double *work = calloc(size + 4 * half + 2 * (half + 1) + (half + 1), sizeof(double));
  if (work == NULL) {
    throw_coded(env, "EMEMORY", "out of memory for the fbank");
    return NULL;
  }
  /* The frame stays zero past the window (the FFT's padding). */
  double *frame = work, *re = frame + size, *im = re + half, *sre = im + half, *sim = sre + half + 1,
         *power = sim + half + 1;
  const struct fft_tables tables = {half, bit_reverse, cos_stage, sin_stage, cos_full, sin_full};
  const float preemphasis = (float)preemphasis_d;
  for (int64_t f = 0; f < frames; f++) {
    const float *w = wave + (size_t)f * shift;
    double sum = 0;
    for (size_t i = 0; i < ws; i++) sum += (double)w[i];
    const float mean = (float)(sum / (double)ws);
    float prev = (float)((double)w[0] - (double)mean);
    for (size_t i = 0; i < ws; i++) {
      const float cur = (float)((double)w[i] - (double)mean);
      const float emphasised = (float)((double)cur - (double)(float)((double)preemphasis * (double)prev));
      frame[i] = (double)(float)((double)emphasised * (double)window[i]);
      prev = cur;
    }
    real_fft(&tables, frame, re, im, sre, sim);
    for (size_t k = 0; k <= half; k++) {
      const float magnitude = (float)sqrt(sre[k] * sre[k] + sim[k] * sim[k]);
      power[k] = (double)(float)((double)magnitude * (double)magnitude);
    }
    float *row = out + (size_t)f * n_mel;
    for (size_t b = 0; b < n_mel; b++) {
      const int32_t start = mel_offsets[b], end = mel_offsets[b + 1];
      const double *p = power + mel_first[b] - start;
      double acc = 0;
      for (int32_t j = start; j < end; j++) acc += p[j] * mel_weights[j];
      const double floored = fmax((double)(float)acc, FLOAT32_EPSILON);
      row[b] = (float)log(floored);
    }
  }
  free(work);
  return NULL;
}
