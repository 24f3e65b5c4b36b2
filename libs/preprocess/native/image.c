/*
 * Images: JPEG decoding with libjpeg-turbo (the library PIL decodes with, at PIL's settings: islow
 * IDCT, fancy upsampling, RGB out) and the fixed-point loops of Pillow's bicubic resampler, with
 * ToTensor + Normalize fused into the vertical pass. The coefficients and the normalisation tables
 * are computed by the TypeScript side (pillow-resize.ts, image.preprocess.ts), so this file holds
 * only the integer multiply-accumulate loops that the TypeScript reference runs too.
 *
 * The horizontal pass, the vertical pass and the plane store each exist as plain C, SSE4.1 and
 * AVX2 (target attributes, one object file); the widest the CPU supports is chosen once, and
 * resizeKernels() can cap it so a test runs every level against the same reference. Every level
 * does the same integer arithmetic in the same order per output sample, so all give the same bytes.
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
 * decodeJpegRgb(bytes: Uint8Array, maxMemory: number, timeoutSeconds: number, into?: Uint8Array)
 *   → { width, height, data: Uint8Array (RGB24) }
 * With `into` at least the decoded size, the pixels are written there and `data` is a view of its
 * first width·height·3 bytes (a thread that decodes one image at a time reuses one buffer instead
 * of a new one per image); otherwise `data` is a new Buffer.
 * Throws Error{code: EMEDIA | EMEMORY | ETIMEOUT}.
 */
