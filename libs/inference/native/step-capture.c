// ibllm_step_capture: the decoder's step graph (model.step.onnx) under onnxruntime's WebGPU graph
// capture, for a worker session whose slot KV cache is on the device. onnxruntime-node 1.30 cannot
// switch capture on (its WebGPU options refuse `enableGraphCapture`), so this module opens the step
// session itself through the C API of the libonnxruntime.so.1 the binding has already loaded (the
// same library, so the same WebGPU device), and binds it once, at a fixed shape (every slot):
//
//   - the slot buffers the worker allocated through the binding: a `gpu-buffer` tensor's
//     `gpuBuffer` is an N-API External holding the binding's OrtValue* (onnxruntime-node 1.30; the
//     version is checked), whose data pointer is the WebGPU buffer. Each layer's keys and values
//     are viewed whole, [slots, heads, capacity, head_dim], bound as past_* and as present_*
//     (onnxruntime's shared past/present buffer: written in place); the slots' visual offsets
//     likewise as layer_offsets;
//   - device tensors of its own for input_ids, seqlens_k, gather_rows (0 … slots − 1, written once),
//     next_token and logits, and a host int32 for total_sequence_length (which the fused attention
//     reads in host memory; it holds a valid length whenever it is bound).
//
// A step copies the ids and lengths in, runs (the first run records the step, every later one
// replays it), and copies next_token or the logits out. The module keeps no reference to the
// binding's tensors: the worker closes the capture before it frees or replaces a state buffer.
//
// JavaScript:
//   open(libPath, modelPath, spec, keys[], values[], offsets) → handle
//     spec: { slots, layers, heads, headDim, capacity, dim, vocab, kvType: 'float32' | 'float16' }
//   step(handle, ids: BigInt64Array(slots), lengths: Int32Array(slots), total, logits: boolean)
//     → BigInt64Array(slots) of next_token, or Float32Array(slots · vocab) of logits
//   close(handle)
#include <dlfcn.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ort-api.h"

#define CALL(index, signature, ...) (((Status * (*) signature) capture_api[index])(__VA_ARGS__))
#define RELEASE(index, value) \
  do { \
    if ((value) != NULL) ((void (*)(void *))capture_api[index])(value); \
  } while (0)

static void *const *capture_api;
static const char *(*error_message)(const Status *);

typedef struct {
  int slots, layers, heads, head_dim, capacity, dim, vocab, kv_type;
  void *env, *options, *session, *gpu_info, *cpu_info, *alloc, *binding, *run_options;
  void *d_ids, *d_lengths, *d_gather, *d_next, *d_logits, *d_offsets;
  void *h_ids, *h_lengths, *h_gather, *h_next, *h_logits, *h_total;
  int64_t *ids, *gather, *next;
  int32_t *lengths, total[1];
  float *logits;
  void **views;  // 2 · layers cache views
  int closed;
} Capture;

/** Throws a JS Error with `what: detail` and returns NULL (napi_throw_error copies the text). */
static napi_value fail(napi_env env, const char *what, const char *detail) {
  char text[8448];
  snprintf(text, sizeof text, "step capture: %s%s%s", what, detail ? ": " : "", detail ? detail : "");
  napi_throw_error(env, NULL, text);
  return NULL;
}

static int ok(napi_env env, Status *s, const char *what) {
  if (s == NULL) return 1;
  fail(env, what, error_message(s));
  return 0;
}

static int load_api(napi_env env, const char *lib) {
  if (capture_api != NULL) return 1;
  // the binding's copy, already loaded: the same onnxruntime and the same WebGPU device
  void *handle = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
  if (handle == NULL) handle = dlopen(lib, RTLD_NOW);
  if (handle == NULL) return fail(env, "cannot load onnxruntime", dlerror()), 0;
  const ApiBase *(*get_base)(void) = (const ApiBase *(*)(void))dlsym(handle, "OrtGetApiBase");
  if (get_base == NULL) return fail(env, "no OrtGetApiBase in", lib), 0;
  const ApiBase *base = get_base();
  const char *version = base->get_version_string();
  // The External layout and the API positions are those of onnxruntime 1.30.
  if (strncmp(version, "1.30.", 5) != 0) return fail(env, "needs onnxruntime 1.30, found", version), 0;
  capture_api = (void *const *)base->get_api(ORT_ABI_VERSION);
  if (capture_api == NULL) return fail(env, "no C API version 30 in onnxruntime", version), 0;
  error_message = (const char *(*)(const Status *))capture_api[API_GET_ERROR_MESSAGE];
  return 1;
}

