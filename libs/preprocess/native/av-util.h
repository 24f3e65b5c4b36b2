/* What the ibllm_media_av module's video and audio entry points share (av-util.c). */
#ifndef IBLLM_AV_UTIL_H
#define IBLLM_AV_UTIL_H

#include <libavformat/avformat.h>
#include <stddef.h>
#include <stdint.h>

#include "napi-util.h"

/* The longest path accepted (the wrappers pass files of their own temporary directories). */
#define AV_PATH_CAP 4096

/*
 * What a probe or decode reads: a file (`path`, when `data` is NULL) or the caller's bytes in
 * memory, read in place during the (synchronous) call.
 */
struct ibllm_media_input {
  char path[AV_PATH_CAP];
  const uint8_t *data;
  size_t size;
};

/* Argument `name`: a path string or a Uint8Array of the file's bytes. 0, or -1 with a pending TypeError. */
int ibllm_arg_media_input(napi_env env, napi_value v, const char *name, struct ibllm_media_input *in);

/*
 * Opens the input for demuxing. A file is opened as `file:<path>` with only the file protocol
 * allowed; bytes are read through a custom I/O context with no protocol allowed at all. Either
 * way a crafted file cannot make the demuxer open URLs or other files. 0, or the AVERROR of
 * avformat_open_input (or ENOMEM).
 */
int ibllm_open_media(const struct ibllm_media_input *in, AVFormatContext **out);

/* Closes what ibllm_open_media opened (with its I/O context, for bytes); `*fmt` may be NULL. */
void ibllm_close_media(AVFormatContext **fmt);

/* "what: FFmpeg's words for averr" (just `what` when averr is 0) into out[cap]. */
void ibllm_av_error_text(char *out, size_t cap, const char *what, int averr);

#endif
