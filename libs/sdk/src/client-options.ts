import { isIP } from 'node:net';
import type { ChannelOptions } from '@grpc/grpc-js';
import { ImageBindError } from './image-bind-error';

/** How idempotent calls are retried when the server answers UNAVAILABLE. */
export interface RetryOptions {
  /** Attempts in total, including the first; 1 turns retries off. Default 3. */
  readonly maxAttempts: number;
  /** Backoff before the second attempt; it doubles each attempt, with jitter. Default 100 ms. */
  readonly initialBackoffMs: number;
  /** Cap on one backoff. Default 2000 ms. */
  readonly maxBackoffMs: number;
}

/** TLS settings; `tls: true` uses the system's root certificates. */
export interface TlsOptions {
  /** PEM root certificates to trust instead of the system's. */
  readonly rootCerts?: Buffer;
  /** PEM private key, for mutual TLS. */
  readonly privateKey?: Buffer;
  /** PEM certificate chain, for mutual TLS. */
  readonly certChain?: Buffer;
  /** Name to verify the server certificate against when the addresses are IPs or differ from it. */
  readonly serverName?: string;
}

export interface ImageBindClientOptions {
  /**
   * Gateway address(es): `'host:port'`, a list of them, or one gRPC target such as
   * `'dns:///gateway.example:50051'`. Several addresses are balanced round-robin per call.
   */
  readonly addresses: string | readonly string[];
  /** API key, sent as `authorization: Bearer <key>`. */
  readonly apiKey?: string;
  /** Default deadline of unary calls (embed, search, jobs), covering every retry. Default 30 s. */
  readonly timeoutMs?: number;
  /**
   * Default deadline of streaming calls (generate, batch results), which run much longer than
   * unary ones. Default 5 minutes. `Infinity` means no deadline.
   */
  readonly streamTimeoutMs?: number;
  /** Retries of idempotent calls on UNAVAILABLE. */
  readonly retry?: Partial<RetryOptions>;
  /** Largest message sent or received, in bytes (inline media counts). Default 64 MiB. */
  readonly maxMessageBytes?: number;
  /** TLS: `true` for the system roots, or explicit certificates. Default off (plaintext). */
  readonly tls?: boolean | TlsOptions;
  /** Extra grpc-js channel options, applied last. */
  readonly channelOptions?: ChannelOptions;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_STREAM_TIMEOUT_MS = 5 * 60_000;
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_RETRY: RetryOptions = { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 2_000 };

/** Options after defaults and validation. */
export interface ResolvedOptions {
  readonly targets: readonly string[];
  readonly apiKey: string | undefined;
  readonly timeoutMs: number;
  readonly streamTimeoutMs: number;
  readonly retry: RetryOptions;
  readonly maxMessageBytes: number;
  readonly tls: TlsOptions | undefined;
  readonly channelOptions: ChannelOptions;
}

/** Checks the options and fills in defaults; every refusal says which option to fix. */
export function resolveOptions(options: ImageBindClientOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw ImageBindError.invalidArgument(
      'new ImageBindClient(): pass an options object with `addresses`',
      'options',
    );
  }
  const apiKey = options.apiKey;
  if (apiKey !== undefined && (typeof apiKey !== 'string' || apiKey === '' || /[\r\n]/.test(apiKey))) {
    throw ImageBindError.invalidArgument('apiKey must be a non-empty single-line string', 'apiKey');
  }
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1) {
    throw ImageBindError.invalidArgument(
      `retry.maxAttempts must be an integer >= 1, got ${String(retry.maxAttempts)}`,
      'retry.maxAttempts',
    );
  }
  checkNonNegative(retry.initialBackoffMs, 'retry.initialBackoffMs');
  checkNonNegative(retry.maxBackoffMs, 'retry.maxBackoffMs');
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes <= 0) {
    throw ImageBindError.invalidArgument(
      `maxMessageBytes must be a positive integer, got ${String(maxMessageBytes)}`,
      'maxMessageBytes',
    );
  }
  return {
    targets: buildTargets(options.addresses),
    apiKey,
    timeoutMs: checkTimeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'timeoutMs'),
    streamTimeoutMs: checkTimeout(options.streamTimeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS, 'streamTimeoutMs'),
    retry,
    maxMessageBytes,
    tls:
      options.tls === true
        ? {}
        : options.tls === false || options.tls === undefined
          ? undefined
          : options.tls,
    channelOptions: options.channelOptions ?? {},
  };
}

/** A timeout is a positive number of milliseconds; `Infinity` means none. */
export function checkTimeout(value: unknown, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) {
    throw ImageBindError.invalidArgument(
      `${name} must be a positive number of milliseconds, got ${String(value)}`,
      name,
    );
  }
  return value;
}

function checkNonNegative(value: unknown, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw ImageBindError.invalidArgument(`${name} must be a finite number >= 0, got ${String(value)}`, name);
  }
}

/** Schemes grpc-js resolves itself; such a target is passed through untouched. */
const TARGET_SCHEME = /^(dns|ipv4|ipv6|unix|unix-abstract|xds):/;

/**
 * The channel targets for `addresses`. One entry (or a scheme target) is one channel. A list of
 * IP literals of one family becomes one `ipv4:`/`ipv6:` multi-address target, so grpc-js's
 * round_robin balances it and skips dead backends; a list with host names becomes one channel per
 * name, which the client rotates through per call.
 */
export function buildTargets(addresses: string | readonly string[]): string[] {
  if (typeof addresses === 'string' && TARGET_SCHEME.test(addresses)) return [addresses];
  const list = typeof addresses === 'string' ? addresses.split(',').map((a) => a.trim()) : addresses;
  if (!Array.isArray(list) || list.length === 0) {
    throw ImageBindError.invalidArgument("pass at least one 'host:port' address", 'addresses');
  }
  const parsed = list.map((entry: unknown, i) => {
    const field = typeof addresses === 'string' ? 'addresses' : `addresses[${i}]`;
    if (typeof entry !== 'string' || entry === '') {
      throw ImageBindError.invalidArgument(
        `expected a 'host:port' string, got ${JSON.stringify(entry)}`,
        field,
      );
    }
    if (TARGET_SCHEME.test(entry)) {
      if (list.length > 1) {
        throw ImageBindError.invalidArgument(
          `${JSON.stringify(entry)} is a gRPC target with a scheme; pass it alone, or list plain 'host:port' addresses`,
          field,
        );
      }
      return { target: entry, family: 0 };
    }
    return parseHostPort(entry, field);
  });
  if (parsed.length === 1) return [parsed[0]!.target];
  const family = parsed[0]!.family;
  if (family !== 0 && parsed.every((p) => p.family === family)) {
    return [`ipv${family}:${parsed.map((p) => p.target).join(',')}`];
  }
  return parsed.map((p) => p.target);
}

interface HostPort {
  readonly target: string;
  /** 4 or 6 for IP literals, 0 for names. */
  readonly family: number;
}

function parseHostPort(entry: string, field: string): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(entry);
  const port = Number(match?.[3]);
  const host = match?.[1] ?? match?.[2];
  if (match === null || host === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) {
    throw ImageBindError.invalidArgument(
      `address ${JSON.stringify(entry)} is not 'host:port' (e.g. 'gateway.example:50051', '127.0.0.1:50051', '[::1]:50051')`,
      field,
    );
  }
  const family = isIP(host);
  if (match[1] !== undefined && family !== 6) {
    throw ImageBindError.invalidArgument(
      `brackets are for IPv6 addresses, got ${JSON.stringify(entry)}`,
      field,
    );
  }
  return { target: entry, family };
}
