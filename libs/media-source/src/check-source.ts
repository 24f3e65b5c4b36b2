import { isAbsolute, relative, resolve, sep } from 'node:path';
import { isBlockedAddress, isHostAllowed, isIpLiteral, isLoopbackName, normaliseHost } from './address-guard';
import { assertValidPolicy, type MediaSourcePolicy } from './media-source-policy';
import { invalidSource } from './source-errors';

/** A source that passed `checkSource`: what `readSource` reads. */
export type ParsedSource =
  /** `url`: the normalised https URL (allow-listed host, no credentials, not a private literal). */
  | { readonly kind: 'https'; readonly url: string }
  /** `path`: absolute, lexically inside `fileRoot` (symbolic links are checked when read). */
  | { readonly kind: 'file'; readonly path: string }
  /** `key`: the decoded object key; `url`: where it is fetched, `<endpoint>/<bucket>/<key>`. */
  | { readonly kind: 's3'; readonly bucket: string; readonly key: string; readonly url: string };

/** Longer URIs are refused outright rather than parsed (they are never legitimate media names). */
export const MAX_SOURCE_URI_LENGTH = 4096;
/** S3's own key limit, in UTF-8 bytes. */
const MAX_OBJECT_KEY_BYTES = 1024;

const SCHEME = /^([a-z][a-z0-9+.-]*):/i;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;
/** Percent-encoded '.', '/', '\' and NUL: the spellings used to smuggle traversal past a check. */
const ENCODED_TRAVERSAL = /%(2e|2f|5c|00)/i;

const ACCEPTED_FORMS =
  'use https://<allowed host>/…, s3://<bucket>/<key> where an object store is configured, or a path relative to the media root';

/**
 * Vets a client-supplied media URI without any I/O and says where it would be read from.
 * Throws INVALID_INPUT naming `field` (e.g. `items[3].uri`) and what to change for anything
 * else. Accepted:
 * - `https://host/…` — host on `allowedHosts`, no credentials, not `localhost`, not a private,
 *   loopback, link-local, CGNAT, multicast or reserved IP literal (IPv4-mapped IPv6 included);
 * - `file:///abs/path` (or `file://localhost/…`) and bare paths (`clips/a.mp4`, `/root/a.mp4`)
 *   — inside `fileRoot`, no `..` segment (raw or `%2e`-encoded), no backslash, NUL or control
 *   characters;
 * - `s3://bucket/key` — only with `objectStore` configured and the bucket listed; no `.`/`..`
 *   key segments.
 * `http:`, `data:`, `ftp:` and every other scheme are refused. `readSource` repeats the checks
 * that need I/O: DNS answers, symbolic links, file type and size.
 */
export function checkSource(uri: string, policy: MediaSourcePolicy, field: string): ParsedSource {
  assertValidPolicy(policy);
  if (typeof uri !== 'string' || uri.length === 0) {
    throw invalidSource(field, `must be a non-empty URI; ${ACCEPTED_FORMS}`);
  }
  if (uri.length > MAX_SOURCE_URI_LENGTH) {
    throw invalidSource(field, `is ${uri.length} characters long; the limit is ${MAX_SOURCE_URI_LENGTH}`);
  }
  if (CONTROL_CHARACTER.test(uri)) {
    throw invalidSource(field, 'contains a NUL, newline, tab or other control character; remove it');
  }
  if (uri.includes('\\')) {
    throw invalidSource(field, 'contains a backslash; separate path segments with "/"');
  }
  if (uri.trim() !== uri) {
    throw invalidSource(field, 'has leading or trailing whitespace; remove it');
  }
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  switch (scheme) {
    case undefined:
      return { kind: 'file', path: vetFilePath(barePath(uri, field), policy, field) };
    case 'file':
      return { kind: 'file', path: vetFilePath(fileUriPath(uri, field), policy, field) };
    case 'https':
      return { kind: 'https', url: vetHttpsUrl(uri, policy, field) };
    case 's3':
      return parseS3Uri(uri, policy, field);
    case 'http':
      throw invalidSource(field, 'plain http:// is not accepted; use https://');
    case 'data':
      throw invalidSource(
        field,
        'data: URIs are not accepted as media sources; send the bytes inline in the request, or name an https://, s3:// or file source',
      );
    default:
      throw invalidSource(
        field,
        `the ${scheme}: scheme is not accepted; ${ACCEPTED_FORMS} (a file name containing ":" can be written as ./name)`,
      );
  }
}

