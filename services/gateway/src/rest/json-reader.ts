import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/**
 * Small readers for an already-parsed JSON body. Every rejection names the JSON path of the
 * offending value (`messages[0].content[2].image_url.url`), so a client can find it without
 * guessing. JSON `null` counts as "not sent" for optional fields, as the OpenAI API treats it.
 */

export type JsonObject = Readonly<Record<string, unknown>>;

/** `messages` + `[0]` → `messages[0]`; `messages[0]` + `role` → `messages[0].role`. */
/** Longest piece of a client's own text an error message repeats back (issue #17). */
export const ECHO_LIMIT = 200;

/** A client's string for an error message: at most ECHO_LIMIT characters, then how many more. */
export function clipEcho(text: string): string {
  if (text.length <= ECHO_LIMIT) return text;
  return `${text.slice(0, ECHO_LIMIT)}… (${text.length - ECHO_LIMIT} more characters)`;
}

/** A client's string quoted for an error message, clipped (clipEcho). */
export function quoted(text: string): string {
  return `"${clipEcho(text)}"`;
}

export function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  // Keys come from the client (an unknown field is named in the error): clipped like any echo.
  const name = clipEcho(key);
  return path === '' ? name : `${path}.${name}`;
}

/** INVALID_INPUT whose message starts with the JSON path (or the body itself when the path is empty). */
export function invalidAt(path: string, message: string): DomainError {
  // The body as a whole has no field name: param stays null (OpenAI's shape for whole-body errors).
  if (path === '') return new DomainError(ErrorCode.InvalidInput, `request body: ${message}`);
  return new DomainError(ErrorCode.InvalidInput, `${path}: ${message}`, { field: path });
}

/** PAYLOAD_TOO_LARGE naming the path and the limit, so the client knows how far to shrink. */
export function tooLargeAt(path: string, message: string): DomainError {
  if (path === '') return new DomainError(ErrorCode.PayloadTooLarge, `request body: ${message}`);
  return new DomainError(ErrorCode.PayloadTooLarge, `${path}: ${message}`, { field: path });
}

/** What a JSON value is, in the words an API user knows. */
export function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function expectObject(value: unknown, path: string): JsonObject {
  if (!isJsonObject(value)) throw invalidAt(path, `must be a JSON object, got ${describeJson(value)}`);
  return value;
}

/**
 * Rejects keys the endpoint does not know. Typos in extension fields (`imagebind.cahce`) would
 * otherwise be ignored silently and the request would run with defaults the caller did not want.
 */
export function rejectUnknownKeys(obj: JsonObject, path: string, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) {
      throw invalidAt(at(path, key), `unknown field; accepted fields here: ${known.join(', ')}`);
    }
  }
}

export function optionalString(obj: JsonObject, key: string, path: string): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    throw invalidAt(at(path, key), `must be a string, got ${describeJson(value)}`);
  }
  return value;
}

export function requiredString(obj: JsonObject, key: string, path: string, hint: string): string {
  const value = optionalString(obj, key, path);
  if (value === undefined) throw invalidAt(at(path, key), `is required: ${hint}`);
  return value;
}

export function optionalBoolean(obj: JsonObject, key: string, path: string): boolean | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') {
    throw invalidAt(at(path, key), `must be true or false, got ${describeJson(value)}`);
  }
  return value;
}

/** A finite number in [min, max]; `what` completes "must be ..." (e.g. "a number", "an integer"). */
export function optionalNumber(
  obj: JsonObject,
  key: string,
  path: string,
  range: { readonly min: number; readonly max: number; readonly integer?: boolean },
): number | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  const what = range.integer === true ? 'an integer' : 'a number';
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalidAt(
      at(path, key),
      `must be ${what} in [${range.min}, ${range.max}], got ${describeJson(value)}`,
    );
  }
  if ((range.integer === true && !Number.isInteger(value)) || value < range.min || value > range.max) {
    throw invalidAt(at(path, key), `must be ${what} in [${range.min}, ${range.max}], got ${value}`);
  }
  return value;
}

/** A mixing weight: finite and > 0 (MODEL_SPEC §1.3: weight 0 is rejected, as in the official demo). */
export function optionalWeight(obj: JsonObject, key: string, path: string): number | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    const got = typeof value === 'number' ? String(value) : describeJson(value);
    throw invalidAt(at(path, key), `must be a positive number (unset means 1), got ${got}`);
  }
  return value;
}

export function expectArray(value: unknown, path: string): readonly unknown[] {
  if (!Array.isArray(value)) throw invalidAt(path, `must be an array, got ${describeJson(value)}`);
  return value as readonly unknown[];
}

/** The body's `model`, which must be the one model id this deployment serves (404 otherwise). */
export function requireServedModel(obj: JsonObject, modelId: string): string {
  const model = requiredString(obj, 'model', '', `the served model id, ${modelId}`);
  if (model !== modelId) {
    throw new DomainError(
      ErrorCode.NotFound,
      `model: ${quoted(model)} is not served here; use "${modelId}" (GET /v1/models lists it)`,
      { field: 'model' },
    );
  }
  return model;
}
