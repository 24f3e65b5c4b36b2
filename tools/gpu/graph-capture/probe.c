// The decoder's step graph (model.step.onnx) under onnxruntime's WebGPU graph capture, which
// onnxruntime-node 1.30 cannot switch on (its WebGPU options refuse `enableGraphCapture`): this
// program loads libonnxruntime itself through the C API, creates the step session with the
// provider option enableGraphCapture=0 or 1, binds every input and output to device tensors through
// an IO binding (the slot cache bound as both past_* and present_*, written in place), and decodes
// `steps` tokens for `batch` rows: each step copies the token ids and cache lengths in, runs, and
// copies next_token out. The ids are fixed per position (not fed back), so a wrong step shows as
// itself. It prints one line per step and, last, a JSON object: the tokens of row 0 and the mean
// milliseconds per step after three warm-up steps. Run it twice, capture 0 and 1: the tokens must
// be the same, the time is what capture saves.
//
//   graph-capture-probe LIBONNXRUNTIME MODEL LAYERS HEADS HEAD_DIM CAPACITY DIM CAPTURE STEPS BATCH
//
// MODEL is a step graph built with a float16 KV cache (as the device check builds it) whose slot
// buffers hold CAPACITY positions; its dims must match the arguments.
//
// GRAPH_CAPTURE_PROBE_LOG=info turns on onnxruntime's info log (on stderr), which says "Replaying
// the captured WebGpuExecutionProvider graph" for each replayed run.
//
// total_sequence_length (an input onnxruntime keeps in host memory) is bound once as a host tensor
// over `total`, which each step updates in place; it must hold a valid length when bound.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ort-api.h"

static void *const *api;
static const char *(*error_message)(const Status *);

#define CALL(index, signature, ...) (((Status * (*) signature) api[index])(__VA_ARGS__))

