/*
 * Images: JPEG decoding with libjpeg-turbo (the library PIL decodes with, at PIL's settings: islow
 * IDCT, fancy upsampling, RGB out) and the fixed-point loops of Pillow's bicubic resampler, with
 * ToTensor + Normalize fused into the vertical pass. The coefficients and the normalisation tables
 * are computed by the TypeScript side (pillow-resize.ts, image.preprocess.ts), so this file holds
 * only the integer multiply-accumulate loops that the TypeScript reference runs too.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* libjpeg's headers need stddef.h and stdio.h first. */
#include <jerror.h>
#include <jpeglib.h>

#include "media.h"
#include "napi-util.h"

/* ---- JPEG --------------------------------------------------------------------------------- */

/* Progressive files with more scans than this are refused (a many-scan file is a CPU bomb). */
#define MAX_JPEG_SCANS 500

struct jpeg_guard {
  struct jpeg_error_mgr pub;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
  const char *code;
  double deadline;
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void guard_error_exit(j_common_ptr cinfo) {
  struct jpeg_guard *g = (struct jpeg_guard *)cinfo->err;
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  snprintf(g->message, sizeof g->message, "%s", text);
  g->code = cinfo->err->msg_code == JERR_OUT_OF_MEMORY || cinfo->err->msg_code == JERR_NO_BACKING_STORE
                ? "EMEMORY"
                : "EMEDIA";
  longjmp(g->jump, 1);
}

/* Warnings are ignored as PIL ignores them, except a file cut short, which PIL refuses. */
static void guard_emit(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    struct jpeg_guard *g = (struct jpeg_guard *)cinfo->err;
    snprintf(g->message, sizeof g->message, "image file is truncated");
    g->code = "EMEDIA";
    longjmp(g->jump, 1);
  }
}

static void guard_progress(j_common_ptr cinfo) {
  struct jpeg_guard *g = (struct jpeg_guard *)cinfo->err;
  if (!cinfo->is_decompressor) return;
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (d->input_scan_number > MAX_JPEG_SCANS) {
    snprintf(g->message, sizeof g->message, "the jpeg has more than %d scans", MAX_JPEG_SCANS);
    g->code = "EMEDIA";
    longjmp(g->jump, 1);
  }
  if (now_seconds() > g->deadline) {
    snprintf(g->message, sizeof g->message, "decoding took longer than the limit");
    g->code = "ETIMEOUT";
    longjmp(g->jump, 1);
  }
}

/*
 * decodeJpegRgb(bytes: Uint8Array, maxMemory: number, timeoutSeconds: number)
 *   → { width, height, data: Uint8Array (RGB24) }
 * Throws Error{code: EMEDIA | EMEMORY | ETIMEOUT}.
 */