static int get_int(napi_env env, napi_value object, const char *key, int *out) {
  napi_value v;
  int32_t n;
  if (napi_get_named_property(env, object, key, &v) != napi_ok || napi_get_value_int32(env, v, &n) != napi_ok ||
      n < 1) {
    fail(env, "spec needs a positive integer", key);
    return 0;
  }
  *out = n;
  return 1;
}

/** The device buffer behind a binding tensor's `gpuBuffer` External (its OrtValue's data pointer). */
static void *device_buffer(napi_env env, napi_value external) {
  napi_valuetype type;
  void *value = NULL, *data = NULL;
  if (napi_typeof(env, external, &type) != napi_ok || type != napi_external ||
      napi_get_value_external(env, external, &value) != napi_ok || value == NULL) {
    fail(env, "a state buffer is not a gpu-buffer tensor's gpuBuffer", NULL);
    return NULL;
  }
  if (!ok(env, CALL(API_GET_TENSOR_MUTABLE_DATA, (void *, void **), value, &data), "state buffer")) return NULL;
  return data;
}

static void *view(napi_env env, Capture *c, napi_value external, int type, const int64_t *shape, size_t rank,
                  size_t bytes) {
  void *data = device_buffer(env, external), *out = NULL;
  if (data == NULL) return NULL;
  if (!ok(env,
          CALL(API_CREATE_TENSOR_WITH_DATA, (void *, void *, size_t, const int64_t *, size_t, int, void **),
               c->gpu_info, data, bytes, shape, rank, type, &out),
          "state view"))
    return NULL;
  return out;
}

static void *device_tensor(napi_env env, Capture *c, int type, const int64_t *shape, size_t rank) {
  void *out = NULL;
  if (!ok(env,
          CALL(API_CREATE_TENSOR, (void *, const int64_t *, size_t, int, void **), c->alloc, shape, rank, type, &out),
          "device tensor"))
    return NULL;
  return out;
}

static void *host_tensor(napi_env env, Capture *c, void *data, size_t bytes, int type, const int64_t *shape,
                         size_t rank) {
  void *out = NULL;
  if (!ok(env,
          CALL(API_CREATE_TENSOR_WITH_DATA, (void *, void *, size_t, const int64_t *, size_t, int, void **),
               c->cpu_info, data, bytes, shape, rank, type, &out),
          "host tensor"))
    return NULL;
  return out;
}

static int copy(napi_env env, Capture *c, void *const *from, void *const *to, size_t n) {
  return ok(env,
            CALL(API_COPY_TENSORS, (void *, void *const *, void *const *, void *, size_t), c->env, from, to, NULL, n),
            "copy");
}

static int bind(napi_env env, Capture *c, int output, const char *name, void *value) {
  return ok(env, CALL(output ? API_BIND_OUTPUT : API_BIND_INPUT, (void *, const char *, void *), c->binding, name, value),
            name);
}

