#include "av-util.h"

#include <stdio.h>

int ibllm_open_media_file(const char *path, AVFormatContext **out) {
  char url[AV_PATH_CAP + 8];
  snprintf(url, sizeof url, "file:%s", path);
  AVDictionary *opts = NULL;
  av_dict_set(&opts, "protocol_whitelist", "file", 0);
  *out = NULL;
  const int ret = avformat_open_input(out, url, NULL, &opts);
  av_dict_free(&opts);
  return ret < 0 ? ret : 0;
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
