#include "napi-util.h"

#include <stdio.h>
#include <string.h>

static int fail_type(napi_env env, const char *name, const char *what) {
  char msg[160];
  snprintf(msg, sizeof msg, "media native: %s must be %s", name, what);
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

static int typed(napi_env env, napi_value v, const char *name, napi_typedarray_type want, void **data,
                 size_t *len, const char *what) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return fail_type(env, name, what);
  napi_typedarray_type type;
  size_t length = 0;
  void *ptr = NULL;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, NULL, NULL) != napi_ok || type != want)
    return fail_type(env, name, what);
  *data = ptr;
  *len = length;
  return 0;
}

int arg_u8(napi_env env, napi_value v, const char *name, uint8_t **data, size_t *len) {
  return typed(env, v, name, napi_uint8_array, (void **)data, len, "a Uint8Array");
}

int arg_i32_array(napi_env env, napi_value v, const char *name, int32_t **data, size_t *len) {
  return typed(env, v, name, napi_int32_array, (void **)data, len, "an Int32Array");
}

int arg_f32_array(napi_env env, napi_value v, const char *name, float **data, size_t *len) {
  return typed(env, v, name, napi_float32_array, (void **)data, len, "a Float32Array");
}

int arg_f64_array(napi_env env, napi_value v, const char *name, double **data, size_t *len) {
  return typed(env, v, name, napi_float64_array, (void **)data, len, "a Float64Array");
}

int arg_i64_array(napi_env env, napi_value v, const char *name, int64_t **data, size_t *len) {
  return typed(env, v, name, napi_bigint64_array, (void **)data, len, "a BigInt64Array");
}

int arg_double(napi_env env, napi_value v, const char *name, double *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return fail_type(env, name, "a number");
  return napi_get_value_double(env, v, out) == napi_ok ? 0 : fail_type(env, name, "a number");
}

int arg_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max, int64_t *out) {
  double d;
  if (arg_double(env, v, name, &d) != 0) return -1;
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
    char msg[200];
    snprintf(msg, sizeof msg, "media native: %s must be an integer in %lld..%lld", name, (long long)min,
             (long long)max);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

int arg_bool(napi_env env, napi_value v, const char *name, int *out) {
  bool b = false;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) return fail_type(env, name, "a boolean");
  napi_get_value_bool(env, v, &b);
  *out = b ? 1 : 0;
  return 0;
}

int arg_string(napi_env env, napi_value v, const char *name, char *out, size_t cap) {
  size_t len = 0;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return fail_type(env, name, "a string");
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len + 1 > cap)
    return fail_type(env, name, "a string of a sane length");
  napi_get_value_string_utf8(env, v, out, cap, &len);
  return 0;
}

napi_value coded_error(napi_env env, const char *code, const char *message) {
  napi_value msg, c, err;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_error(env, c, msg, &err);
  return err;
}

void throw_coded(napi_env env, const char *code, const char *message) {
  napi_throw(env, coded_error(env, code, message));
}

int set_named(napi_env env, napi_value obj, const char *name, napi_value value) {
  return napi_set_named_property(env, obj, name, value) == napi_ok ? 0 : -1;
}

napi_value export_all(napi_env env, napi_value exports, const struct export_entry *entries, size_t count,
                      int abi_version) {
  for (size_t i = 0; i < count; i++) {
    napi_value f;
    if (napi_create_function(env, entries[i].name, NAPI_AUTO_LENGTH, entries[i].fn, NULL, &f) == napi_ok)
      napi_set_named_property(env, exports, entries[i].name, f);
  }
  napi_set_named_property(env, exports, "abiVersion", make_int(env, abi_version));
  return exports;
}

napi_value make_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

napi_value make_double(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

napi_value make_string(napi_env env, const char *s) {
  napi_value out;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

napi_value make_null(napi_env env) {
  napi_value out;
  napi_get_null(env, &out);
  return out;
}
