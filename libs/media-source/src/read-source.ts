import { constants } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { relative, isAbsolute, sep } from 'node:path';
import { isDomainError } from '@imagebind-llm/errors';
import { isBlockedAddress, isIpLiteral, normaliseHost } from './address-guard';
import { checkSource, vetFilePath, vetHttpsUrl, vetS3Object, type ParsedSource } from './check-source';
import { assertValidPolicy, type MediaSourcePolicy } from './media-source-policy';
import {
  invalidSource,
  sourceCancelled,
  sourceNotFound,
  sourceTooLarge,
  sourceUnavailable,
} from './source-errors';

/**
 * Reads a media source into memory under the policy's limits (or in chunks: {@link streamSource}). A string is vetted with
 * `checkSource` first; a `ParsedSource` is vetted again (it may have been built by hand), so
 * nothing reaches the network or disk without passing the policy. Failures are DomainErrors
 * naming `field`:
 * - INVALID_INPUT — refused by the policy, a DNS answer in a private range, a redirect, a 4xx,
 *   a symbolic link out of the root, not a regular file, empty;
 * - NOT_FOUND — no such file, or HTTP 404/410;
 * - PAYLOAD_TOO_LARGE — more than `maxBytes` (declared or streamed);
 * - DEPENDENCY_UNAVAILABLE — timeout, 408/429/5xx, network or DNS failure (retry these:
 *   `isTransientSourceError`);
 * - CANCELLED — `signal` aborted.
 */
export async function readSource(
  source: ParsedSource | string,
  policy: MediaSourcePolicy,
  field: string,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of sourceChunks(source, policy, field, signal, true)) {
    chunks.push(chunk);
    total += chunk.byteLength;
  }
  return chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : concat(chunks, total);
}

/**
 * The same read as {@link readSource}, with the same checks, limits and errors, handed over in
 * chunks of at most ~1 MiB as they arrive: a caller that parses as it goes (a batch manifest)
 * holds one chunk rather than the whole source. Stopping early (`break`) closes the file or the
 * connection.
 */
export function streamSource(
  source: ParsedSource | string,
  policy: MediaSourcePolicy,
  field: string,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  return sourceChunks(source, policy, field, signal, false);
}

/** `whole`: a file is read in one go when stat says it fits (readSource's common case, no copy). */
async function* sourceChunks(
  source: ParsedSource | string,
  policy: MediaSourcePolicy,
  field: string,
  signal: AbortSignal | undefined,
  whole: boolean,
): AsyncGenerator<Uint8Array> {
  assertValidPolicy(policy);
  const parsed = typeof source === 'string' ? checkSource(source, policy, field) : source;
  if (signal?.aborted === true) throw sourceCancelled(field, signal.reason);
  switch (parsed.kind) {
    case 'file':
      yield* fileChunks(vetFilePath(parsed.path, policy, field), policy, field, signal, whole);
      return;
    case 'https': {
      const url = new URL(vetHttpsUrl(parsed.url, policy, field));
      yield* withDeadline(policy, field, signal, async function* (deadline) {
        await assertPublicHost(url.hostname, policy, field, deadline);
        yield* fetchChunks(url.href, url.host, {}, policy, field, deadline);
      });
      return;
    }
    case 's3': {
      // The endpoint is operator configuration (usually a private address), so no DNS guard.
      const { url } = vetS3Object(parsed.bucket, parsed.key, policy, field);
      const headers = policy.objectStore?.headers ?? {};
      const label = `object store bucket ${parsed.bucket}`;
      yield* withDeadline(policy, field, signal, (deadline) =>
        fetchChunks(url, label, headers, policy, field, deadline),
      );
      return;
    }
  }
}

/** One budget for the whole remote read; aborts are told apart so callers know whether to retry. */
async function* withDeadline<T>(
  policy: MediaSourcePolicy,
  field: string,
  caller: AbortSignal | undefined,
  work: (deadline: AbortSignal) => AsyncGenerator<T>,
): AsyncGenerator<T> {
  const timeout = AbortSignal.timeout(policy.timeoutMs);
  const deadline = caller === undefined ? timeout : AbortSignal.any([caller, timeout]);
  try {
    yield* work(deadline);
  } catch (error) {
    if (caller?.aborted === true) throw sourceCancelled(field, error);
    if (timeout.aborted) {
      throw sourceUnavailable(
        field,
        `the source did not answer within ${policy.timeoutMs} ms; retry later`,
        error,
      );
    }
    throw error;
  }
}

