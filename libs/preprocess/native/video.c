/*
 * Video through FFmpeg's libraries in process (issue #15): the same demuxer, decoder and swscale
 * conversion the ffmpeg/ffprobe command lines run (video.preprocess.ts), without starting two
 * processes per video. Both entry points run synchronously on the calling thread, as audio.c's do:
 * a PreprocessPool worker, one task at a time at the worker's lower priority (they ran on the
 * libuv pool before: two hand-offs per video to threads at the event loop's priority):
 *
 *   probeVideoPackets(input, maxPixels, maxPackets, timeoutSeconds)
 *     → ffprobe's view of the first video stream (format_name, codec, pix_fmt, size, time base,
 *       start, duration, nb_frames) and every packet's pts and flags, in demuxing order.
 *   decodeVideoFrames(input, maxPixels, frameIndices, framePts | null, findStreamInfo, width,
 *                     height, fullRange, timeoutSeconds)
 *     → the chosen decoded frames (numbered in decoder output order, each with that pts when
 *       framePts is given) as RGB24, back to back; null when one is not there as asked.
 *
 * `input` is a file's path or its bytes (a Uint8Array, read in place through a custom I/O
 * context: no temporary file per video).
 *
 * Errors throw Error{code}: EMEDIA (cannot be read), ENOVIDEO (no video stream),
 * ETIMEOUT, EMEMORY.
 */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "av-util.h"
#include "media.h"
#include "napi-util.h"

static double clock_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct job_error {
  const char *code; /* NULL: no error */
  char message[512];
};

static void set_error(struct job_error *e, const char *code, const char *what, int averr) {
  e->code = code;
  ibllm_av_error_text(e->message, sizeof e->message, what, averr);
}

/* Opens the input (ibllm_open_media: no protocol but a named file's); the first video stream's index or -1. */
static int open_input(const struct ibllm_media_input *in, int64_t max_pixels, int find_info,
                      AVFormatContext **out, struct job_error *err) {
  AVFormatContext *fmt = NULL;
  int ret = ibllm_open_media(in, &fmt);
  if (ret < 0) {
    set_error(err, "EMEDIA", "cannot open the video", ret);
    return -1;
  }
  *out = fmt;
  if (find_info) {
    /* As ffprobe and ffmpeg probe: the decoder options (the frame-size cap) apply to the trial decode. */
    AVDictionary **per = av_calloc(fmt->nb_streams, sizeof *per);
    if (per == NULL && fmt->nb_streams > 0) {
      set_error(err, "EMEMORY", "out of memory", 0);
      return -1;
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++) av_dict_set_int(&per[i], "max_pixels", max_pixels, 0);
    ret = avformat_find_stream_info(fmt, per);
    for (unsigned i = 0; i < fmt->nb_streams; i++) av_dict_free(&per[i]);
    av_free(per);
    if (ret < 0) {
      set_error(err, "EMEDIA", "cannot read the stream information", ret);
      return -1;
    }
  }
  for (unsigned i = 0; i < fmt->nb_streams; i++) {
    if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) return (int)i;
  }
  set_error(err, "ENOVIDEO", "the file has no video stream", 0);
  return -1;
}

/* ---- probe --------------------------------------------------------------------------------- */

struct probe_job {
  struct ibllm_media_input input; /* a file or the caller's bytes, read during the call */
  int64_t max_pixels, max_packets;
  double timeout;
  struct job_error err;
  char container[128], codec[64], pix_fmt[64];
  int64_t width, height, tb_num, tb_den, start_pts, duration_pts, nb_frames;
  int64_t *pts;
  uint8_t *flags; /* bit 0 key, 1 discard, 2 corrupt, 7 pts missing */
  size_t count, cap;
  int truncated;
};

