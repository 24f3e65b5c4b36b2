import { z } from '@imagebind-llm/config';
import { inLimit, type LimitRange } from '@imagebind-llm/domain';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/**
 * The REST bodies are zod (strict) schemas; this file gives their problems one wording. Every
 * rejection names the JSON path of the offending value (`messages[0].content[2].image_url.url`)
 * and says what to send instead, so a client can fix it without guessing. JSON `null` counts as
 * "not sent" for optional fields (`.nullish()`), as the OpenAI API treats it.
 */

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

/** `messages` + `0` → `messages[0]`; `messages[0]` + `role` → `messages[0].role`. */
export function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  // Keys come from the client (an unknown field is named in the error): clipped like any echo.
  const name = clipEcho(key);
  return path === '' ? name : `${path}.${name}`;
}

/** INVALID_INPUT whose message starts with the JSON path (or the body itself when the path is empty). */
export function invalidAt(path: string, message: string): DomainError {
  return problemAt(ErrorCode.InvalidInput, path, message);
}

/** PAYLOAD_TOO_LARGE naming the path and the limit, so the client knows how far to shrink. */
export function tooLargeAt(path: string, message: string): DomainError {
  return problemAt(ErrorCode.PayloadTooLarge, path, message);
}

function problemAt(code: ErrorCode, path: string, message: string): DomainError {
  // The body as a whole has no field name: param stays null (OpenAI's shape for whole-body errors).
  if (path === '') return new DomainError(code, `request body: ${message}`);
  return new DomainError(code, `${path}: ${message}`, { field: path });
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

type RawIssue = z.core.$ZodRawIssue;
type Issue = z.core.$ZodIssue;

/** `expected` of a type mismatch in the API's words; the schemas below name the others. */
const EXPECTED: Readonly<Record<string, string>> = {
  object: 'a JSON object',
  array: 'an array',
  string: 'a string',
  boolean: 'true or false',
  number: 'a number',
};

/**
 * The wording of a problem no schema words itself: a value of the wrong type, or an unknown key
 * (typos in extension fields, `imagebind.cahce`, would otherwise be ignored silently and the
 * request would run with defaults the caller did not want). The key is added to the path later.
 */
function defaultMessage(issue: RawIssue): string {
  if (issue.code === 'invalid_type') {
    return `must be ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeJson(issue.input)}`;
  }
  if (issue.code === 'unrecognized_keys') {
    const accepted = issue.inst instanceof z.ZodObject ? Object.keys(issue.inst.shape).join(', ') : '';
    return `unknown field; accepted fields here: ${accepted}`;
  }
  if (issue.code === 'invalid_value') {
    return `must be ${issue.values.map((v) => JSON.stringify(v)).join(' or ')}`;
  }
  // Every other kind of problem is worded by the schema that can have it.
  return 'is not accepted here';
}

/** Schema option: a missing (or null) value is `is required: <hint>`; other problems keep their wording. */
export function required(hint: string): { error: (issue: RawIssue) => string | undefined } {
  return {
    error: (issue) =>
      issue.input === undefined || issue.input === null ? `is required: ${hint}` : undefined,
  };
}

/** A number in one of libs/domain's ranges (GENERATION_LIMITS, ...): `must be an integer in [1, 512]`. */
export function numberIn(range: LimitRange) {
  const rule = `must be ${range.integer === true ? 'an integer' : 'a number'} in [${range.min}, ${range.max}]`;
  return z
    .number({ error: (issue) => `${rule}, got ${describeJson(issue.input)}` })
    .refine((v) => inLimit(v, range), { error: (issue) => `${rule}, got ${String(issue.input)}` });
}

/** A mixing weight: finite and > 0 (MODEL_SPEC §1.3: weight 0 is rejected, as in the official demo). */
export const weightSchema = z
  .number({ error: (issue) => `must be a positive number (unset means 1), got ${describeJson(issue.input)}` })
  .refine((v) => v > 0, {
    error: (issue) => `must be a positive number (unset means 1), got ${String(issue.input)}`,
  })
  .nullish();

/** One of a few strings: `must be auto, low or high, got "max"` (the client's value clipped). */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T, wording: string) {
  return z.enum(values, {
    error: (issue) =>
      typeof issue.input === 'string'
        ? `must be ${wording}, got ${quoted(issue.input)}`
        : `must be a string, got ${describeJson(issue.input)}`,
  });
}

/** The body's `model`: the one model id this deployment serves (NOT_FOUND, field `model`, otherwise). */
export function servedModel(modelId: string) {
  return z.string(required(`the served model id, ${modelId}`)).refine((model) => model === modelId, {
    error: (issue) =>
      `${quoted(String(issue.input))} is not served here; use "${modelId}" (GET /v1/models lists it)`,
    params: { code: ErrorCode.NotFound },
  });
}

/** A schema per served model id, built once (a deployment serves one). */
export function perModel<T>(build: (modelId: string) => T): (modelId: string) => T {
  const built = new Map<string, T>();
  return (modelId) => {
    let schema = built.get(modelId);
    if (schema === undefined) {
      schema = build(modelId);
      built.set(modelId, schema);
    }
    return schema;
  };
}

function isPrefix(prefix: readonly PropertyKey[], path: readonly PropertyKey[]): boolean {
  return prefix.length <= path.length && prefix.every((key, i) => key === path[i]);
}

function under(base: readonly PropertyKey[], issues: readonly Issue[]): Issue[] {
  return issues.map((issue) => ({ ...issue, path: [...base, ...issue.path] }));
}

/**
 * The one problem reported, as the hand-written readers did: an unknown key of an enclosing object
 * comes first (keys were checked before values), then the first problem in document order. Of a
 * union (`content`: a string or parts), the branch whose type the value has tells what is wrong.
 */
function chooseIssue(issues: readonly Issue[]): Issue {
  let chosen = issues[0]!;
  if (chosen.code === 'invalid_union') {
    const matched = chosen.errors.find((branch) => {
      const first = branch[0];
      return first !== undefined && !(first.code === 'invalid_type' && first.path.length === 0);
    });
    if (matched !== undefined) chosen = chooseIssue(under(chosen.path, matched));
  }
  const unknownKeys = issues.find(
    (issue) => issue.code === 'unrecognized_keys' && isPrefix(issue.path, chosen.path),
  );
  return unknownKeys ?? chosen;
}

function toDomainError(issue: Issue, base: string): DomainError {
  const keys = issue.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : [];
  const path = [...issue.path, ...keys].reduce<string>(
    (p, key) => at(p, typeof key === 'number' ? key : String(key)),
    base,
  );
  const params: unknown = issue.code === 'custom' ? issue.params?.['code'] : undefined;
  return problemAt(
    params === ErrorCode.NotFound ? ErrorCode.NotFound : ErrorCode.InvalidInput,
    path,
    issue.message,
  );
}

/**
 * Checks a parsed JSON value against a schema: its typed value, or the DomainError for the first
 * problem (see chooseIssue), at `path` inside the body ('' for the body itself).
 */
export function parseJson<S extends z.ZodType>(schema: S, value: unknown, path = ''): z.output<S> {
  const result = schema.safeParse(value, { error: defaultMessage });
  if (result.success) return result.data;
  throw toDomainError(chooseIssue(result.error.issues), path);
}

/** The fields that were sent (neither undefined nor null). */
export function present<T extends object>(fields: T): { [K in keyof T]?: NonNullable<T[K]> } {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== null)) as {
    [K in keyof T]?: NonNullable<T[K]>;
  };
}