napi_value media_decode_jpeg_rgb(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t *bytes;
  size_t length;
  int64_t max_memory;
  double timeout;
  if (argc < 3 || arg_u8(env, argv[0], "bytes", &bytes, &length) != 0 ||
      arg_int(env, argv[1], "maxMemory", 1, (int64_t)1 << 50, &max_memory) != 0 ||
      arg_double(env, argv[2], "timeoutSeconds", &timeout) != 0)
    return NULL;
  uint8_t *into = NULL;
  size_t into_length = 0;
  napi_value into_buffer = NULL;
  size_t into_offset = 0;
  if (argc >= 4) {
    napi_valuetype type;
    napi_typeof(env, argv[3], &type);
    if (type != napi_undefined && type != napi_null) {
      napi_typedarray_type kind;
      if (arg_u8(env, argv[3], "into", &into, &into_length) != 0 ||
          napi_get_typedarray_info(env, argv[3], &kind, &into_length, (void **)&into, &into_buffer,
                                   &into_offset) != napi_ok)
        return NULL;
    }
  }

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
  if (into != NULL && into_length >= total) {
    if (napi_create_typedarray(env, napi_uint8_array, total, into_buffer, into_offset, &buffer) != napi_ok) {
      jpeg_destroy_decompress(&cinfo);
      return NULL;
    }
    data = into;
  } else if (napi_create_buffer(env, total, &data, &buffer) != napi_ok) {
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

/* ---- the loops, plain C and x86 SIMD ----------------------------------------------------
 * Every variant computes the same int32 sums as Pillow (integer addition is exact in any order and
 * no partial sum overflows: the weights of a window sum to 1 << 22, the bytes are at most 255), then
 * clips as clip8 does: acc >> 22 saturated to 0..255 equals clip8(acc) for every int32. The x86
 * variants are compiled for SSE4.1 or AVX2 by function attributes and chosen once from the CPU's own
 * report (__builtin_cpu_supports), so the module stays built for the baseline x86-64 and runs on any
 * x86-64; elsewhere only the plain C loops exist. */

enum kernel { KERNEL_C = 0, KERNEL_SSE41 = 1, KERNEL_AVX2 = 2 };
static const char *const kernel_names[] = {"c", "sse4.1", "avx2"};

/* What the CPU runs (the best it has), and the cap a caller set (tests compare every level). */
static int kernel_best(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static int best = -1;
  if (best < 0) {
    __builtin_cpu_init();
    best = __builtin_cpu_supports("avx2") ? KERNEL_AVX2 : __builtin_cpu_supports("sse4.1") ? KERNEL_SSE41 : KERNEL_C;
  }
  return best;
#else
  return KERNEL_C;
#endif
}
static int kernel_cap = KERNEL_AVX2;
static int kernel_active(void) {
  const int best = kernel_best();
  return best < kernel_cap ? best : kernel_cap;
}

/* One horizontal output row: window x of `h` over source row `src` into RGB bytes `dst`. */
static void horizontal_row_c(const uint8_t *src, uint8_t *dst, const struct axis *h, const uint8_t *end) {
  (void)end;
  for (size_t x = 0; x < h->count; x++) {
    const uint8_t *p = src + (size_t)h->start[x] * 3;
    const int32_t *k = h->weights + x * (size_t)h->taps;
    const int32_t n = h->length[x];
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

/* One vertical output row: samples 0..count-1 of the n source rows `stride` bytes apart from `base`,
 * summed with the weights k and clipped into `row`. In blocks, row by row, so the inner loop runs
 * over contiguous bytes (the compiler vectorises it where the target has a 32-bit multiply). */
static void vertical_row_c(const uint8_t *base, size_t stride, size_t count, const int32_t *k, int32_t n,
                           uint8_t *row) {
  enum { BLOCK = 64 };
  int32_t acc[BLOCK];
  for (size_t i0 = 0; i0 < count; i0 += BLOCK) {
    const size_t m = count - i0 < BLOCK ? count - i0 : BLOCK;
    for (size_t i = 0; i < m; i++) acc[i] = HALF;
    for (int32_t j = 0; j < n; j++) {
      const uint8_t *src = base + (size_t)j * stride + i0;
      const int32_t w = k[j];
      for (size_t i = 0; i < m; i++) acc[i] += src[i] * w;
    }
    for (size_t i = 0; i < m; i++) row[i0 + i] = clip8(acc[i]);
  }
}

/* Clipped RGB bytes of one output row → the three float planes through the tables. */
static void planes_row_c(const uint8_t *row, size_t count, const float *tables, float *o, size_t plane) {
  const float *t0 = tables, *t1 = tables + 256, *t2 = tables + 512;
  for (size_t x = 0; x < count; x++) {
    o[x] = t0[row[x * 3]];
    o[x + plane] = t1[row[x * 3 + 1]];
    o[x + 2 * plane] = t2[row[x * 3 + 2]];
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* Four source bytes as a 32-bit integer: the pixel's RGB and the next byte (whose lane is never
 * used). The last pixel of the image has no next byte: it is read alone. */
static inline uint32_t pixel_bytes(const uint8_t *p, const uint8_t *end) {
  uint32_t v;
  if (p + 4 <= end) {
    memcpy(&v, p, 4);
  } else {
    v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
  }
  return v;
}

/* The pixel's three sums (lanes 0..2) to bytes; writes four bytes at dst (the caller's row has one
 * spare byte at its end, and the fourth is overwritten by the next pixel). */
__attribute__((target("sse4.1"))) static inline void store_pixel_sse41(__m128i acc, uint8_t *dst) {
  __m128i s = _mm_srai_epi32(acc, PRECISION_BITS);
  s = _mm_packs_epi32(s, s);
  s = _mm_packus_epi16(s, s);
  const uint32_t v = (uint32_t)_mm_cvtsi128_si32(s);
  memcpy(dst, &v, 4);
}

/* One pixel per 128-bit vector: R, G, B (and a spare lane) times the tap's weight. */
__attribute__((target("sse4.1"))) static void horizontal_row_sse41(const uint8_t *src, uint8_t *dst,
                                                                    const struct axis *h, const uint8_t *end) {
  for (size_t x = 0; x < h->count; x++) {
    const uint8_t *p = src + (size_t)h->start[x] * 3;
    const int32_t *k = h->weights + x * (size_t)h->taps;
    const int32_t n = h->length[x];
    __m128i acc = _mm_set1_epi32(HALF);
    for (int32_t j = 0; j < n; j++, p += 3) {
      const __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)pixel_bytes(p, end)));
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(k[j])));
    }
    store_pixel_sse41(acc, dst + x * 3);
  }
}

