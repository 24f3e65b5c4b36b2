/*
 * Compressed audio (MP3, FLAC, Ogg, M4A, …) decoded in process by FFmpeg's libraries (issue #15):
 * what `ffprobe -select_streams a:0 -show_entries stream=sample_rate,channels:format=duration` and
 * `ffmpeg -map 0:a:0 -f f32le -acodec pcm_f32le` report and write (ffmpeg-audio.ts), without
 * starting two processes per file. A process start forks the whole serving process: its page
 * tables are copied and every page it then writes faults until the child execs, which stalls the
 * event loop for tens of milliseconds per start on a large process.
 *
 * Both entry points run synchronously on the calling thread: a PreprocessPool worker, which does
 * one task at a time at a lower priority than the event loop (the pool's niced threads, not the
 * libuv pool's, so the decode never competes with the serving thread at its priority).
 *
 *   probeAudioFile(input, timeoutSeconds) → { sampleRate, channels, duration | null }
 *   decodeAudioFile(input, initialFrames, capFrames, timeoutSeconds) → Float32Array[] (one per
 *     channel, `frames` long), the samples converted to float exactly as libswresample converts
 *     them for pcm_f32le (integers scaled by 2^-(bits-1) in float, doubles rounded).
 *
 * Errors throw Error{code}: EMEDIA (cannot be read), ENOAUDIO (no audio stream), ETIMEOUT,
 * EMEMORY, EOVERFLOW (more than capFrames frames), ECHANGED (the format changes mid-stream).
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "av-util.h"
#include "media.h"
#include "napi-util.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void throw_av(napi_env env, const char *code, const char *what, int averr) {
  char message[512];
  ibllm_av_error_text(message, sizeof message, what, averr);
  throw_coded(env, code, message);
}

/*
 * Opens the input (ibllm_open_media: a named file with only the file protocol, or bytes with no
 * protocol at all) and reads the stream information
 * as ffprobe and ffmpeg do; the index of the first audio stream (`a:0`), or -1 with a pending exception.
 */
static int open_audio(napi_env env, const struct ibllm_media_input *in, AVFormatContext **out) {
  AVFormatContext *fmt = NULL;
  int ret = ibllm_open_media(in, &fmt);
  if (ret < 0) {
    throw_av(env, "EMEDIA", "cannot open the audio", ret);
    return -1;
  }
  *out = fmt;
  ret = avformat_find_stream_info(fmt, NULL);
  if (ret < 0) {
    throw_av(env, "EMEDIA", "cannot read the stream information", ret);
    return -1;
  }
  for (unsigned i = 0; i < fmt->nb_streams; i++) {
    if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) return (int)i;
  }
  throw_coded(env, "ENOAUDIO", "the file has no audio stream");
  return -1;
}

napi_value media_probe_audio_file(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct ibllm_media_input input; /* read during this call only */
  double timeout;
  if (argc < 2 || ibllm_arg_media_input(env, argv[0], "input", &input) != 0 ||
      arg_double(env, argv[1], "timeoutSeconds", &timeout) != 0)
    return NULL;
  /* Opening and probing read a bounded prefix of a file the caller caps in size. */
  (void)timeout;
  AVFormatContext *fmt = NULL;
  const int ai = open_audio(env, &input, &fmt);
  if (ai < 0) {
    ibllm_close_media(&fmt);
    return NULL;
  }
  const AVCodecParameters *par = fmt->streams[ai]->codecpar;
  napi_value result;
  napi_create_object(env, &result);
  set_named(env, result, "sampleRate", make_int(env, par->sample_rate));
  set_named(env, result, "channels", make_int(env, par->ch_layout.nb_channels));
  set_named(env, result, "duration",
            fmt->duration == AV_NOPTS_VALUE ? make_null(env)
                                            : make_double(env, (double)fmt->duration / AV_TIME_BASE));
  ibllm_close_media(&fmt);
  return result;
}

/* One growing float array per channel, never past `cap` frames. */
struct planes {
  float **data;
  int channels;
  int64_t frames, size, cap;
};

/* Room for `more` frames; 0, or -1 when that would pass the cap or memory is out (`*overflow` says which). */
static int reserve(struct planes *p, int64_t more, int *overflow) {
  const int64_t need = p->frames + more;
  if (need <= p->size) return 0;
  if (need > p->cap) {
    *overflow = 1;
    return -1;
  }
  int64_t grown = p->size + p->size / 2;
  if (grown < 1024) grown = 1024;
  if (grown < need) grown = need;
  if (grown > p->cap) grown = p->cap;
  for (int c = 0; c < p->channels; c++) {
    float *next = realloc(p->data[c], (size_t)grown * sizeof(float));
    if (next == NULL) return -1;
    p->data[c] = next;
  }
  p->size = grown;
  return 0;
}

