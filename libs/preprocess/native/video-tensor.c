/*
 * The video loader's float32 steps after decoding (MODEL_SPEC §2.2 steps 5–9), as
 * videoFrameScaler and the crop assembly in video.preprocess.ts compute them: p/255, a bilinear
 * ShortSideScale (two taps per axis, torch's order: horizontal pair first, each product and sum
 * rounded to float32), CLIP normalisation, three spatial crops per clip frame. Every operation is
 * one IEEE float32 operation (compiled with -ffp-contract=off), which is what the TypeScript
 * Math.fround chain yields: a float32 +, −, × or ÷ done in double and rounded once is the same
 * correctly rounded float32. The axis tables come from TypeScript (linearAxis).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "media.h"
#include "napi-util.h"

struct lin {
  int32_t *i0, *i1;
  float *w0, *w1;
  size_t n;
};

static int read_lin(napi_env env, napi_value *v, const char *name, int64_t in_size, struct lin *a) {
  size_t n1, n2, n3;
  if (arg_i32_array(env, v[0], name, &a->i0, &a->n) != 0 || arg_i32_array(env, v[1], name, &a->i1, &n1) != 0 ||
      arg_f32_array(env, v[2], name, &a->w0, &n2) != 0 || arg_f32_array(env, v[3], name, &a->w1, &n3) != 0)
    return -1;
  int ok = a->n > 0 && n1 == a->n && n2 == a->n && n3 == a->n;
  for (size_t i = 0; ok && i < a->n; i++)
    ok = a->i0[i] >= 0 && a->i0[i] < in_size && a->i1[i] >= 0 && a->i1[i] < in_size;
  if (!ok) {
    napi_throw_range_error(env, NULL, "media native: bilinear axis tables do not match the frame");
    return -1;
  }
  return 0;
}

/*
 * The tensor (18 MB for the official 5 clips × 3 crops) and the scaled planes (8 MB at 320×240) are
 * fresh mappings on every call, and writing them faulted in 4 KiB at a time: with a VM's costly
 * page faults, half of a small video's preprocessing. Where the kernel's transparent huge pages are
 * on for advised memory ("madvise", Debian's default), their 2 MiB-aligned interiors are advised so
 * each fault maps 2 MiB. Advice only: nothing changes where it is off, or off Linux.
 */