static void probe_run(struct probe_job *job) {
  const double deadline = clock_seconds() + job->timeout;
  AVFormatContext *fmt = NULL;
  const int vi = open_input(&job->input, job->max_pixels, 1, &fmt, &job->err);
  if (vi < 0) {
    ibllm_close_media(&fmt);
    return;
  }
  const AVStream *st = fmt->streams[vi];
  const AVCodecParameters *par = st->codecpar;
  snprintf(job->container, sizeof job->container, "%s", fmt->iformat->name);
  const AVCodecDescriptor *desc = avcodec_descriptor_get(par->codec_id);
  snprintf(job->codec, sizeof job->codec, "%s", desc != NULL ? desc->name : "unknown");
  const char *pf = av_get_pix_fmt_name((enum AVPixelFormat)par->format);
  snprintf(job->pix_fmt, sizeof job->pix_fmt, "%s", pf != NULL ? pf : "unknown");
  job->width = par->width;
  job->height = par->height;
  job->tb_num = st->time_base.num;
  job->tb_den = st->time_base.den;
  job->start_pts = st->start_time;
  job->duration_pts = st->duration;
  job->nb_frames = st->nb_frames;

  AVPacket *pkt = av_packet_alloc();
  if (pkt == NULL) {
    set_error(&job->err, "EMEMORY", "out of memory", 0);
    ibllm_close_media(&fmt);
    return;
  }
  /* Read errors end the listing, as they end ffprobe's. */
  while (av_read_frame(fmt, pkt) >= 0) {
    if (pkt->stream_index == vi) {
      if (job->count >= (size_t)job->max_packets) {
        job->truncated = 1;
        av_packet_unref(pkt);
        break;
      }
      if (job->count == job->cap) {
        const size_t cap = job->cap == 0 ? 1024 : job->cap * 2;
        int64_t *pts = realloc(job->pts, cap * sizeof *pts);
        if (pts != NULL) job->pts = pts;
        uint8_t *flags = realloc(job->flags, cap);
        if (flags != NULL) job->flags = flags;
        if (pts == NULL || flags == NULL) {
          set_error(&job->err, "EMEMORY", "out of memory", 0);
          av_packet_unref(pkt);
          break;
        }
        job->cap = cap;
      }
      uint8_t f = 0;
      if (pkt->flags & AV_PKT_FLAG_KEY) f |= 1;
      if (pkt->flags & AV_PKT_FLAG_DISCARD) f |= 2;
      if (pkt->flags & AV_PKT_FLAG_CORRUPT) f |= 4;
      if (pkt->pts == AV_NOPTS_VALUE) f |= 0x80;
      job->pts[job->count] = pkt->pts == AV_NOPTS_VALUE ? 0 : pkt->pts;
      job->flags[job->count] = f;
      job->count++;
    }
    av_packet_unref(pkt);
    if ((job->count & 255) == 0 && clock_seconds() > deadline) {
      set_error(&job->err, "ETIMEOUT", "reading the packets took longer than the limit", 0);
      break;
    }
  }
  av_packet_free(&pkt);
  ibllm_close_media(&fmt);
}

static napi_value optional_int64(napi_env env, int64_t v, int absent) {
  if (absent) return make_null(env);
  napi_value out;
  napi_create_bigint_int64(env, v, &out);
  return out;
}

/* The probe's answer, or NULL with the coded error thrown; frees the job. */
static napi_value probe_result(napi_env env, struct probe_job *job) {
  napi_value r = NULL;
  if (job->err.code != NULL) {
    throw_coded(env, job->err.code, job->err.message);
  } else {
    napi_value pts_ab, flags_ab, pts_arr, flags_arr, truncated;
    void *pts_mem, *flags_mem;
    napi_create_object(env, &r);
    set_named(env, r, "container", make_string(env, job->container));
    set_named(env, r, "codec", make_string(env, job->codec));
    set_named(env, r, "pixelFormat", make_string(env, job->pix_fmt));
    set_named(env, r, "width", make_int(env, job->width));
    set_named(env, r, "height", make_int(env, job->height));
    set_named(env, r, "timeBaseNum", make_int(env, job->tb_num));
    set_named(env, r, "timeBaseDen", make_int(env, job->tb_den));
    set_named(env, r, "startPts", optional_int64(env, job->start_pts, job->start_pts == AV_NOPTS_VALUE));
    set_named(env, r, "durationPts",
              optional_int64(env, job->duration_pts, job->duration_pts == AV_NOPTS_VALUE));
    set_named(env, r, "frames", job->nb_frames > 0 ? make_double(env, (double)job->nb_frames) : make_null(env));
    napi_create_arraybuffer(env, job->count * 8, &pts_mem, &pts_ab);
    napi_create_arraybuffer(env, job->count, &flags_mem, &flags_ab);
    if (job->count > 0) {
      memcpy(pts_mem, job->pts, job->count * 8);
      memcpy(flags_mem, job->flags, job->count);
    }
    napi_create_typedarray(env, napi_bigint64_array, job->count, pts_ab, 0, &pts_arr);
    napi_create_typedarray(env, napi_uint8_array, job->count, flags_ab, 0, &flags_arr);
    set_named(env, r, "pts", pts_arr);
    set_named(env, r, "flags", flags_arr);
    napi_get_boolean(env, job->truncated != 0, &truncated);
    set_named(env, r, "truncated", truncated);
  }
  free(job->pts);
  free(job->flags);
  free(job);
  return r;
}

napi_value media_probe_video_packets(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct probe_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    throw_coded(env, "EMEMORY", "out of memory");
    return NULL;
  }
  if (argc < 4 || ibllm_arg_media_input(env, argv[0], "input", &job->input) != 0 ||
      arg_int(env, argv[1], "maxPixels", 1, INT32_MAX, &job->max_pixels) != 0 ||
      arg_int(env, argv[2], "maxPackets", 1, 1 << 30, &job->max_packets) != 0 ||
      arg_double(env, argv[3], "timeoutSeconds", &job->timeout) != 0) {
    free(job);
    return NULL;
  }
  probe_run(job);
  return probe_result(env, job);
}