/*
 * Appends a decoded frame, each sample as libswresample turns it into AV_SAMPLE_FMT_FLT: integers
 * times 1/2^(bits-1) in float (unsigned 8-bit centred on 0x80 first), doubles rounded to float.
 * 0, or -1 for a sample format it does not know.
 */
static int append_frame(struct planes *p, const AVFrame *frame) {
  const enum AVSampleFormat f = (enum AVSampleFormat)frame->format;
  const int planar = av_sample_fmt_is_planar(f);
  const int n = frame->nb_samples;
  const int ch = p->channels;
  for (int c = 0; c < ch; c++) {
    float *out = p->data[c] + p->frames;
    const uint8_t *base = planar ? frame->extended_data[c] : frame->extended_data[0];
    const int step = planar ? 1 : ch;
    const int first = planar ? 0 : c;
    switch (av_get_packed_sample_fmt(f)) {
      case AV_SAMPLE_FMT_U8:
        for (int i = 0; i < n; i++) out[i] = (float)(base[first + i * step] - 0x80) * (1.0f / (1 << 7));
        break;
      case AV_SAMPLE_FMT_S16: {
        const int16_t *s = (const int16_t *)base;
        for (int i = 0; i < n; i++) out[i] = (float)s[first + i * step] * (1.0f / (1 << 15));
        break;
      }
      case AV_SAMPLE_FMT_S32: {
        const int32_t *s = (const int32_t *)base;
        for (int i = 0; i < n; i++) out[i] = (float)s[first + i * step] * (1.0f / (1U << 31));
        break;
      }
      case AV_SAMPLE_FMT_S64: {
        const int64_t *s = (const int64_t *)base;
        for (int i = 0; i < n; i++) out[i] = (float)s[first + i * step] * (1.0f / (float)(UINT64_C(1) << 63));
        break;
      }
      case AV_SAMPLE_FMT_FLT: {
        const float *s = (const float *)base;
        for (int i = 0; i < n; i++) out[i] = s[first + i * step];
        break;
      }
      case AV_SAMPLE_FMT_DBL: {
        const double *s = (const double *)base;
        for (int i = 0; i < n; i++) out[i] = (float)s[first + i * step];
        break;
      }
      default:
        return -1;
    }
  }
  p->frames += n;
  return 0;
}

struct decode_state {
  AVCodecContext *codec;
  AVFrame *frame;
  struct planes planes;
  int sample_rate;
  const char *code; /* NULL: no error */
  char message[256];
};

static void fail(struct decode_state *s, const char *code, const char *message) {
  if (s->code != NULL) return;
  s->code = code;
  snprintf(s->message, sizeof s->message, "%s", message);
}

/* Takes every frame the decoder has ready; 0 to go on, -1 after an error (in `s`). */
static int drain(struct decode_state *s) {
  for (;;) {
    const int ret = avcodec_receive_frame(s->codec, s->frame);
    if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 0;
    /* A frame that does not decode is skipped, as the ffmpeg command line skips it. */
    if (ret < 0) return 0;
    if (s->frame->ch_layout.nb_channels != s->planes.channels || s->frame->sample_rate != s->sample_rate) {
      fail(s, "ECHANGED", "the channel count or sample rate changes within the stream");
      return -1;
    }
    int overflow = 0;
    if (reserve(&s->planes, s->frame->nb_samples, &overflow) != 0) {
      fail(s, overflow ? "EOVERFLOW" : "EMEMORY",
           overflow ? "the audio decodes to more samples than allowed" : "out of memory");
      return -1;
    }
    if (append_frame(&s->planes, s->frame) != 0) {
      fail(s, "EMEDIA", "the decoder returned a sample format that cannot be converted");
      return -1;
    }
    av_frame_unref(s->frame);
  }
}