/**
 * Bare paths are taken literally, never percent-decoded. Encoded dots and slashes are refused
 * anyway: a name like `%2e%2e/x` is only ever an attempt to get past a layer that decodes.
 */
function barePath(uri: string, field: string): string {
  if (ENCODED_TRAVERSAL.test(uri)) {
    throw invalidSource(
      field,
      'contains a percent-encoded ".", "/", "\\" or NUL (%2e, %2f, %5c, %00); name the file plainly',
    );
  }
  return uri;
}

/** `file:///p`, `file://localhost/p` and `file:/p`; decoded by hand because `new URL` silently resolves `..` and `%2e%2e`. */
function fileUriPath(uri: string, field: string): string {
  let rest = uri.slice('file:'.length);
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2);
    const authority = slash === -1 ? rest.slice(2) : rest.slice(2, slash);
    if (authority !== '' && authority.toLowerCase() !== 'localhost') {
      throw invalidSource(
        field,
        `file URIs may not name a host (${authority}); write file:///<path under the media root>`,
      );
    }
    rest = slash === -1 ? '' : rest.slice(slash);
  }
  if (!rest.startsWith('/')) {
    throw invalidSource(
      field,
      'a file URI must hold an absolute path (file:///…); for a path relative to the media root, omit the file: scheme',
    );
  }
  if (rest.includes('?') || rest.includes('#')) {
    throw invalidSource(
      field,
      'file URIs take no query or fragment; percent-encode "?" and "#" in names as %3F and %23',
    );
  }
  if (ENCODED_TRAVERSAL.test(rest)) {
    throw invalidSource(
      field,
      'contains a percent-encoded ".", "/", "\\" or NUL (%2e, %2f, %5c, %00); name the file plainly',
    );
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw invalidSource(field, 'has malformed percent-encoding; encode "%" as %25');
  }
  if (CONTROL_CHARACTER.test(decoded)) {
    throw invalidSource(field, 'decodes to a control character (e.g. %0A); remove it');
  }
  return decoded;
}

/**
 * The lexical half of the file-root check (`readSource` adds `realpath`): no `..` segment at
 * all, even one that would stay inside — so no resolution order can make it escape — and the
 * result must lie strictly inside the root. Also run on a `ParsedSource` handed to `readSource`.
 */
export function vetFilePath(path: string, policy: MediaSourcePolicy, field: string): string {
  if (policy.fileRoot === undefined) {
    throw invalidSource(
      field,
      'file sources are disabled on this deployment (no media root is configured); use an https:// URL on the allow-list or send the bytes inline',
    );
  }
  if (path.includes('\0') || path.includes('\\') || CONTROL_CHARACTER.test(path)) {
    throw invalidSource(field, 'file paths may not contain NUL, backslash or control characters');
  }
  if (path.split('/').includes('..')) {
    throw invalidSource(
      field,
      'path contains a ".." segment; name the file by its path under the media root',
    );
  }
  const root = resolve(policy.fileRoot);
  const absolute = isAbsolute(path) ? resolve(path) : resolve(root, path);
  const inside = relative(root, absolute);
  if (inside === '') {
    throw invalidSource(field, 'names the media root directory itself; name a file under it');
  }
  if (inside.startsWith(`..${sep}`) || inside === '..' || isAbsolute(inside)) {
    throw invalidSource(
      field,
      'absolute path is outside the media root; give a path relative to the media root',
    );
  }
  return absolute;
}

/**
 * Also run on a `ParsedSource` handed to `readSource`. DNS answers are checked there: a host on
 * the allow-list can still resolve to a private address.
 */