napi_value media_decode_jpeg_rgb(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *bytes;
  size_t length;
  int64_t max_memory;
  double timeout;
  if (argc < 3 || arg_u8(env, argv[0], "bytes", &bytes, &length) != 0 ||
      arg_int(env, argv[1], "maxMemory", 1, (int64_t)1 << 50, &max_memory) != 0 ||
      arg_double(env, argv[2], "timeoutSeconds", &timeout) != 0)
    return NULL;

  struct jpeg_decompress_struct cinfo;
  struct jpeg_guard guard;
  memset(&cinfo, 0, sizeof cinfo);
  memset(&guard, 0, sizeof guard);
  cinfo.err = jpeg_std_error(&guard.pub);
  guard.pub.error_exit = guard_error_exit;
  guard.pub.emit_message = guard_emit;
  guard.deadline = now_seconds() + timeout;
  guard.progress.progress_monitor = guard_progress;

  volatile int created = 0;
  uint8_t *volatile out = NULL;
  napi_value buffer = NULL;
  napi_value result = NULL;
  if (setjmp(guard.jump)) {
    if (created) jpeg_destroy_decompress(&cinfo);
    throw_coded(env, guard.code != NULL ? guard.code : "EMEDIA", guard.message);
    return NULL;
  }
  jpeg_create_decompress(&cinfo);
  created = 1;
  cinfo.progress = &guard.progress;
  cinfo.mem->max_memory_to_use = (long)max_memory;
  jpeg_mem_src(&cinfo, bytes, (unsigned long)length);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.data_precision != 8 || (cinfo.num_components != 1 && cinfo.num_components != 3)) {
    snprintf(guard.message, sizeof guard.message, "not a plain 8-bit grey or colour jpeg");
    guard.code = "EMEDIA";
    longjmp(guard.jump, 1);
  }
  cinfo.out_color_space = JCS_RGB;
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  jpeg_calc_output_dimensions(&cinfo);
  const size_t row = (size_t)cinfo.output_width * 3;
  const size_t total = row * cinfo.output_height;
  if (cinfo.output_components != 3 || total == 0 || total > (size_t)max_memory) {
    snprintf(guard.message, sizeof guard.message, "decoded size %zu bytes is over the limit", total);
    guard.code = total == 0 ? "EMEDIA" : "EMEMORY";
    longjmp(guard.jump, 1);
  }
  void *data = NULL;
  if (napi_create_buffer(env, total, &data, &buffer) != napi_ok) {
    jpeg_destroy_decompress(&cinfo);
    return NULL;
  }
  out = data;
  jpeg_start_decompress(&cinfo);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rows[1] = {out + (size_t)cinfo.output_scanline * row};
    jpeg_read_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_decompress(&cinfo);
  const int64_t width = cinfo.output_width, height = cinfo.output_height;
  jpeg_destroy_decompress(&cinfo);

  napi_create_object(env, &result);
  set_named(env, result, "width", make_int(env, width));
  set_named(env, result, "height", make_int(env, height));
  set_named(env, result, "data", buffer);
  return result;
}

/* ---- Pillow bicubic resample, 3 channels ------------------------------------------------- */

#define PRECISION_BITS 22
#define HALF (1 << (PRECISION_BITS - 1))

static inline uint8_t clip8(int32_t acc) {
  if (acc <= 0) return 0;
  if (acc >= (int32_t)(256u << PRECISION_BITS)) return 255;
  return (uint8_t)(acc >> PRECISION_BITS);
}

struct axis {
  int32_t *start, *length, *weights;
  size_t count, weight_count;
  int64_t taps;
};

static int read_axis(napi_env env, napi_value start, napi_value length, napi_value weights, napi_value taps,
                     const char *name, struct axis *a) {
  size_t n1, n2;
  if (arg_i32_array(env, start, name, &a->start, &a->count) != 0 ||
      arg_i32_array(env, length, name, &a->length, &n1) != 0 ||
      arg_i32_array(env, weights, name, &a->weights, &n2) != 0 ||
      arg_int(env, taps, name, 1, 1 << 20, &a->taps) != 0)
    return -1;
  a->weight_count = n2;
  if (n1 != a->count || n2 != a->count * (size_t)a->taps || a->count == 0) {
    napi_throw_range_error(env, NULL, "media native: coefficient arrays do not match");
    return -1;
  }
  return 0;
}

/* Every window lies inside lo..hi and is no wider than the taps. */
static int axis_inside(const struct axis *a, int64_t lo, int64_t hi) {
  for (size_t i = 0; i < a->count; i++) {
    const int64_t s = a->start[i], n = a->length[i];
    if (s < lo || n < 0 || n > a->taps || s + n > hi) return 0;
  }
  return 1;
}

/*
 * resizeBicubicToPlanes(rgb, width, height, hStart, hLength, hWeights, hTaps,
 *                       vStart, vLength, vWeights, vTaps, rowStart, rowEnd, tables, out)
 * The horizontal pass over image rows rowStart..rowEnd-1 (rounded and clamped to bytes, as
 * Pillow stores its intermediate image), then the vertical pass, whose byte v of channel c is
 * written as tables[c*256 + v] to out[c*W*H + y*W + x]. Throws RangeError on inconsistent input.
 */
