/*
 * Small helpers shared by the media module's N-API entry points: argument reading with a thrown
 * TypeError/RangeError on misuse (the TypeScript wrapper validates user input first, so these
 * only guard against programming errors), and errors carrying a `code` the wrapper maps to
 * DomainErrors.
 */
#ifndef IBLLM_NAPI_UTIL_H
#define IBLLM_NAPI_UTIL_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Every helper returns 0 on success and -1 with a pending JS exception on failure. */

int arg_u8(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len);
int arg_i32_array(napi_env env, napi_value v, const char *name, int32_t **data, size_t *len);
int arg_f32_array(napi_env env, napi_value v, const char *name, float **data, size_t *len);
int arg_f64_array(napi_env env, napi_value v, const char *name, double **data, size_t *len);
int arg_i64_array(napi_env env, napi_value v, const char *name, int64_t **data, size_t *len);
int arg_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max, int64_t *out);
int arg_double(napi_env env, napi_value v, const char *name, double *out);
int arg_bool(napi_env env, napi_value v, const char *name, int *out);
/* A string argument copied into `out` (NUL-terminated, at most `cap` - 1 bytes). */
int arg_string(napi_env env, napi_value v, const char *name, char *out, size_t cap);

/* Throws an Error whose `code` property is `code` (e.g. "EMEDIA", "ETIMEOUT"). */
void throw_coded(napi_env env, const char *code, const char *message);
/* The same error as a value (for promise rejection). */
napi_value coded_error(napi_env env, const char *code, const char *message);

int set_named(napi_env env, napi_value obj, const char *name, napi_value value);
/* A module's exports: each { name, fn } as a function, then `abiVersion`. */
struct export_entry {
  const char *name;
  napi_callback fn;
};
napi_value export_all(napi_env env, napi_value exports, const struct export_entry *entries, size_t count,
                      int abi_version);
napi_value make_int(napi_env env, int64_t v);
napi_value make_double(napi_env env, double v);
napi_value make_string(napi_env env, const char *s);
napi_value make_null(napi_env env);

#endif