static void release_samples(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

napi_value media_decode_audio_file(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct ibllm_media_input input; /* read during this call only */
  int64_t initial, cap;
  double timeout;
  if (argc < 4 || ibllm_arg_media_input(env, argv[0], "input", &input) != 0 ||
      arg_int(env, argv[1], "initialFrames", 0, INT64_C(1) << 40, &initial) != 0 ||
      arg_int(env, argv[2], "capFrames", 0, INT64_C(1) << 40, &cap) != 0 ||
      arg_double(env, argv[3], "timeoutSeconds", &timeout) != 0)
    return NULL;
  const double deadline = now_seconds() + timeout;

  AVFormatContext *fmt = NULL;
  const int ai = open_audio(env, &input, &fmt);
  if (ai < 0) {
    ibllm_close_media(&fmt);
    return NULL;
  }
  const AVStream *st = fmt->streams[ai];
  struct decode_state s = {0};
  s.sample_rate = st->codecpar->sample_rate;
  s.planes.channels = st->codecpar->ch_layout.nb_channels;
  s.planes.cap = cap;
  AVPacket *pkt = av_packet_alloc();
  s.frame = av_frame_alloc();
  s.planes.data = s.planes.channels > 0 ? calloc((size_t)s.planes.channels, sizeof(float *)) : NULL;
  const AVCodec *decoder = avcodec_find_decoder(st->codecpar->codec_id);
  if (decoder == NULL) {
    fail(&s, "EMEDIA", "no decoder for the audio codec");
  } else if (pkt == NULL || s.frame == NULL || s.planes.data == NULL ||
             (s.codec = avcodec_alloc_context3(decoder)) == NULL) {
    fail(&s, s.planes.channels > 0 ? "EMEMORY" : "EMEDIA",
         s.planes.channels > 0 ? "out of memory" : "the audio stream has no channels");
  } else if (avcodec_parameters_to_context(s.codec, st->codecpar) < 0) {
    fail(&s, "EMEDIA", "the audio stream parameters are invalid");
  } else {
    s.codec->pkt_timebase = st->time_base;
    s.codec->thread_count = 1;
    int ret = avcodec_open2(s.codec, decoder, NULL);
    if (ret < 0) fail(&s, "EMEDIA", "the audio decoder could not start");
    int overflow = 0;
    if (s.code == NULL && initial > 0 && reserve(&s.planes, initial < cap ? initial : cap, &overflow) != 0)
      fail(&s, "EMEMORY", "out of memory");
    int64_t packets = 0;
    while (s.code == NULL && av_read_frame(fmt, pkt) >= 0) {
      if (pkt->stream_index == ai) {
        /* A packet the decoder refuses is skipped (the command line logs it and goes on). */
        const int sent = avcodec_send_packet(s.codec, pkt);
        drain(&s);
        if (sent == AVERROR(EAGAIN) && s.code == NULL) {
          avcodec_send_packet(s.codec, pkt);
          drain(&s);
        }
      }
      av_packet_unref(pkt);
      if ((++packets & 63) == 0 && now_seconds() > deadline)
        fail(&s, "ETIMEOUT", "decoding the audio took longer than the limit");
    }
    if (s.code == NULL && avcodec_send_packet(s.codec, NULL) >= 0) drain(&s);
  }

  napi_value result = NULL;
  if (s.code != NULL) {
    throw_coded(env, s.code, s.message);
  } else {
    napi_create_array_with_length(env, (size_t)s.planes.channels, &result);
    const size_t bytes = (size_t)s.planes.frames * sizeof(float);
    for (int c = 0; c < s.planes.channels && result != NULL; c++) {
      /* Handed to JS as they are (trimmed to the frames decoded), not copied: a copy would double
       * the peak memory of a long file for a moment. */
      float *samples = realloc(s.planes.data[c], bytes > 0 ? bytes : sizeof(float));
      if (samples == NULL) samples = s.planes.data[c];
      napi_value buffer, array;
      if (samples == NULL || napi_create_external_arraybuffer(env, samples, bytes, release_samples, NULL,
                                                              &buffer) != napi_ok) {
        s.planes.data[c] = samples;
        throw_coded(env, "EMEMORY", "out of memory");
        result = NULL;
        break;
      }
      s.planes.data[c] = NULL; /* JS owns it now */
      napi_create_typedarray(env, napi_float32_array, (size_t)s.planes.frames, buffer, 0, &array);
      napi_set_element(env, result, (uint32_t)c, array);
    }
  }
  for (int c = 0; s.planes.data != NULL && c < s.planes.channels; c++) free(s.planes.data[c]);
  free(s.planes.data);
  avcodec_free_context(&s.codec);
  av_frame_free(&s.frame);
  av_packet_free(&pkt);
  ibllm_close_media(&fmt);
  return result;
}
