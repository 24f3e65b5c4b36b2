/*
 * ibllm_media: the preprocessing hot paths that need a C library or C speed (issue #15). Built by
 * build.mjs with the system compiler against Debian's libjpeg-turbo; the video decoding that needs
 * FFmpeg's libraries is a module of its own (module-av.c, ibllm_media_av), so an image without
 * those libraries still loads this one. The TypeScript wrapper (src/native/media-native.ts) falls
 * back to sharp, TypeScript and the ffmpeg CLI for whatever did not load.
 */
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "media.h"

/*
 * tuneAllocator(mmapThreshold, trimThreshold) → whether it applied (glibc only).
 * glibc serves each allocation above M_MMAP_THRESHOLD with its own mmap and returns it with munmap;
 * its dynamic threshold rises only after such a block is freed, which for ArrayBuffers happens at
 * V8's next GC, so a thread allocating a 600 KB tensor per image often gets fresh pages every time:
 * 150 page faults, a third of a 374×249 image's preprocessing here. Fixed thresholds keep blocks
 * below mmapThreshold in the heap and give memory back once trimThreshold is free at its top.
 * An operator's own settings win: with MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ or a malloc
 * tunable in GLIBC_TUNABLES in the environment nothing is changed (and false is returned).
 */
static napi_value media_tune_allocator(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t mmap_threshold, trim_threshold;
  if (argc < 2 || arg_int(env, argv[0], "mmapThreshold", 0, (int64_t)32 << 20, &mmap_threshold) != 0 ||
      arg_int(env, argv[1], "trimThreshold", 0, (int64_t)1 << 30, &trim_threshold) != 0)
    return NULL;
  napi_value result;
#if defined(__GLIBC__)
  const char *tunables = getenv("GLIBC_TUNABLES");
  if (getenv("MALLOC_MMAP_THRESHOLD_") != NULL || getenv("MALLOC_TRIM_THRESHOLD_") != NULL ||
      (tunables != NULL && strstr(tunables, "glibc.malloc.") != NULL)) {
    napi_get_boolean(env, 0, &result);
    return result;
  }
  const int ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, (int)trim_threshold) == 1;
  napi_get_boolean(env, ok, &result);
#else
  napi_get_boolean(env, 0, &result);
#endif
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct export_entry entries[] = {
      {"decodeJpegRgb", media_decode_jpeg_rgb}, {"resizeBicubicToPlanes", media_resize_bicubic_to_planes},
      {"resizeKernels", media_resize_kernels},   {"tuneAllocator", media_tune_allocator},
      {"videoTensor", media_video_tensor},      {"pointFps", media_point_fps},
      {"pointKnn", media_point_knn},           {"fbankFrames", media_fbank_frames},
      {"resampleSinc", media_resample_sinc},
  };
  return export_all(env, exports, entries, sizeof entries / sizeof entries[0], MEDIA_ABI_VERSION);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