static void check(Status *s, const char *what) {
  if (s != NULL) {
    fprintf(stderr, "graph-capture-probe: %s: %s\n", what, error_message(s));
    exit(1);
  }
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void *device_tensor(void *alloc, int type, const int64_t *shape, size_t rank) {
  void *value;
  check(CALL(API_CREATE_TENSOR, (void *, const int64_t *, size_t, int, void **), alloc, shape, rank, type, &value),
        "device tensor");
  return value;
}

static void *host_tensor(void *info, void *data, size_t bytes, int type, const int64_t *shape, size_t rank) {
  void *value;
  check(CALL(API_CREATE_TENSOR_WITH_DATA, (void *, void *, size_t, const int64_t *, size_t, int, void **), info, data,
             bytes, shape, rank, type, &value),
        "host tensor");
  return value;
}

static void copy(void *env, void *from, void *to) {
  void *src[] = {from};
  void *dst[] = {to};
  check(CALL(API_COPY_TENSORS, (void *, void *const *, void *const *, void *, size_t), env, src, dst, NULL, 1), "copy");
}

static void bind(void *binding, int output, const char *name, void *value) {
  check(CALL(output ? API_BIND_OUTPUT : API_BIND_INPUT, (void *, const char *, void *), binding, name, value), name);
}

int main(int argc, char **argv) {
  if (argc != 11) {
    fprintf(stderr, "usage: %s LIBONNXRUNTIME MODEL LAYERS HEADS HEAD_DIM CAPACITY DIM CAPTURE STEPS BATCH\n", argv[0]);
    return 2;
  }
  const char *lib = argv[1], *model = argv[2];
  const int layers = atoi(argv[3]), heads = atoi(argv[4]), head_dim = atoi(argv[5]);
  const int capacity = atoi(argv[6]), dim = atoi(argv[7]), capture = atoi(argv[8]);
  const int steps = atoi(argv[9]), batch = atoi(argv[10]);
  if (layers < 1 || heads < 1 || head_dim < 1 || dim < 1 || steps < 4 || steps >= capacity || batch < 1 ||
      batch > 1024) {
    fprintf(stderr, "graph-capture-probe: bad arguments (steps must be in [4, capacity), batch in [1, 1024])\n");
    return 2;
  }
  void *handle = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
  if (handle == NULL) {
    fprintf(stderr, "graph-capture-probe: %s\n", dlerror());
    return 1;
  }
  const ApiBase *(*get_base)(void) = (const ApiBase *(*)(void))dlsym(handle, "OrtGetApiBase");
  if (get_base == NULL) {
    fprintf(stderr, "graph-capture-probe: %s has no OrtGetApiBase\n", lib);
    return 1;
  }
  const ApiBase *base = get_base();
  api = (void *const *)base->get_api(ORT_ABI_VERSION);
  if (api == NULL) {
    fprintf(stderr, "graph-capture-probe: onnxruntime %s has no C API version %d\n", base->get_version_string(),
            ORT_ABI_VERSION);
    return 1;
  }
  error_message = (const char *(*)(const Status *))api[API_GET_ERROR_MESSAGE];

  void *env, *options, *session, *gpu_info, *cpu_info, *alloc, *binding, *run_options;
  // GRAPH_CAPTURE_PROBE_LOG=info: onnxruntime's info log, which names each replay of a captured graph
  const char *log = getenv("GRAPH_CAPTURE_PROBE_LOG");
  const int level = log != NULL && strcmp(log, "info") == 0 ? LOG_INFO : LOG_WARNING;
  check(CALL(API_CREATE_ENV, (int, const char *, void **), level, "graph-capture-probe", &env), "env");
  check(CALL(API_CREATE_SESSION_OPTIONS, (void **), &options), "session options");
  check(CALL(API_SET_GRAPH_OPTIMIZATION_LEVEL, (void *, int), options, OPT_ALL), "optimization level");
  const char *keys[] = {"enableGraphCapture"};
  const char *values[] = {capture ? "1" : "0"};
  check(CALL(API_APPEND_EXECUTION_PROVIDER, (void *, const char *, const char *const *, const char *const *, size_t),
             options, "WebGPU", keys, values, 1),
        "WebGPU provider");
  double t0 = now_ms();
  check(CALL(API_CREATE_SESSION, (void *, const char *, void *, void **), env, model, options, &session), "session");
  const double load_ms = now_ms() - t0;
  check(CALL(API_CREATE_MEMORY_INFO, (const char *, int, int, int, void **), "WebGPU_Buffer", ALLOC_DEVICE, 0,
             MEM_DEFAULT, &gpu_info),
        "device memory info");
  check(CALL(API_CREATE_CPU_MEMORY_INFO, (int, int, void **), ALLOC_DEVICE, MEM_DEFAULT, &cpu_info), "host memory info");
  check(CALL(API_CREATE_ALLOCATOR, (void *, void *, void **), session, gpu_info, &alloc), "device allocator");
  check(CALL(API_CREATE_IO_BINDING, (void *, void **), session, &binding), "IO binding");
  check(CALL(API_CREATE_RUN_OPTIONS, (void **), &run_options), "run options");

  const int64_t rows[] = {batch}, rows1[] = {batch, 1}, offsets_shape[] = {batch, layers, dim};
  const int64_t cache_shape[] = {batch, heads, capacity, head_dim};
  int64_t *ids = calloc((size_t)batch, 8), *gather = calloc((size_t)batch, 8), *next = calloc((size_t)batch, 8);
  int32_t *lengths = calloc((size_t)batch, 4), total[1] = {1};
  float *offsets = calloc((size_t)batch * layers * dim, sizeof(float));
  for (int b = 0; b < batch; b++) gather[b] = b;
  void *d_ids = device_tensor(alloc, ELEM_INT64, rows1, 2), *h_ids = host_tensor(cpu_info, ids, 8 * batch, ELEM_INT64, rows1, 2);
  void *d_len = device_tensor(alloc, ELEM_INT32, rows, 1), *h_len = host_tensor(cpu_info, lengths, 4 * batch, ELEM_INT32, rows, 1);
  void *d_next = device_tensor(alloc, ELEM_INT64, rows, 1), *h_next = host_tensor(cpu_info, next, 8 * batch, ELEM_INT64, rows, 1);
  void *d_gather = device_tensor(alloc, ELEM_INT64, rows, 1);
  void *d_offsets = device_tensor(alloc, ELEM_FLOAT, offsets_shape, 3);
  copy(env, host_tensor(cpu_info, gather, 8 * batch, ELEM_INT64, rows, 1), d_gather);
  copy(env, host_tensor(cpu_info, offsets, sizeof(float) * batch * layers * dim, ELEM_FLOAT, offsets_shape, 3), d_offsets);
  bind(binding, 0, "input_ids", d_ids);
  bind(binding, 0, "seqlens_k", d_len);
  bind(binding, 0, "total_sequence_length", host_tensor(cpu_info, total, 4, ELEM_INT32, NULL, 0));
  bind(binding, 0, "gather_rows", d_gather);
  bind(binding, 0, "layer_offsets", d_offsets);
  bind(binding, 1, "next_token", d_next);
  for (int l = 0; l < layers; l++) {
    for (int v = 0; v < 2; v++) {
      char in[64], out[64];
      snprintf(in, sizeof in, "past_%s_%d", v ? "value" : "key", l);
      snprintf(out, sizeof out, "present_%s_%d", v ? "value" : "key", l);
      void *cache = device_tensor(alloc, ELEM_FLOAT16, cache_shape, 4);
      bind(binding, 0, in, cache);
      bind(binding, 1, out, cache);
    }
  }

  long long *tokens = calloc((size_t)steps, sizeof(long long));
  double timed = 0;
  for (int s = 0; s < steps; s++) {
    for (int b = 0; b < batch; b++) {
      ids[b] = 5 + 7 * s + b;
      lengths[b] = s;
    }
    total[0] = s + 1;
    t0 = now_ms();
    copy(env, h_ids, d_ids);
    copy(env, h_len, d_len);
    check(CALL(API_RUN_WITH_BINDING, (void *, void *, void *), session, run_options, binding), "run");
    copy(env, d_next, h_next);
    const double ms = now_ms() - t0;
    if (s >= 3) timed += ms;
    tokens[s] = next[0];
    printf("step %d: length %d, next_token %lld, %.3f ms\n", s, s, tokens[s], ms);
  }
  printf("{\"onnxruntime\":\"%s\",\"capture\":%d,\"batch\":%d,\"layers\":%d,\"steps\":%d,\"load_ms\":%.1f,"
         "\"step_ms\":%.4f,\"tokens\":[",
         base->get_version_string(), capture, batch, layers, steps, load_ms, timed / (steps - 3));
  for (int s = 0; s < steps; s++) printf("%s%lld", s ? "," : "", tokens[s]);
  printf("]}\n");
  return 0;
}