napi_value media_resize_bicubic_to_planes(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value argv[15];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 15) {
    napi_throw_type_error(env, NULL, "media native: resizeBicubicToPlanes takes 15 arguments");
    return NULL;
  }
  uint8_t *rgb;
  size_t rgb_len, tables_len, out_len;
  float *tables, *out;
  int64_t width, height, row_start, row_end;
  struct axis h, v;
  if (arg_u8(env, argv[0], "rgb", &rgb, &rgb_len) != 0 ||
      arg_int(env, argv[1], "width", 1, 1 << 30, &width) != 0 ||
      arg_int(env, argv[2], "height", 1, 1 << 30, &height) != 0 ||
      read_axis(env, argv[3], argv[4], argv[5], argv[6], "horizontal", &h) != 0 ||
      read_axis(env, argv[7], argv[8], argv[9], argv[10], "vertical", &v) != 0 ||
      arg_int(env, argv[11], "rowStart", 0, 1 << 30, &row_start) != 0 ||
      arg_int(env, argv[12], "rowEnd", 0, 1 << 30, &row_end) != 0 ||
      arg_f32_array(env, argv[13], "tables", &tables, &tables_len) != 0 ||
      arg_f32_array(env, argv[14], "out", &out, &out_len) != 0)
    return NULL;
  const size_t out_w = h.count, out_h = v.count, plane = out_w * out_h;
  if (rgb_len != (size_t)(width * height * 3) || tables_len != 768 || out_len != plane * 3 ||
      row_start >= row_end || row_end > height || !axis_inside(&h, 0, width) ||
      !axis_inside(&v, row_start, row_end)) {
    napi_throw_range_error(env, NULL, "media native: resize geometry is inconsistent");
    return NULL;
  }
  const size_t rows = (size_t)(row_end - row_start);
  const size_t stride = out_w * 3;
  uint8_t *mid = malloc(rows * stride);
  if (mid == NULL) {
    throw_coded(env, "EMEMORY", "out of memory for the resize");
    return NULL;
  }
  /* Horizontal pass. */
  for (size_t y = 0; y < rows; y++) {
    const uint8_t *src = rgb + (size_t)(row_start + (int64_t)y) * (size_t)width * 3;
    uint8_t *dst = mid + y * stride;
    for (size_t x = 0; x < out_w; x++) {
      const uint8_t *p = src + (size_t)h.start[x] * 3;
      const int32_t *k = h.weights + x * (size_t)h.taps;
      const int32_t n = h.length[x];
      int32_t r = HALF, g = HALF, b = HALF;
      for (int32_t j = 0; j < n; j++, p += 3) {
        const int32_t w = k[j];
        r += p[0] * w;
        g += p[1] * w;
        b += p[2] * w;
      }
      dst[x * 3] = clip8(r);
      dst[x * 3 + 1] = clip8(g);
      dst[x * 3 + 2] = clip8(b);
    }
  }
  /* Vertical pass, normalised into planes through the tables. */
  const float *t0 = tables, *t1 = tables + 256, *t2 = tables + 512;
  int32_t *acc = malloc(stride * sizeof(int32_t));
  if (acc == NULL) {
    free(mid);
    throw_coded(env, "EMEMORY", "out of memory for the resize");
    return NULL;
  }
  for (size_t y = 0; y < out_h; y++) {
    const uint8_t *base = mid + (size_t)(v.start[y] - row_start) * stride;
    const int32_t *k = v.weights + y * (size_t)v.taps;
    const int32_t n = v.length[y];
    for (size_t i = 0; i < stride; i++) acc[i] = HALF;
    /* Row by row, so the inner loop runs over contiguous bytes (it vectorises); the sums are the
     * same integers in the same order per output sample. */
    for (int32_t j = 0; j < n; j++) {
      const uint8_t *src = base + (size_t)j * stride;
      const int32_t w = k[j];
      for (size_t i = 0; i < stride; i++) acc[i] += src[i] * w;
    }
    float *o = out + y * out_w;
    for (size_t x = 0; x < out_w; x++) {
      o[x] = t0[clip8(acc[x * 3])];
      o[x + plane] = t1[clip8(acc[x * 3 + 1])];
      o[x + 2 * plane] = t2[clip8(acc[x * 3 + 2])];
    }
  }
  free(acc);
  free(mid);
  return NULL;
}