export function vetHttpsUrl(uri: string, policy: MediaSourcePolicy, field: string): string {
  if (!/^https:\/\//i.test(uri)) {
    throw invalidSource(field, 'must be an absolute https:// URL');
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw invalidSource(field, 'is not a valid https:// URL');
  }
  if (url.protocol !== 'https:') throw invalidSource(field, 'must be an https:// URL');
  if (url.username !== '' || url.password !== '') {
    throw invalidSource(
      field,
      'must not contain credentials (user:password@); host the file where it can be fetched without them',
    );
  }
  const host = normaliseHost(url.hostname);
  if (isIpLiteral(host) && isBlockedAddress(host)) {
    throw invalidSource(
      field,
      `${host} is a private, loopback, link-local or reserved address; media is never fetched from those`,
    );
  }
  if (isLoopbackName(host)) {
    throw invalidSource(field, `${host} is a loopback name; media is never fetched from it`);
  }
  if (policy.allowedHosts.length === 0) {
    throw invalidSource(
      field,
      'https sources are disabled on this deployment (no allowed hosts); send the bytes inline instead',
    );
  }
  if (!isHostAllowed(host, policy.allowedHosts)) {
    throw invalidSource(
      field,
      `host ${host} is not on the allow-list (${describeList(policy.allowedHosts)}); use one of those hosts`,
    );
  }
  return url.href;
}

function parseS3Uri(uri: string, policy: MediaSourcePolicy, field: string): ParsedSource {
  const match = /^s3:\/\/([^/?#]*)\/(.*)$/is.exec(uri);
  if (match === null) throw invalidSource(field, 'must have the form s3://<bucket>/<key>');
  const [, bucket = '', rawKey = ''] = match;
  if (rawKey.includes('?') || rawKey.includes('#')) {
    throw invalidSource(
      field,
      'object keys take no query or fragment; percent-encode "?" and "#" as %3F and %23',
    );
  }
  let key: string;
  try {
    key = decodeURIComponent(rawKey);
  } catch {
    throw invalidSource(field, 'has malformed percent-encoding in the object key; encode "%" as %25');
  }
  return vetS3Object(bucket, key, policy, field);
}

/** Builds the fetch URL itself, segment by segment, so nothing in the key can change the path. Also run on a `ParsedSource` handed to `readSource`. */
export function vetS3Object(
  bucket: string,
  key: string,
  policy: MediaSourcePolicy,
  field: string,
): ParsedSource & { kind: 's3' } {
  const store = policy.objectStore;
  if (store === undefined) {
    throw invalidSource(
      field,
      's3:// sources are disabled on this deployment (no object store is configured); use an https:// URL or send the bytes inline',
    );
  }
  if (!store.buckets.includes(bucket)) {
    throw invalidSource(
      field,
      `bucket ${JSON.stringify(bucket)} is not one this service reads (${describeList(store.buckets)})`,
    );
  }
  if (key === '') throw invalidSource(field, 'names no object key; write s3://<bucket>/<key>');
  if (CONTROL_CHARACTER.test(key) || key.includes('\\')) {
    throw invalidSource(field, 'object key may not contain control characters or backslashes');
  }
  const segments = key.split('/');
  if (segments.some((s) => s === '.' || s === '..')) {
    throw invalidSource(
      field,
      'object key contains a "." or ".." segment (raw or percent-encoded); name the object by its exact key',
    );
  }
  if (Buffer.byteLength(key, 'utf8') > MAX_OBJECT_KEY_BYTES) {
    throw invalidSource(field, `object key is longer than ${MAX_OBJECT_KEY_BYTES} bytes`);
  }
  const base = store.endpoint.replace(/\/+$/, '');
  const url = `${base}/${encodeURIComponent(bucket)}/${segments.map(encodeURIComponent).join('/')}`;
  return { kind: 's3', bucket, key, url };
}

function describeList(items: readonly string[]): string {
  const shown = items.slice(0, 8).join(', ');
  return items.length > 8 ? `${shown}, … ${items.length - 8} more` : shown;
}