/* One pixel, two taps per 256-bit vector: an 8-byte load at tap j holds pixels j and j + 1, spread
 * to R, G, B, 0 in each half and multiplied by that tap's weight; the halves are added at the end.
 * A window whose loads would pass the end of the image (its last row's last pixels) takes the
 * one-tap loop. */
__attribute__((target("avx2"))) static void horizontal_row_avx2(const uint8_t *src, uint8_t *dst,
                                                                 const struct axis *h, const uint8_t *end) {
  const __m128i spread = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const size_t taps = (size_t)h->taps;
  for (size_t x = 0; x < h->count; x++) {
    const uint8_t *p = src + (size_t)h->start[x] * 3;
    const int32_t *k = h->weights + x * taps;
    const int32_t n = h->length[x];
    if (p + (size_t)n * 3 + 5 > end) {
      __m128i acc = _mm_set1_epi32(HALF);
      for (int32_t j = 0; j < n; j++, p += 3) {
        const __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)pixel_bytes(p, end)));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(k[j])));
      }
      store_pixel_sse41(acc, dst + x * 3);
      continue;
    }
    __m256i acc = _mm256_setzero_si256();
    for (int32_t j = 0; j < n; j += 2, p += 6) {
      const int32_t w1 = j + 1 < n ? k[j + 1] : 0;
      const __m256i w = _mm256_set_m128i(_mm_set1_epi32(w1), _mm_set1_epi32(k[j]));
      const __m128i bytes = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(const void *)p), spread);
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(bytes), w));
    }
    const __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1)),
                                      _mm_set1_epi32(HALF));
    store_pixel_sse41(sum, dst + x * 3);
  }
}

/* Four samples per vector, every tap summed in a register, then clipped as a group. */
__attribute__((target("sse4.1"))) static void vertical_row_sse41(const uint8_t *base, size_t stride,
                                                                  size_t count, const int32_t *k, int32_t n,
                                                                  uint8_t *row) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m128i lo = _mm_set1_epi32(HALF), hi = lo;
    for (int32_t j = 0; j < n; j++) {
      const __m128i w = _mm_set1_epi32(k[j]);
      const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(base + (size_t)j * stride + i));
      lo = _mm_add_epi32(lo, _mm_mullo_epi32(_mm_cvtepu8_epi32(b), w));
      hi = _mm_add_epi32(hi, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_srli_si128(b, 4)), w));
    }
    __m128i s = _mm_packs_epi32(_mm_srai_epi32(lo, PRECISION_BITS), _mm_srai_epi32(hi, PRECISION_BITS));
    _mm_storel_epi64((__m128i *)(void *)(row + i), _mm_packus_epi16(s, s));
  }
  vertical_row_c(base + i, stride, count - i, k, n, row + i);
}

/* Sixteen samples per iteration in two 256-bit vectors. */
__attribute__((target("avx2"))) static void vertical_row_avx2(const uint8_t *base, size_t stride,
                                                               size_t count, const int32_t *k, int32_t n,
                                                               uint8_t *row) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    __m256i lo = _mm256_set1_epi32(HALF), hi = lo;
    for (int32_t j = 0; j < n; j++) {
      const __m256i w = _mm256_set1_epi32(k[j]);
      const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(base + (size_t)j * stride + i));
      lo = _mm256_add_epi32(lo, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), w));
      hi = _mm256_add_epi32(hi, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), w));
    }
    /* packs works within 128-bit halves: lo = s0..s7, hi = s8..s15 → reorder after packing. */
    const __m256i s16 = _mm256_permute4x64_epi64(
        _mm256_packs_epi32(_mm256_srai_epi32(lo, PRECISION_BITS), _mm256_srai_epi32(hi, PRECISION_BITS)), 0xd8);
    const __m128i s8 = _mm_packus_epi16(_mm256_castsi256_si128(s16), _mm256_extracti128_si256(s16, 1));
    _mm_storeu_si128((__m128i *)(void *)(row + i), s8);
  }
  vertical_row_sse41(base + i, stride, count - i, k, n, row + i);
}