/**
 * DNS rebinding guard: an allow-listed name may still resolve to 127.0.0.1 or 169.254.169.254,
 * so every address it resolves to must be public. (fetch resolves again when it connects; see
 * README "Limits" for the remaining window.)
 */
async function assertPublicHost(
  hostname: string,
  policy: MediaSourcePolicy,
  field: string,
  deadline: AbortSignal,
): Promise<void> {
  const host = normaliseHost(hostname);
  if (isIpLiteral(host)) return; // vetted as a literal by vetHttpsUrl
  const resolveHost = policy.resolve ?? defaultResolve;
  let addresses: readonly string[];
  try {
    addresses = await abortable(resolveHost(host), deadline);
  } catch (error) {
    if (deadline.aborted) throw error;
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') {
      throw invalidSource(field, `host ${host} does not resolve; check the URL`);
    }
    throw sourceUnavailable(field, `resolving ${host} failed (${describe(error)}); retry later`, error);
  }
  if (addresses.length === 0) throw invalidSource(field, `host ${host} does not resolve; check the URL`);
  const blocked = addresses.find((address) => isBlockedAddress(address));
  if (blocked !== undefined) {
    throw invalidSource(
      field,
      `host ${host} resolves to ${blocked}, a private, loopback or reserved address; media is never fetched from those`,
    );
  }
}

async function defaultResolve(hostname: string): Promise<readonly string[]> {
  const answers = await lookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => a.address);
}

/** dns.lookup cannot be cancelled; stop waiting for it when the deadline passes. */
async function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([promise, aborted]);
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}

async function* fetchChunks(
  url: string,
  label: string,
  headers: Readonly<Record<string, string>>,
  policy: MediaSourcePolicy,
  field: string,
  deadline: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const fetchImpl = policy.fetchImpl ?? fetch;
  let response: Response;
  try {
    deadline.throwIfAborted();
    response = await fetchImpl(url, { method: 'GET', headers, redirect: 'error', signal: deadline });
  } catch (error) {
    if (deadline.aborted || isDomainError(error)) throw error;
    if (isRedirectError(error)) throw redirectRefused(field, label);
    throw sourceUnavailable(field, `could not fetch from ${label} (${describe(error)}); retry later`, error);
  }
  try {
    checkStatus(response, label, field);
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    if (declared > policy.maxBytes) {
      throw sourceTooLarge(
        field,
        `${label} declares ${declared} bytes; the limit is ${policy.maxBytes}`,
        policy.maxBytes,
      );
    }
    yield* readCapped(response, label, policy.maxBytes, field);
  } catch (error) {
    // Release the connection: an unread body would keep it (and the server's upload) open.
    if (response.body !== null && !response.body.locked) await response.body.cancel().catch(() => undefined);
    if (deadline.aborted || isDomainError(error)) throw error;
    throw sourceUnavailable(field, `reading from ${label} failed (${describe(error)}); retry later`, error);
  }
}

function checkStatus(response: Response, label: string, field: string): void {
  const { status } = response;
  if (status >= 200 && status < 300) return;
  // A fetchImpl that ignores `redirect: 'error'` still must not hand a 3xx body to the caller.
  if ((status >= 300 && status < 400) || response.type === 'opaqueredirect')
    throw redirectRefused(field, label);
  if (status === 404 || status === 410) {
    throw sourceNotFound(field, `${label} answered HTTP ${status}: no such object; check the URI`);
  }
  if (status === 408 || status === 429 || status >= 500) {
    throw sourceUnavailable(
      field,
      `${label} answered HTTP ${status}; retry later`,
      undefined,
      retryAfterMs(response),
    );
  }
  throw invalidSource(
    field,
    `${label} answered HTTP ${status}; check the URI and that the object is publicly readable`,
  );
}

function redirectRefused(field: string, label: string): Error {
  return invalidSource(field, `${label} answered with a redirect, which is not followed; use the final URL`);
}

/** undici reports `redirect: 'error'` as `TypeError('fetch failed', { cause: Error('unexpected redirect') })`. */
function isRedirectError(error: unknown): boolean {
  const cause = error instanceof Error ? error.cause : undefined;
  return cause instanceof Error && /redirect/i.test(cause.message);
}

