/*
 * ibllm_media: the preprocessing hot paths that need a C library or C speed (issue #15). Built by
 * build.mjs with the system compiler against Debian's libjpeg-turbo and (when its headers are
 * there) FFmpeg's libraries; the TypeScript wrapper (src/native/media-native.ts) falls back to
 * sharp and the ffmpeg CLI when the module is absent.
 */
#include "media.h"

#ifdef IBLLM_WITH_LIBAV
#include <libavutil/log.h>
#endif

static int export_fn(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f) != napi_ok) return -1;
  return napi_set_named_property(env, exports, name, f) == napi_ok ? 0 : -1;
}

static napi_value init(napi_env env, napi_value exports) {
#ifdef IBLLM_WITH_LIBAV
  /* Errors come back as coded JS errors; FFmpeg's own log would only clutter the service's stderr. */
  av_log_set_level(AV_LOG_QUIET);
#endif
  export_fn(env, exports, "decodeJpegRgb", media_decode_jpeg_rgb);
  export_fn(env, exports, "resizeBicubicToPlanes", media_resize_bicubic_to_planes);
  export_fn(env, exports, "videoTensor", media_video_tensor);
  export_fn(env, exports, "pointFps", media_point_fps);
  export_fn(env, exports, "pointKnn", media_point_knn);
#ifdef IBLLM_WITH_LIBAV
  export_fn(env, exports, "probeVideoPackets", media_probe_video_packets);
  export_fn(env, exports, "decodeVideoFrames", media_decode_video_frames);
  export_fn(env, exports, "libavVersions", media_libav_versions);
#endif
  napi_value abi;
  napi_create_int32(env, 3, &abi);
  napi_set_named_property(env, exports, "abiVersion", abi);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
