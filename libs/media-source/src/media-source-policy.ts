import { isAbsolute } from 'node:path';
import { isBlockedAddress, isIpLiteral, isLoopbackName } from './address-guard';

/** An S3-compatible object store (MinIO, R2, S3 path-style) the operator trusts. */
export interface ObjectStorePolicy {
  readonly scheme: 's3';
  /**
   * https base URL, e.g. `https://minio.internal:9000` or `https://gw.example.com/s3`. Objects are
   * fetched as `<endpoint>/<bucket>/<key>`. Operator configuration, so it is trusted: unlike
   * client URLs it may point at a private address.
   */
  readonly endpoint: string;
  /** Buckets clients may name; any other bucket is refused before anything is fetched. */
  readonly buckets: readonly string[];
  /** Sent with every object-store request, e.g. `{ authorization: 'Bearer …' }`. Never logged. */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Where media may come from. Everything not allowed here is refused: there is no "allow all".
 * Treat a policy as immutable once used (it is validated once and remembered).
 */
export interface MediaSourcePolicy {
  /** https hosts clients may name: `example.com` exactly, `*.example.com` any subdomain of it. Empty: https refused. */
  readonly allowedHosts: readonly string[];
  /** Absolute directory that file sources are confined to. Unset: file sources refused. */
  readonly fileRoot?: string;
  /** Unset: `s3://` sources refused. */
  readonly objectStore?: ObjectStorePolicy;
  /** Largest source read, in bytes; larger ones fail with PAYLOAD_TOO_LARGE. */
  readonly maxBytes: number;
  /** Budget for one remote read (DNS, connect, headers and body together), in milliseconds. */
  readonly timeoutMs: number;
  /** Test hook: resolves a host name to all its addresses. Default: `dns.lookup(host, { all: true })`. */
  readonly resolve?: (hostname: string) => Promise<readonly string[]>;
  /** Test hook: the fetch used for https and object-store reads. Default: global `fetch`. */
  readonly fetchImpl?: typeof fetch;
}

/** S3 bucket naming rules (3–63 chars, lower case, digits, dots, hyphens). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function isValidBucketName(name: string): boolean {
  return BUCKET_NAME.test(name) && !name.includes('..');
}

const validated = new WeakSet<MediaSourcePolicy>();

/**
 * Throws (a plain Error: this is a deployment mistake, not a client one) when the policy is
 * unusable, listing every problem and what to set. Call it at boot; `checkSource` and
 * `readSource` call it too, so a bad policy fails closed rather than allowing too much.
 */
export function assertValidPolicy(policy: MediaSourcePolicy): void {
  if (validated.has(policy)) return;
  const problems = policyProblems(policy);
  if (problems.length > 0) {
    throw new Error(`invalid media source policy: ${problems.join('; ')}`);
  }
  validated.add(policy);
}

/**
 * Every problem of a policy, one string each starting with the policy field it is about
 * (`allowedHosts[1] ("127.0.0.1") is a private ...`), so a service can name its own variable.
 */
export function policyProblems(policy: MediaSourcePolicy): string[] {
  const problems: string[] = [];
  if (!Number.isSafeInteger(policy.maxBytes) || policy.maxBytes <= 0) {
    problems.push(`maxBytes must be a positive integer, got ${String(policy.maxBytes)}`);
  }
  if (!Number.isFinite(policy.timeoutMs) || policy.timeoutMs <= 0) {
    problems.push(`timeoutMs must be a positive number, got ${String(policy.timeoutMs)}`);
  }
  policy.allowedHosts.forEach((entry, i) => {
    const problem = allowedHostProblem(entry);
    if (problem !== undefined) problems.push(`allowedHosts[${i}] (${JSON.stringify(entry)}) ${problem}`);
  });
  if (policy.fileRoot !== undefined && !isAbsolute(policy.fileRoot)) {
    problems.push(`fileRoot must be an absolute directory path, got ${JSON.stringify(policy.fileRoot)}`);
  }
  if (policy.objectStore !== undefined) problems.push(...objectStoreProblems(policy.objectStore));
  return problems;
}

function allowedHostProblem(entry: string): string | undefined {
  const wildcard = entry.startsWith('*.');
  const host = wildcard ? entry.slice(2) : entry;
  if (host === '' || host.includes('*')) return 'must be a host name, optionally prefixed by "*."';
  let parsed: URL;
  try {
    parsed = new URL(`https://${host}`);
  } catch {
    return 'is not a valid host name';
  }
  // The URL parser lower-cases, punycodes and strips ports, paths and credentials: any difference
  // means the entry is not the bare host name it will be compared against.
  if (parsed.hostname !== host) {
    return `must be a bare lower-case host name without scheme, port or path (IDNs in punycode: ${parsed.hostname})`;
  }
  if (isIpLiteral(host)) {
    if (wildcard) return 'a wildcard cannot apply to an IP address';
    if (isBlockedAddress(host)) return 'is a private, loopback or reserved address, which is never fetched';
  }
  if (isLoopbackName(host)) return 'is a loopback name, which is never fetched';
  return undefined;
}

function objectStoreProblems(store: ObjectStorePolicy): string[] {
  const problems: string[] = [];
  if (store.scheme !== 's3')
    problems.push(`objectStore.scheme must be "s3", got ${JSON.stringify(store.scheme)}`);
  let endpoint: URL | undefined;
  try {
    endpoint = new URL(store.endpoint);
  } catch {
    problems.push(`objectStore.endpoint must be an https base URL, got ${JSON.stringify(store.endpoint)}`);
  }
  if (endpoint !== undefined) {
    if (endpoint.protocol !== 'https:') problems.push('objectStore.endpoint must use https');
    if (endpoint.username !== '' || endpoint.password !== '') {
      problems.push('objectStore.endpoint must not embed credentials; send them in objectStore.headers');
    }
    if (endpoint.search !== '' || endpoint.hash !== '') {
      problems.push('objectStore.endpoint must not have a query or fragment');
    }
  }
  if (store.buckets.length === 0) problems.push('objectStore.buckets must list at least one bucket');
  store.buckets.forEach((bucket, i) => {
    if (!isValidBucketName(bucket)) {
      problems.push(`objectStore.buckets[${i}] (${JSON.stringify(bucket)}) is not a valid bucket name`);
    }
  });
  return problems;
}
