/* What the ibllm_media_av module's video and audio entry points share (av-util.c). */
#ifndef IBLLM_AV_UTIL_H
#define IBLLM_AV_UTIL_H

#include <libavformat/avformat.h>
#include <stddef.h>

/* The longest path accepted (the wrappers pass files of their own temporary directories). */
#define AV_PATH_CAP 4096

/*
 * Opens `file:<path>` with only the file protocol allowed, so a crafted file cannot make the
 * demuxer open URLs or other protocols. 0, or the AVERROR of avformat_open_input.
 */
int ibllm_open_media_file(const char *path, AVFormatContext **out);

/* "what: FFmpeg's words for averr" (just `what` when averr is 0) into out[cap]. */
void ibllm_av_error_text(char *out, size_t cap, const char *what, int averr);

#endif