/* ---- decode -------------------------------------------------------------------------------- */

struct decode_job {
  struct ibllm_media_input input; /* a file or the caller's bytes, read during the call */
  int64_t max_pixels, width, height;
  int find_info, full_range, has_pts;
  double timeout;
  const int32_t *indices; /* the caller's arrays, read during the call */
  const int64_t *pts;
  size_t count;
  struct job_error err;
  uint8_t *out; /* count × width × height × 3 */
  int complete;
};

/*
 * Converts one frame to RGB24 as PyAV's to_rgb does: swscale, SWS_BILINEAR, BT.601, the range
 * given. swscale writes into `rgb`, an aligned frame of its own (its SIMD paths may write past a
 * row's end, as into the command line's filter frames), and the rows are copied out packed.
 */
static int convert_frame(struct SwsContext **sws, int *sws_format, AVFrame **rgb, const AVFrame *frame,
                         int full_range, uint8_t *dst) {
  if (*sws == NULL || *sws_format != frame->format) {
    sws_freeContext(*sws);
    *sws = sws_getContext(frame->width, frame->height, (enum AVPixelFormat)frame->format, frame->width,
                          frame->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL, NULL);
    if (*sws == NULL) return -1;
    *sws_format = frame->format;
    const int *bt601 = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(*sws, bt601, full_range, bt601, 0, 0, 1 << 16, 1 << 16);
  }
  if (*rgb == NULL) {
    *rgb = av_frame_alloc();
    if (*rgb == NULL) return -1;
    (*rgb)->format = AV_PIX_FMT_RGB24;
    (*rgb)->width = frame->width;
    (*rgb)->height = frame->height;
    if (av_frame_get_buffer(*rgb, 0) < 0) return -1;
  }
  if (sws_scale(*sws, (const uint8_t *const *)frame->data, frame->linesize, 0, frame->height, (*rgb)->data,
                (*rgb)->linesize) != frame->height)
    return -1;
  const size_t row = (size_t)frame->width * 3;
  for (int y = 0; y < frame->height; y++) memcpy(dst + (size_t)y * row, (*rgb)->data[0] + (size_t)y * (*rgb)->linesize[0], row);
  return 0;
}

static void decode_run(struct decode_job *job) {
  const double deadline = clock_seconds() + job->timeout;
  const size_t frame_bytes = (size_t)job->width * (size_t)job->height * 3;
  AVFormatContext *fmt = NULL;
  AVCodecContext *ctx = NULL;
  AVPacket *pkt = NULL;
  AVFrame *frame = NULL;
  struct SwsContext *sws = NULL;
  AVFrame *rgb = NULL; /* frames are checked to be width × height, so one buffer serves them all */
  int sws_format = -1;
  int64_t n = 0;
  size_t next = 0;
  int ret;

  const int vi = open_input(&job->input, job->max_pixels, job->find_info, &fmt, &job->err);
  if (vi < 0) goto done;
  const AVStream *st = fmt->streams[vi];
  const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (codec == NULL) {
    set_error(&job->err, "EMEDIA", "no decoder for the video codec", 0);
    goto done;
  }
  ctx = avcodec_alloc_context3(codec);
  pkt = av_packet_alloc();
  frame = av_frame_alloc();
  job->out = malloc(frame_bytes * job->count);
  if (ctx == NULL || pkt == NULL || frame == NULL || job->out == NULL) {
    set_error(&job->err, "EMEMORY", "out of memory for the decoder", 0);
    goto done;
  }
  if ((ret = avcodec_parameters_to_context(ctx, st->codecpar)) < 0) {
    set_error(&job->err, "EMEDIA", "cannot set up the decoder", ret);
    goto done;
  }
  ctx->pkt_timebase = st->time_base;
  ctx->thread_count = 1; /* one core per video: the worker pool runs videos side by side */
  av_opt_set_int(ctx, "max_pixels", job->max_pixels, 0);
  if ((ret = avcodec_open2(ctx, codec, NULL)) < 0) {
    set_error(&job->err, "EMEDIA", "cannot open the decoder", ret);
    goto done;
  }
  /* Other streams are not even read into packets' payload handling. */
  for (unsigned i = 0; i < fmt->nb_streams; i++)
    if ((int)i != vi) fmt->streams[i]->discard = AVDISCARD_ALL;

  int eof = 0;
  while (next < job->count) {
    if (!eof) {
      ret = av_read_frame(fmt, pkt);
      if (ret < 0) {
        eof = 1; /* read errors end the stream, as in ffmpeg */
        avcodec_send_packet(ctx, NULL);
      } else {
        if (pkt->stream_index == vi) avcodec_send_packet(ctx, pkt); /* decode errors are skipped */
        av_packet_unref(pkt);
      }
      if (clock_seconds() > deadline) {
        set_error(&job->err, "ETIMEOUT", "decoding took longer than the limit", 0);
        goto done;
      }
    }
    for (;;) {
      ret = avcodec_receive_frame(ctx, frame);
      if (ret == AVERROR(EAGAIN)) {
        if (eof) goto done; /* draining never asks for more input; guard against a loop */
        break;
      }
      if (ret < 0) goto done; /* AVERROR_EOF: the chosen frames are not all there (complete = 0) */
      const int64_t index = n++;
      if (next < job->count && index == job->indices[next]) {
        const int64_t ts = frame->best_effort_timestamp;
        if ((job->has_pts && ts != job->pts[next]) || frame->width != job->width ||
            frame->height != job->height ||
            convert_frame(&sws, &sws_format, &rgb, frame, job->full_range, job->out + next * frame_bytes) != 0) {
          av_frame_unref(frame);
          goto done; /* not the frame asked for: the caller decodes the other way */
        }
        next++;
      }
      av_frame_unref(frame);
      if (next == job->count) break;
    }
  }
  job->complete = 1;
done:
  sws_freeContext(sws);
  av_frame_free(&rgb);
  av_frame_free(&frame);
  av_packet_free(&pkt);
  avcodec_free_context(&ctx);
  ibllm_close_media(&fmt);
}

