/*
 * ibllm_media: the preprocessing hot paths that need a C library or C speed (issue #15). Built by
 * build.mjs with the system compiler against Debian's libjpeg-turbo; the video decoding that needs
 * FFmpeg's libraries is a module of its own (module-av.c, ibllm_media_av), so an image without
 * those libraries still loads this one. The TypeScript wrapper (src/native/media-native.ts) falls
 * back to sharp, TypeScript and the ffmpeg CLI for whatever did not load.
 */
#include "media.h"

static napi_value init(napi_env env, napi_value exports) {
  export_fn(env, exports, "decodeJpegRgb", media_decode_jpeg_rgb);
  export_fn(env, exports, "resizeBicubicToPlanes", media_resize_bicubic_to_planes);
  export_fn(env, exports, "videoTensor", media_video_tensor);
  export_fn(env, exports, "pointFps", media_point_fps);
  export_fn(env, exports, "pointKnn", media_point_knn);
  napi_value abi;
  napi_create_int32(env, MEDIA_ABI_VERSION, &abi);
  napi_set_named_property(env, exports, "abiVersion", abi);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