static void release(Capture *c) {
  if (c->closed) return;
  c->closed = 1;
  RELEASE(API_RELEASE_IO_BINDING, c->binding);
  void *values[] = {c->d_ids, c->d_lengths, c->d_gather, c->d_next, c->d_logits, c->d_offsets, c->h_ids,
                    c->h_lengths, c->h_gather, c->h_next, c->h_logits, c->h_total};
  for (size_t i = 0; i < sizeof values / sizeof *values; i++) RELEASE(API_RELEASE_VALUE, values[i]);
  if (c->views != NULL)
    for (int i = 0; i < 2 * c->layers; i++) RELEASE(API_RELEASE_VALUE, c->views[i]);
  RELEASE(API_RELEASE_ALLOCATOR, c->alloc);
  RELEASE(API_RELEASE_SESSION, c->session);
  RELEASE(API_RELEASE_SESSION_OPTIONS, c->options);
  RELEASE(API_RELEASE_RUN_OPTIONS, c->run_options);
  RELEASE(API_RELEASE_MEMORY_INFO, c->gpu_info);
  RELEASE(API_RELEASE_MEMORY_INFO, c->cpu_info);
  RELEASE(API_RELEASE_ENV, c->env);
  free(c->views);
  free(c->ids);
  free(c->gather);
  free(c->next);
  free(c->lengths);
  free(c->logits);
}

static void finalize(napi_env env, void *data, void *hint) {
  Capture *c = data;
  release(c);
  free(c);
}

static int open_session(napi_env env, Capture *c, const char *model) {
  const char *keys[] = {"enableGraphCapture"};
  const char *values[] = {"1"};
  return ok(env, CALL(API_CREATE_ENV, (int, const char *, void **), LOG_WARNING, "ibllm-step-capture", &c->env),
            "env") &&
         ok(env, CALL(API_CREATE_SESSION_OPTIONS, (void **), &c->options), "session options") &&
         ok(env, CALL(API_SET_GRAPH_OPTIMIZATION_LEVEL, (void *, int), c->options, OPT_ALL), "optimization level") &&
         ok(env,
            CALL(API_APPEND_EXECUTION_PROVIDER,
                 (void *, const char *, const char *const *, const char *const *, size_t), c->options, "WebGPU",
                 keys, values, 1),
            "WebGPU provider") &&
         ok(env, CALL(API_CREATE_SESSION, (void *, const char *, void *, void **), c->env, model, c->options, &c->session),
            "loading the step graph") &&
         ok(env,
            CALL(API_CREATE_MEMORY_INFO, (const char *, int, int, int, void **), "WebGPU_Buffer", ALLOC_DEVICE, 0,
                 MEM_DEFAULT, &c->gpu_info),
            "device memory info") &&
         ok(env, CALL(API_CREATE_CPU_MEMORY_INFO, (int, int, void **), ALLOC_DEVICE, MEM_DEFAULT, &c->cpu_info),
            "host memory info") &&
         ok(env, CALL(API_CREATE_ALLOCATOR, (void *, void *, void **), c->session, c->gpu_info, &c->alloc),
            "device allocator") &&
         ok(env, CALL(API_CREATE_IO_BINDING, (void *, void **), c->session, &c->binding), "IO binding") &&
         ok(env, CALL(API_CREATE_RUN_OPTIONS, (void **), &c->run_options), "run options");
}