static void advise_huge_pages(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t huge = (uintptr_t)2 << 20;
  if (bytes < 2 * huge) return;
  const uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1);
  const uintptr_t end = ((uintptr_t)p + bytes) & ~(huge - 1);
  if (end > start) (void)madvise((void *)start, end - start, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

/*
 * The scaled planes and the horizontal pass (8.9 MB at 320×240) in one working buffer per thread,
 * kept from one video to the next up to SCRATCH_KEEP_BYTES: a new one per video was mapped,
 * faulted in and unmapped each time, and in a process whose threads all preprocess, every unmap
 * also stalls the others (the address space's lock, and a TLB flush on each CPU running one of
 * them): two workers ran the golden video 1.5× one. Freed by a cleanup hook of the thread's
 * Node environment (a worker's teardown, before its addons are unloaded).
 */
#define SCRATCH_KEEP_BYTES ((size_t)32 << 20)

struct scratch {
  void *p;
  size_t bytes;
  int hooked;
};

static _Thread_local struct scratch thread_scratch;

static void scratch_release(void *arg) {
  struct scratch *s = arg;
  free(s->p);
  s->p = NULL;
  s->bytes = 0;
  s->hooked = 0;
}

/* This thread's buffer of at least `bytes`, or a new one the caller frees (*own = 1). */
static void *scratch_take(napi_env env, size_t bytes, int *own) {
  struct scratch *s = &thread_scratch;
  *own = 0;
  if (bytes > SCRATCH_KEEP_BYTES ||
      (!s->hooked && napi_add_env_cleanup_hook(env, scratch_release, s) != napi_ok)) {
    *own = 1;
    return malloc(bytes);
  }
  s->hooked = 1;
  if (s->bytes < bytes) {
    free(s->p);
    s->p = malloc(bytes);
    s->bytes = s->p == NULL ? 0 : bytes;
    if (s->p != NULL) advise_huge_pages(s->p, bytes);
  }
  return s->p;
}

/*
 * videoTensor(frames, count, width, height, rowI0, rowI1, rowW0, rowW1, colI0, colI1, colW0, colW1,
 *             meanStd, clipFrames, framesPerClip, crops, size, out)
 *   frames: count RGB24 frames of width × height, back to back; meanStd: [m0, m1, m2, s0, s1, s2];
 *   clipFrames: per clip, its framesPerClip frame slots (indices into frames);
 *   crops: per crop (x0, y0) in the scaled frame; out: [clips, crops, 3, framesPerClip, size, size].
 */
napi_value media_video_tensor(napi_env env, napi_callback_info info) {
  size_t argc = 18;
  napi_value argv[18];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 18) {
    napi_throw_type_error(env, NULL, "media native: videoTensor takes 18 arguments");
    return NULL;
  }
  uint8_t *frames;
  size_t frames_len, ms_len, clip_len, crop_len, out_len;
  int64_t count, width, height, size, t_count;
  struct lin rows, cols;
  float *mean_std, *out;
  int32_t *clip_frames, *crops;
  if (arg_u8(env, argv[0], "frames", &frames, &frames_len) != 0 ||
      arg_int(env, argv[1], "count", 1, 1 << 16, &count) != 0 ||
      arg_int(env, argv[2], "width", 1, 1 << 20, &width) != 0 ||
      arg_int(env, argv[3], "height", 1, 1 << 20, &height) != 0 ||
      read_lin(env, argv + 4, "rows", height, &rows) != 0 || read_lin(env, argv + 8, "cols", width, &cols) != 0 ||
      arg_f32_array(env, argv[12], "meanStd", &mean_std, &ms_len) != 0 ||
      arg_i32_array(env, argv[13], "clipFrames", &clip_frames, &clip_len) != 0 ||
      arg_int(env, argv[14], "framesPerClip", 1, 1 << 16, &t_count) != 0 ||
      arg_i32_array(env, argv[15], "crops", &crops, &crop_len) != 0 ||
      arg_int(env, argv[16], "size", 1, 1 << 16, &size) != 0 ||
      arg_f32_array(env, argv[17], "out", &out, &out_len) != 0)
    return NULL;
  const size_t out_w = cols.n, out_h = rows.n, plane = out_w * out_h;
  const size_t n_crops = crop_len / 2, sz = (size_t)size, crop_plane = sz * sz, T = (size_t)t_count;
  const size_t clips = clip_len / T;
  int ok = frames_len == (size_t)(count * width * height * 3) && ms_len == 6 && crop_len % 2 == 0 &&
           n_crops > 0 && clips > 0 && clip_len == clips * T && out_len == clips * n_crops * 3 * T * crop_plane;
  for (size_t i = 0; ok && i < clip_len; i++) ok = clip_frames[i] >= 0 && clip_frames[i] < count;
  for (size_t i = 0; ok && i < n_crops; i++)
    ok = crops[2 * i] >= 0 && crops[2 * i + 1] >= 0 && (size_t)crops[2 * i] + sz <= out_w &&
         (size_t)crops[2 * i + 1] + sz <= out_h;
  if (!ok) {
    napi_throw_range_error(env, NULL, "media native: video tensor geometry is inconsistent");
    return NULL;
  }

  /* Scaled, normalised planes of every frame (count × 3 × plane), the horizontal pass of one
   * frame's needed rows (height × out_w × 3), the tap tables (out_w × 256 each), the row marks. */
  const size_t planes_floats = (size_t)count * 3 * plane;
  int own_scratch = 0;
  float *planes = scratch_take(env, (planes_floats + (size_t)height * out_w * 3) * sizeof(float), &own_scratch);
  float *h = planes == NULL ? NULL : planes + planes_floats;
  float *tap0 = malloc(out_w * 256 * sizeof(float));
  float *tap1 = malloc(out_w * 256 * sizeof(float));
  uint8_t *needed = calloc((size_t)height, 1);
  if (planes == NULL || tap0 == NULL || tap1 == NULL || needed == NULL) {
    if (own_scratch) free(planes);
    free(tap0);
    free(tap1);
    free(needed);
    throw_coded(env, "EMEMORY", "out of memory for the video tensor");
    return NULL;
  }
  if (own_scratch) advise_huge_pages(planes, planes_floats * sizeof(float));
  advise_huge_pages(out, out_len * sizeof(float));
  float unit[256];
  for (int p = 0; p < 256; p++) unit[p] = (float)((double)p / 255.0);
  for (size_t x = 0; x < out_w; x++)
    for (int p = 0; p < 256; p++) {
      tap0[x * 256 + p] = unit[p] * cols.w0[x];
      tap1[x * 256 + p] = unit[p] * cols.w1[x];
    }
  for (size_t y = 0; y < out_h; y++) needed[rows.i0[y]] = needed[rows.i1[y]] = 1;

  for (int64_t f = 0; f < count; f++) {
    const uint8_t *rgb = frames + (size_t)f * (size_t)(width * height * 3);
    /* Horizontal pass per needed source row, channels interleaved: h[(r * out_w + x) * 3 + c]. */
    for (int64_t r = 0; r < height; r++) {
      if (!needed[r]) continue;
      const uint8_t *row = rgb + (size_t)r * (size_t)width * 3;
      float *dst = h + (size_t)r * out_w * 3;
      for (size_t x = 0; x < out_w; x++) {
        const uint8_t *p0 = row + (size_t)cols.i0[x] * 3, *p1 = row + (size_t)cols.i1[x] * 3;
        const float *t0 = tap0 + x * 256, *t1 = tap1 + x * 256;
        dst[x * 3] = t0[p0[0]] + t1[p1[0]];
        dst[x * 3 + 1] = t0[p0[1]] + t1[p1[1]];
        dst[x * 3 + 2] = t0[p0[2]] + t1[p1[2]];
      }
    }
    /* Vertical pass and normalisation into planes. */
    float *fp = planes + (size_t)f * 3 * plane;
    for (int c = 0; c < 3; c++) {
      const float m = mean_std[c], s = mean_std[3 + c];
      float *o = fp + (size_t)c * plane;
      for (size_t y = 0; y < out_h; y++) {
        const float *h0 = h + (size_t)rows.i0[y] * out_w * 3 + c;
        const float *h1 = h + (size_t)rows.i1[y] * out_w * 3 + c;
        const float b0 = rows.w0[y], b1 = rows.w1[y];
        for (size_t x = 0; x < out_w; x++) {
          const float a = h0[x * 3] * b0;
          const float b = h1[x * 3] * b1;
          const float v = a + b;
          o[y * out_w + x] = (v - m) / s;
        }
      }
    }
  }
  free(needed);
  free(tap0);
  free(tap1);

  /* Crops, MODEL_SPEC §2.2 step 9: clip-major, then crop, channel, frame. */
  for (size_t k = 0; k < clips; k++)
    for (size_t crop = 0; crop < n_crops; crop++) {
      const size_t x0 = (size_t)crops[2 * crop], y0 = (size_t)crops[2 * crop + 1];
      for (size_t c = 0; c < 3; c++)
        for (size_t t = 0; t < T; t++) {
          const float *src = planes + ((size_t)clip_frames[k * T + t] * 3 + c) * plane;
          float *dst = out + (((k * n_crops + crop) * 3 + c) * T + t) * crop_plane;
          for (size_t y = 0; y < sz; y++) memcpy(dst + y * sz, src + (y0 + y) * out_w + x0, sz * sizeof(float));
        }
    }
  if (own_scratch) free(planes);
  return NULL;
}