function retryAfterMs(response: Response): number | undefined {
  const header = response.headers.get('retry-after');
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Streams the body and stops at `maxBytes + 1`: a lying or absent Content-Length cannot exhaust memory. */
async function* readCapped(
  response: Response,
  label: string,
  maxBytes: number,
  field: string,
): AsyncGenerator<Uint8Array> {
  if (response.body === null) throw invalidSource(field, `${label} sent an empty body`);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  let total = 0;
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        throw sourceTooLarge(field, `${label} sent more than the limit of ${maxBytes} bytes`, maxBytes);
      }
      yield value;
    }
    finished = true;
  } finally {
    // Stop the transfer now (an oversized or failing body, or a caller that stopped reading)
    // rather than draining the rest.
    if (!finished) await reader.cancel().catch(() => undefined);
  }
  if (total === 0) throw invalidSource(field, `${label} sent an empty body`);
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * The symlink-aware half of the file-root check: the real path of the target must stay under
 * the real path of the root. The file is opened with O_NOFOLLOW (a link swapped in after
 * `realpath` fails) and O_NONBLOCK (a FIFO cannot hang the read), then checked by handle.
 */
const FILE_CHUNK_BYTES = 1 << 20;

async function* fileChunks(
  path: string,
  policy: MediaSourcePolicy,
  field: string,
  signal: AbortSignal | undefined,
  whole: boolean,
): AsyncGenerator<Uint8Array> {
  const root = await realRoot(policy, field);
  const shown = displayPath(path, policy);
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    throw fileError(error, shown, field);
  }
  if (!isInside(root, real)) {
    throw invalidSource(
      field,
      `${shown} leads (through a symbolic link) outside the media root; name a file inside it`,
    );
  }
  let handle;
  try {
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw fileError(error, shown, field);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw invalidSource(field, `${shown} is not a regular file`);
    const now = await stat(real).catch(() => undefined);
    if (now?.ino !== info.ino || now.dev !== info.dev) {
      throw invalidSource(field, `${shown} changed while it was being opened; retry with a stable file`);
    }
    if (info.size > policy.maxBytes) {
      throw sourceTooLarge(
        field,
        `${shown} is ${info.size} bytes; the limit is ${policy.maxBytes}`,
        policy.maxBytes,
      );
    }
    // Stop at maxBytes + 1 whatever stat said: the file may grow after the check.
    let total = 0;
    for (let reads = 0; ; reads++) {
      signal?.throwIfAborted();
      // Read whole, the first read is sized from stat (one extra byte detects growth); later
      // ones, and every one of a stream, are chunks.
      const want = whole && reads === 0 ? info.size + 1 : FILE_CHUNK_BYTES;
      const chunk = new Uint8Array(Math.min(want, policy.maxBytes + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > policy.maxBytes) {
        throw sourceTooLarge(
          field,
          `${shown} is larger than the limit of ${policy.maxBytes} bytes`,
          policy.maxBytes,
        );
      }
      yield chunk.subarray(0, bytesRead);
    }
    if (total === 0) throw invalidSource(field, `${shown} is empty`);
  } catch (error) {
    if (signal?.aborted === true) throw sourceCancelled(field, error);
    if (isDomainError(error)) throw error;
    throw fileError(error, shown, field);
  } finally {
    await handle.close();
  }
}

async function realRoot(policy: MediaSourcePolicy, field: string): Promise<string> {
  try {
    return await realpath(policy.fileRoot ?? '');
  } catch (error) {
    // The mount may be coming back (a volume re-attaching): transient, not the client's fault.
    throw sourceUnavailable(
      field,
      'the media root is not accessible on this server right now; retry later',
      error,
    );
  }
}

function fileError(error: unknown, shown: string, field: string): Error {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return sourceNotFound(field, `no file ${shown} under the media root; check the path`);
    case 'ELOOP':
      return invalidSource(field, `${shown} is a symbolic link loop or was replaced by a link while opening`);
    case 'EACCES':
    case 'EPERM':
      return invalidSource(field, `${shown} is not readable by this service; fix its permissions`);
    case 'EISDIR':
      return invalidSource(field, `${shown} is not a regular file`);
    default:
      return sourceUnavailable(field, `reading ${shown} failed (${describe(error)}); retry later`, error);
  }
}

function isInside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Paths in messages are relative to the root: clients need not learn the server's layout. */
function displayPath(path: string, policy: MediaSourcePolicy): string {
  return JSON.stringify(relative(policy.fileRoot ?? '/', path));
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}
