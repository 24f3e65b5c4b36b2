/*
 * ibllm_media_av: video (video.c) and compressed audio (audio.c) probed and decoded in process by
 * FFmpeg's libraries, a module of its own beside ibllm_media so that only the images that decode
 * video or audio need libav* installed. Built by build.mjs when FFmpeg's development headers are
 * there; without it the ffmpeg command lines decode (same libraries, same bytes).
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
      {"probeAudioFile", media_probe_audio_file},
      {"decodeAudioFile", media_decode_audio_file},
  };
  return export_all(env, exports, entries, sizeof entries / sizeof entries[0], MEDIA_ABI_VERSION);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
