/* Entry points of the ibllm_media addon (one per exported function; module.c registers them). */
#ifndef IBLLM_MEDIA_H
#define IBLLM_MEDIA_H

#include "napi-util.h"

/* Both modules' abiVersion: media-native.ts refuses a module built from other sources. */
#define MEDIA_ABI_VERSION 10

napi_value media_decode_jpeg_rgb(napi_env env, napi_callback_info info);
napi_value media_resize_bicubic_to_planes(napi_env env, napi_callback_info info);
napi_value media_resize_kernels(napi_env env, napi_callback_info info);
napi_value media_video_tensor(napi_env env, napi_callback_info info);
napi_value media_fbank_frames(napi_env env, napi_callback_info info);
napi_value media_resample_sinc(napi_env env, napi_callback_info info);
napi_value media_point_fps(napi_env env, napi_callback_info info);
napi_value media_point_knn(napi_env env, napi_callback_info info);
/* ibllm_media_av (module-av.c, video.c): */
napi_value media_probe_video_packets(napi_env env, napi_callback_info info);
napi_value media_decode_video_frames(napi_env env, napi_callback_info info);
napi_value media_libav_versions(napi_env env, napi_callback_info info);
/* ibllm_media_av, audio.c: */
napi_value media_probe_audio_file(napi_env env, napi_callback_info info);
napi_value media_decode_audio_file(napi_env env, napi_callback_info info);

#endif