static int bind_all(napi_env env, Capture *c, napi_value keys, napi_value values, napi_value offsets) {
  const int64_t s = c->slots, rows[] = {s}, rows1[] = {s, 1}, logits_shape[] = {s, c->vocab};
  const int64_t offsets_shape[] = {s, c->layers, c->dim}, cache[] = {s, c->heads, c->capacity, c->head_dim};
  const size_t kv_bytes = (size_t)s * c->heads * c->capacity * c->head_dim * (c->kv_type == ELEM_FLOAT16 ? 2 : 4);
  c->ids = calloc((size_t)s, 8);
  c->gather = calloc((size_t)s, 8);
  c->next = calloc((size_t)s, 8);
  c->lengths = calloc((size_t)s, 4);
  c->logits = calloc((size_t)s * c->vocab, 4);
  c->views = calloc((size_t)2 * c->layers, sizeof(void *));
  if (!c->ids || !c->gather || !c->next || !c->lengths || !c->logits || !c->views)
    return fail(env, "out of memory", NULL), 0;
  for (int b = 0; b < c->slots; b++) c->gather[b] = b;
  c->total[0] = 1;
  if (!(c->d_ids = device_tensor(env, c, ELEM_INT64, rows1, 2)) ||
      !(c->d_lengths = device_tensor(env, c, ELEM_INT32, rows, 1)) ||
      !(c->d_gather = device_tensor(env, c, ELEM_INT64, rows, 1)) ||
      !(c->d_next = device_tensor(env, c, ELEM_INT64, rows, 1)) ||
      !(c->d_logits = device_tensor(env, c, ELEM_FLOAT, logits_shape, 2)) ||
      !(c->h_ids = host_tensor(env, c, c->ids, 8 * (size_t)s, ELEM_INT64, rows1, 2)) ||
      !(c->h_lengths = host_tensor(env, c, c->lengths, 4 * (size_t)s, ELEM_INT32, rows, 1)) ||
      !(c->h_gather = host_tensor(env, c, c->gather, 8 * (size_t)s, ELEM_INT64, rows, 1)) ||
      !(c->h_next = host_tensor(env, c, c->next, 8 * (size_t)s, ELEM_INT64, rows, 1)) ||
      !(c->h_logits = host_tensor(env, c, c->logits, 4 * (size_t)s * c->vocab, ELEM_FLOAT, logits_shape, 2)) ||
      !(c->h_total = host_tensor(env, c, c->total, 4, ELEM_INT32, NULL, 0)) ||
      !(c->d_offsets = view(env, c, offsets, ELEM_FLOAT, offsets_shape, 3, 4 * (size_t)s * c->layers * c->dim)))
    return 0;
  if (!copy(env, c, &c->h_gather, &c->d_gather, 1)) return 0;
  if (!bind(env, c, 0, "input_ids", c->d_ids) || !bind(env, c, 0, "seqlens_k", c->d_lengths) ||
      !bind(env, c, 0, "total_sequence_length", c->h_total) || !bind(env, c, 0, "gather_rows", c->d_gather) ||
      !bind(env, c, 0, "layer_offsets", c->d_offsets) || !bind(env, c, 1, "next_token", c->d_next) ||
      !bind(env, c, 1, "logits", c->d_logits))
    return 0;
  for (int l = 0; l < c->layers; l++) {
    for (int v = 0; v < 2; v++) {
      napi_value external;
      char in[48], out[48];
      if (napi_get_element(env, v ? values : keys, (uint32_t)l, &external) != napi_ok)
        return fail(env, "missing a layer's state buffer", NULL), 0;
      void *cache_view = view(env, c, external, c->kv_type, cache, 4, kv_bytes);
      if (cache_view == NULL) return 0;
      c->views[2 * l + v] = cache_view;
      snprintf(in, sizeof in, "past_%s_%d", v ? "value" : "key", l);
      snprintf(out, sizeof out, "present_%s_%d", v ? "value" : "key", l);
      if (!bind(env, c, 0, in, cache_view) || !bind(env, c, 1, out, cache_view)) return 0;
    }
  }
  return 1;
}

static napi_value open_capture(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  char lib[4096], model[4096], kv[16];
  size_t n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 6) return fail(env, "open(libPath, modelPath, spec, keys, values, offsets)", NULL);
  if (napi_get_value_string_utf8(env, argv[0], lib, sizeof lib, &n) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], model, sizeof model, &n) != napi_ok)
    return fail(env, "libPath and modelPath must be strings", NULL);
  if (!load_api(env, lib)) return NULL;
  Capture *c = calloc(1, sizeof *c);
  if (c == NULL) return fail(env, "out of memory", NULL);
  napi_value kv_value;
  int good = get_int(env, argv[2], "slots", &c->slots) && get_int(env, argv[2], "layers", &c->layers) &&
             get_int(env, argv[2], "heads", &c->heads) && get_int(env, argv[2], "headDim", &c->head_dim) &&
             get_int(env, argv[2], "capacity", &c->capacity) && get_int(env, argv[2], "dim", &c->dim) &&
             get_int(env, argv[2], "vocab", &c->vocab);
  if (good) {
    if (napi_get_named_property(env, argv[2], "kvType", &kv_value) != napi_ok ||
        napi_get_value_string_utf8(env, kv_value, kv, sizeof kv, &n) != napi_ok ||
        (strcmp(kv, "float32") != 0 && strcmp(kv, "float16") != 0)) {
      fail(env, "spec.kvType must be float32 or float16", NULL);
      good = 0;
    } else {
      c->kv_type = strcmp(kv, "float16") == 0 ? ELEM_FLOAT16 : ELEM_FLOAT;
    }
  }
  if (!good || !open_session(env, c, model) || !bind_all(env, c, argv[3], argv[4], argv[5])) {
    release(c);
    free(c);
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, c, finalize, NULL, &handle) != napi_ok) {
    release(c);
    free(c);
    return fail(env, "cannot create the handle", NULL);
  }
  return handle;
}

