#include "av-util.h"

#include <stdio.h>
#include <string.h>

int ibllm_arg_media_input(napi_env env, napi_value v, const char *name, struct ibllm_media_input *in) {
  napi_valuetype t;
  bool typed = false;
  in->data = NULL;
  in->size = 0;
  in->path[0] = '\0';
  if (napi_typeof(env, v, &t) == napi_ok && t == napi_string)
    return arg_string(env, v, name, in->path, sizeof in->path);
  if (napi_is_typedarray(env, v, &typed) != napi_ok || !typed) {
    char message[160];
    snprintf(message, sizeof message, "%s must be a path string or a Uint8Array", name);
    napi_throw_type_error(env, NULL, message);
    return -1;
  }
  uint8_t *data;
  if (arg_u8(env, v, name, &data, &in->size) != 0) return -1;
  in->data = data;
  return 0;
}

/* The read position in the caller's bytes; positions past the end read as end of file, as in a file. */
struct memory_reader {
  const uint8_t *data;
  size_t size;
  int64_t pos;
};

static int memory_read(void *opaque, uint8_t *buf, int size) {
  struct memory_reader *m = opaque;
  if (size <= 0) return 0;
  if (m->pos >= (int64_t)m->size) return AVERROR_EOF;
  const size_t left = m->size - (size_t)m->pos;
  const size_t n = (size_t)size < left ? (size_t)size : left;
  memcpy(buf, m->data + m->pos, n);
  m->pos += (int64_t)n;
  return (int)n;
}

static int64_t memory_seek(void *opaque, int64_t offset, int whence) {
  struct memory_reader *m = opaque;
  if (whence & AVSEEK_SIZE) return (int64_t)m->size;
  int64_t base;
  switch (whence & ~AVSEEK_FORCE) {
  case SEEK_SET: base = 0; break;
  case SEEK_CUR: base = m->pos; break;
  case SEEK_END: base = (int64_t)m->size; break;
  default: return AVERROR(EINVAL);
  }
  if (offset > INT64_MAX - base || base + offset < 0) return AVERROR(EINVAL);
  m->pos = base + offset;
  return m->pos;
}

/* The file protocol's own I/O buffer size (IO_BUFFER_SIZE), so reads come in the same pieces. */
#define MEMORY_IO_BUFFER 32768

static void free_memory_io(AVIOContext **pb) {
  if (*pb == NULL) return;
  av_free((*pb)->opaque);
  av_freep(&(*pb)->buffer);
  avio_context_free(pb);
}

int ibllm_open_media(const struct ibllm_media_input *in, AVFormatContext **out) {
  *out = NULL;
  AVDictionary *opts = NULL;
  int ret;
  if (in->data == NULL) {
    char url[AV_PATH_CAP + 8];
    snprintf(url, sizeof url, "file:%s", in->path);
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    ret = avformat_open_input(out, url, NULL, &opts);
    av_dict_free(&opts);
    return ret < 0 ? ret : 0;
  }
  struct memory_reader *reader = av_mallocz(sizeof *reader);
  uint8_t *buffer = av_malloc(MEMORY_IO_BUFFER);
  AVIOContext *pb = NULL;
  AVFormatContext *fmt = avformat_alloc_context();
  if (reader != NULL && buffer != NULL)
    pb = avio_alloc_context(buffer, MEMORY_IO_BUFFER, 0, reader, memory_read, NULL, memory_seek);
  if (pb == NULL || fmt == NULL) {
    if (pb != NULL) free_memory_io(&pb);
    else {
      av_free(reader);
      av_free(buffer);
    }
    avformat_free_context(fmt);
    return AVERROR(ENOMEM);
  }
  reader->data = in->data;
  reader->size = in->size;
  fmt->pb = pb; /* avformat_open_input marks it AVFMT_FLAG_CUSTOM_IO and never frees it */
  /* A name that matches no protocol: nested inputs (playlists, references) open nothing. */
  av_dict_set(&opts, "protocol_whitelist", "ibllm-none", 0);
  ret = avformat_open_input(&fmt, NULL, NULL, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    free_memory_io(&pb); /* a failed open freed the format context, not the custom I/O */
    return ret;
  }
  *out = fmt;
  return 0;
}

void ibllm_close_media(AVFormatContext **fmt) {
  if (*fmt == NULL) return;
  AVIOContext *custom = ((*fmt)->flags & AVFMT_FLAG_CUSTOM_IO) ? (*fmt)->pb : NULL;
  avformat_close_input(fmt);
  free_memory_io(&custom);
}

void ibllm_av_error_text(char *out, size_t cap, const char *what, int averr) {
  if (averr != 0) {
    char text[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(averr, text, sizeof text);
    snprintf(out, cap, "%s: %s", what, text);
  } else {
    snprintf(out, cap, "%s", what);
  }
}
