/*
 * ibllm_media: the preprocessing hot paths that need a C library or C speed (issue #15). Built by
 * build.mjs with the system compiler against Debian's libjpeg-turbo; the video decoding that needs
 * FFmpeg's libraries is a module of its own (module-av.c, ibllm_media_av), so an image without
 * those libraries still loads this one. The TypeScript wrapper (src/native/media-native.ts) falls
 * back to sharp, TypeScript and the ffmpeg CLI for whatever did not load.
 */
#include "media.h"

static napi_value init(napi_env env, napi_value exports) {
  static const struct export_entry entries[] = {
      {"decodeJpegRgb", media_decode_jpeg_rgb}, {"resizeBicubicToPlanes", media_resize_bicubic_to_planes},
      {"videoTensor", media_video_tensor},      {"pointFps", media_point_fps},
      {"pointKnn", media_point_knn},
  };
  return export_all(env, exports, entries, sizeof entries / sizeof entries[0], MEDIA_ABI_VERSION);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