static Capture *capture_of(napi_env env, napi_value handle) {
  void *data = NULL;
  if (napi_get_value_external(env, handle, &data) != napi_ok || data == NULL) {
    fail(env, "not a step-capture handle", NULL);
    return NULL;
  }
  Capture *c = data;
  if (c->closed) {
    fail(env, "the capture is closed", NULL);
    return NULL;
  }
  return c;
}

static int typed_array(napi_env env, napi_value value, napi_typedarray_type want, size_t length, void **data) {
  napi_typedarray_type type;
  size_t count;
  if (napi_get_typedarray_info(env, value, &type, &count, data, NULL, NULL) != napi_ok || type != want ||
      count != length) {
    fail(env, "ids must be a BigInt64Array and lengths an Int32Array, one value per slot", NULL);
    return 0;
  }
  return 1;
}

static napi_value step(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 5) return fail(env, "step(handle, ids, lengths, total, logits)", NULL);
  Capture *c = capture_of(env, argv[0]);
  if (c == NULL) return NULL;
  void *ids, *lengths;
  int32_t total;
  bool want_logits;
  if (!typed_array(env, argv[1], napi_bigint64_array, (size_t)c->slots, &ids) ||
      !typed_array(env, argv[2], napi_int32_array, (size_t)c->slots, &lengths))
    return NULL;
  if (napi_get_value_int32(env, argv[3], &total) != napi_ok || total < 1 || total > c->capacity)
    return fail(env, "total must lie in [1, capacity]", NULL);
  if (napi_get_value_bool(env, argv[4], &want_logits) != napi_ok) return fail(env, "logits must be a boolean", NULL);
  memcpy(c->ids, ids, 8 * (size_t)c->slots);
  memcpy(c->lengths, lengths, 4 * (size_t)c->slots);
  c->total[0] = total;
  void *from[] = {c->h_ids, c->h_lengths}, *to[] = {c->d_ids, c->d_lengths};
  if (!copy(env, c, from, to, 2)) return NULL;
  if (!ok(env, CALL(API_RUN_WITH_BINDING, (void *, void *, void *), c->session, c->run_options, c->binding), "run"))
    return NULL;
  napi_value buffer, result;
  void *out;
  const size_t bytes = want_logits ? 4 * (size_t)c->slots * c->vocab : 8 * (size_t)c->slots;
  if (!copy(env, c, want_logits ? &c->d_logits : &c->d_next, want_logits ? &c->h_logits : &c->h_next, 1)) return NULL;
  if (napi_create_arraybuffer(env, bytes, &out, &buffer) != napi_ok) return fail(env, "out of memory", NULL);
  memcpy(out, want_logits ? (void *)c->logits : (void *)c->next, bytes);
  if (napi_create_typedarray(env, want_logits ? napi_float32_array : napi_bigint64_array,
                             want_logits ? (size_t)c->slots * c->vocab : (size_t)c->slots, buffer, 0,
                             &result) != napi_ok)
    return fail(env, "cannot make the result", NULL);
  return result;
}

static napi_value close_capture(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc == 1 && napi_get_value_external(env, argv[0], &data) == napi_ok && data != NULL) release(data);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_capture, NULL, &fn);
  napi_set_named_property(env, exports, "open", fn);
  napi_create_function(env, "step", NAPI_AUTO_LENGTH, step, NULL, &fn);
  napi_set_named_property(env, exports, "step", fn);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, close_capture, NULL, &fn);
  napi_set_named_property(env, exports, "close", fn);
  return exports;
}