/* Eight pixels at a time: each channel's eight bytes picked out of the 24 interleaved ones, widened,
 * and looked up in its table with one gather. */
__attribute__((target("avx2"))) static void planes_row_avx2(const uint8_t *row, size_t count, const float *tables,
                                                             float *o, size_t plane) {
  const __m128i pick_lo[3] = {
      _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1),
      _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1),
      _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1),
  };
  const __m128i pick_hi[3] = {
      _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1),
      _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1),
      _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1),
  };
  size_t x = 0;
  for (; x + 8 <= count; x += 8) {
    const __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)(row + x * 3));
    const __m128i hi = _mm_loadl_epi64((const __m128i *)(const void *)(row + x * 3 + 16));
    for (int c = 0; c < 3; c++) {
      const __m128i idx8 = _mm_or_si128(_mm_shuffle_epi8(lo, pick_lo[c]), _mm_shuffle_epi8(hi, pick_hi[c]));
      const __m256 values = _mm256_i32gather_ps(tables + c * 256, _mm256_cvtepu8_epi32(idx8), 4);
      _mm256_storeu_ps(o + (size_t)c * plane + x, values);
    }
  }
  planes_row_c(row + x * 3, count - x, tables, o + x, plane);
}
#endif

typedef void (*horizontal_fn)(const uint8_t *, uint8_t *, const struct axis *, const uint8_t *);
typedef void (*vertical_fn)(const uint8_t *, size_t, size_t, const int32_t *, int32_t, uint8_t *);
typedef void (*planes_fn)(const uint8_t *, size_t, const float *, float *, size_t);

/*
 * resizeKernels(cap?: 'c' | 'sse4.1' | 'avx2') → the name of the loops in use: the best the CPU
 * has, at most `cap` when given (the specs run every level the machine has against the TypeScript
 * resampler).
 */
napi_value media_resize_kernels(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= 1) {
    char name[16];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "media native: resizeKernels takes a kernel name");
      return NULL;
    }
    int found = -1;
    for (int i = 0; i < (int)(sizeof kernel_names / sizeof kernel_names[0]); i++)
      if (strcmp(name, kernel_names[i]) == 0) found = i;
    if (found < 0) {
      napi_throw_range_error(env, NULL, "media native: resizeKernels takes 'c', 'sse4.1' or 'avx2'");
      return NULL;
    }
    kernel_cap = found;
  }
  return make_string(env, kernel_names[kernel_active()]);
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
  horizontal_fn horizontal = horizontal_row_c;
  vertical_fn vertical = vertical_row_c;
  planes_fn planes = planes_row_c;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  switch (kernel_active()) {
  case KERNEL_AVX2:
    horizontal = horizontal_row_avx2;
    vertical = vertical_row_avx2;
    planes = planes_row_avx2;
    break;
  case KERNEL_SSE41:
    horizontal = horizontal_row_sse41;
    vertical = vertical_row_sse41;
    break;
  default:
    break;
  }
#endif
  const size_t rows = (size_t)(row_end - row_start);
  const size_t stride = out_w * 3;
  /* One spare byte: the SIMD loops store four bytes per pixel (the fourth is overwritten). */
  uint8_t *mid = malloc(rows * stride + 1);
  uint8_t *row = malloc(stride + 1);
  if (mid == NULL || row == NULL) {
    free(mid);
    free(row);
    throw_coded(env, "EMEMORY", "out of memory for the resize");
    return NULL;
  }
  /* Horizontal pass. */
  const uint8_t *end = rgb + rgb_len;
  for (size_t y = 0; y < rows; y++)
    horizontal(rgb + (size_t)(row_start + (int64_t)y) * (size_t)width * 3, mid + y * stride, &h, end);
  /* Vertical pass, normalised into planes through the tables. */
  for (size_t y = 0; y < out_h; y++) {
    vertical(mid + (size_t)(v.start[y] - row_start) * stride, stride, stride, v.weights + y * (size_t)v.taps,
             v.length[y], row);
    planes(row, out_w, tables, out + y * out_w, plane);
  }
  free(row);
  free(mid);
  return NULL;
}
