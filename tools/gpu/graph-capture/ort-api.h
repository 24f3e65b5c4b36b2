// The few parts of onnxruntime's C API (ABI version 30, onnxruntime 1.30) the graph-capture probe
// calls, declared here instead of including onnxruntime_c_api.h (not installed with
// onnxruntime-node). `OrtGetApiBase()->GetApi(30)` returns the API as a table of function pointers
// in a fixed order, append-only from version to version; the numbers below are positions in that
// table (counted from the declarations of struct OrtApi for version 30, and checked against the
// per-version last-member positions onnxruntime asserts: version 1 ends at 101, 5 at 149, 10 at
// 203, 23 at 389, 30 at 425).
#ifndef IBLLM_ORT_API_H
#define IBLLM_ORT_API_H
#include <stddef.h>
#include <stdint.h>

#define ORT_ABI_VERSION 30

enum {
  API_GET_ERROR_MESSAGE = 2,
  API_CREATE_ENV = 3,
  API_CREATE_SESSION = 7,
  API_CREATE_SESSION_OPTIONS = 10,
  API_SET_GRAPH_OPTIMIZATION_LEVEL = 23,
  API_CREATE_RUN_OPTIONS = 39,
  API_CREATE_TENSOR = 48,
  API_CREATE_TENSOR_WITH_DATA = 49,
  API_CREATE_MEMORY_INFO = 68,
  API_CREATE_CPU_MEMORY_INFO = 69,
  API_CREATE_ALLOCATOR = 131,
  API_RUN_WITH_BINDING = 133,
  API_CREATE_IO_BINDING = 134,
  API_BIND_INPUT = 136,
  API_BIND_OUTPUT = 137,
  API_APPEND_EXECUTION_PROVIDER = 216,
  API_COPY_TENSORS = 386,
};

// Element types (ONNXTensorElementDataType) and the other enum values used.
enum { ELEM_FLOAT = 1, ELEM_INT32 = 6, ELEM_INT64 = 7, ELEM_FLOAT16 = 10 };
enum { LOG_INFO = 1, LOG_WARNING = 2, OPT_ALL = 99, ALLOC_DEVICE = 0, MEM_DEFAULT = 0 };

// Every handle is opaque here; a non-NULL status is an error.
typedef void Status;
typedef struct {
  const void *(*get_api)(uint32_t version);
  const char *(*get_version_string)(void);
} ApiBase;

#endif
