/*
 * ibllm_media_av: video probed and decoded in process by FFmpeg's libraries (video.c), a module of
 * its own beside ibllm_media so that only the images that decode video need libav* installed.
 * Built by build.mjs when FFmpeg's development headers are there; without it the ffmpeg command
 * lines decode (same libraries, same bytes).
 */
#include <libavutil/log.h>

#include "media.h"

static napi_value init(napi_env env, napi_value exports) {
  /* Errors come back as coded JS errors; FFmpeg's own log would only clutter the service's stderr. */
  av_log_set_level(AV_LOG_QUIET);
  static const struct export_entry entries[] = {
      {"probeVideoPackets", media_probe_video_packets},
      {"decodeVideoFrames", media_decode_video_frames},
      {"libavVersions", media_libav_versions},
  };
  return export_all(env, exports, entries, sizeof entries / sizeof entries[0], MEDIA_ABI_VERSION);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