static void free_out(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* The decoded frames (null when not all were there as asked), or NULL with the coded error thrown; frees the job. */
static napi_value decode_result(napi_env env, struct decode_job *job) {
  napi_value buffer = NULL;
  if (job->err.code != NULL) {
    throw_coded(env, job->err.code, job->err.message);
    free(job->out);
  } else if (!job->complete) {
    buffer = make_null(env);
    free(job->out);
  } else {
    const size_t bytes = (size_t)job->width * (size_t)job->height * 3 * job->count;
    if (napi_create_external_buffer(env, bytes, job->out, free_out, NULL, &buffer) != napi_ok) {
      void *copy;
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
      }
      napi_create_buffer_copy(env, bytes, job->out, &copy, &buffer);
      free(job->out);
    }
  }
  free(job);
  return buffer;
}

napi_value media_decode_video_frames(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct decode_job *job = calloc(1, sizeof *job);
  if (job == NULL) {
    throw_coded(env, "EMEMORY", "out of memory");
    return NULL;
  }
  int32_t *indices;
  int64_t *pts = NULL;
  size_t count, pts_count = 0;
  napi_valuetype pts_type;
  if (argc < 9 || ibllm_arg_media_input(env, argv[0], "input", &job->input) != 0 ||
      arg_int(env, argv[1], "maxPixels", 1, INT32_MAX, &job->max_pixels) != 0 ||
      arg_i32_array(env, argv[2], "frameIndices", &indices, &count) != 0 ||
      napi_typeof(env, argv[3], &pts_type) != napi_ok ||
      (pts_type != napi_null && arg_i64_array(env, argv[3], "framePts", &pts, &pts_count) != 0) ||
      arg_bool(env, argv[4], "findStreamInfo", &job->find_info) != 0 ||
      arg_int(env, argv[5], "width", 1, 1 << 20, &job->width) != 0 ||
      arg_int(env, argv[6], "height", 1, 1 << 20, &job->height) != 0 ||
      arg_bool(env, argv[7], "fullRange", &job->full_range) != 0 ||
      arg_double(env, argv[8], "timeoutSeconds", &job->timeout) != 0) {
    free(job);
    return NULL;
  }
  int ok = count > 0 && (pts == NULL || pts_count == count) &&
           job->width * job->height <= job->max_pixels;
  for (size_t i = 0; ok && i < count; i++)
    if (indices[i] < 0 || (i > 0 && indices[i] <= indices[i - 1])) ok = 0;
  if (!ok) {
    free(job);
    napi_throw_range_error(env, NULL, "media native: frame indices must be ascending, with matching pts");
    return NULL;
  }
  job->count = count;
  job->indices = indices;
  job->has_pts = pts != NULL;
  job->pts = pts;
  decode_run(job);
  return decode_result(env, job);
}

napi_value media_libav_versions(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_object(env, &r);
  set_named(env, r, "avformat", make_string(env, AV_STRINGIFY(LIBAVFORMAT_VERSION)));
  set_named(env, r, "avcodec", make_string(env, AV_STRINGIFY(LIBAVCODEC_VERSION)));
  set_named(env, r, "swscale", make_string(env, AV_STRINGIFY(LIBSWSCALE_VERSION)));
  set_named(env, r, "runtime", make_string(env, av_version_info()));
  return r;
}
