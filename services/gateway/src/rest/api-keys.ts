import { createHash, timingSafeEqual } from 'node:crypto';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';

/** A configured key: the secret itself, or only its sha256 (hex) so the config holds no secret. */
export type ApiKeyEntry =
  { readonly id: string; readonly key: string } | { readonly id: string; readonly sha256: string };

/** Who a request is from. */
export interface ApiPrincipal {
  /** The tenant id of the key, or {@link ANONYMOUS_TENANT}. */
  readonly tenant: string;
  /** True when no key was checked (keys not required and none sent, or none configured). */
  readonly anonymous: boolean;
}

/** Tenant of unauthenticated requests where keys are not required (a laptop, CI). */
export const ANONYMOUS_TENANT = 'local';

/** Shortest plaintext key accepted: guessable keys would make the check pointless. */
export const MIN_KEY_LENGTH = 16;

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const HOW_TO_SEND = 'send it as "Authorization: Bearer <key>" or "x-api-key: <key>"';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function configError(field: string, message: string): DomainError {
  return new DomainError(ErrorCode.InvalidInput, `${field}: ${message}`, { field });
}

function unauthenticated(message: string): DomainError {
  return new DomainError(ErrorCode.Unauthenticated, message);
}

export interface ApiKeyAuthenticatorOptions {
  readonly keys: readonly ApiKeyEntry[];
  /** Refuse requests without a key. When false they run as tenant "local". */
  readonly required: boolean;
}

/**
 * Checks API keys. Keys are compared as sha256 digests with timingSafeEqual, against every
 * configured key without stopping at a match, so neither the secret nor which entry matched
 * leaks through response time; plaintext keys are hashed once at construction.
 *
 * With `required: false` a request without a key is anonymous, but a key that IS sent must be
 * valid whenever keys are configured (a typo should not silently downgrade to anonymous). With
 * no keys configured at all, sent keys are ignored: stock OpenAI SDKs insist on sending one.
 */
export class ApiKeyAuthenticator {
  private readonly entries: readonly { readonly tenant: string; readonly digest: Buffer }[];
  private readonly required: boolean;

  constructor(options: ApiKeyAuthenticatorOptions) {
    const seen = new Map<string, string>();
    this.entries = options.keys.map((entry, i) => {
      const field = `keys[${i}]`;
      if (!TENANT_ID.test(entry.id)) {
        throw configError(
          `${field}.id`,
          'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
        );
      }
      let digest: Buffer;
      if ('key' in entry) {
        if (entry.key.length < MIN_KEY_LENGTH) {
          throw configError(
            `${field}.key`,
            `the key of tenant "${entry.id}" is shorter than ${MIN_KEY_LENGTH} characters; use a random one, e.g. from "openssl rand -hex 32"`,
          );
        }
        digest = sha256(entry.key);
      } else {
        const hex = entry.sha256.toLowerCase();
        if (!SHA256_HEX.test(hex)) {
          throw configError(
            `${field}.sha256`,
            `the hash of tenant "${entry.id}" must be 64 hex digits (sha256)`,
          );
        }
        digest = Buffer.from(hex, 'hex');
      }
      const owner = seen.get(digest.toString('hex'));
      if (owner !== undefined) {
        throw configError(
          field,
          `tenant "${entry.id}" has the same key as tenant "${owner}"; give each its own key`,
        );
      }
      seen.set(digest.toString('hex'), entry.id);
      return { tenant: entry.id, digest };
    });
    if (options.required && this.entries.length === 0) {
      throw configError('keys', 'API keys are required but none are configured; configure at least one key');
    }
    this.required = options.required;
  }

  /**
   * Authenticates from the `Authorization` header value and/or the `x-api-key` header value.
   * Throws UNAUTHENTICATED saying how to send a key when it is missing, malformed or unknown.
   */
  authenticate(authorization: string | undefined, apiKey?: string): ApiPrincipal {
    const key = presentedKey(authorization, apiKey);
    if (key === undefined) {
      if (this.required) throw unauthenticated(`missing API key; ${HOW_TO_SEND}`);
      return { tenant: ANONYMOUS_TENANT, anonymous: true };
    }
    if (this.entries.length === 0) return { tenant: ANONYMOUS_TENANT, anonymous: true };
    const digest = sha256(key);
    let tenant: string | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest) && tenant === undefined) tenant = entry.tenant;
    }
    if (tenant === undefined) {
      throw unauthenticated(`invalid API key; check the key and ${HOW_TO_SEND}`);
    }
    return { tenant, anonymous: false };
  }

  /** The same, from Node's request headers (names lower-cased, repeated ones as arrays). */
  authenticateHeaders(
    headers: Readonly<Record<string, string | readonly string[] | undefined>>,
  ): ApiPrincipal {
    return this.authenticate(
      single(headers['authorization'], 'Authorization'),
      single(headers['x-api-key'], 'x-api-key'),
    );
  }
}

function single(value: string | readonly string[] | undefined, name: string): string | undefined {
  if (value === undefined || typeof value === 'string') return value;
  if (value.length > 1) throw unauthenticated(`${name} was sent ${value.length} times; send one key, once`);
  return value[0];
}

function presentedKey(authorization: string | undefined, apiKey: string | undefined): string | undefined {
  let bearer: string | undefined;
  if (authorization !== undefined && authorization.trim() !== '') {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization.trim());
    if (match === null) {
      throw unauthenticated(`the Authorization header must be "Bearer <key>"; ${HOW_TO_SEND}`);
    }
    bearer = match[1];
  }
  const header = apiKey === undefined || apiKey.trim() === '' ? undefined : apiKey.trim();
  if (bearer !== undefined && header !== undefined && bearer !== header) {
    throw unauthenticated(
      'Authorization and x-api-key carry different keys; send the key in only one of them',
    );
  }
  return bearer ?? header;
}

/**
 * Parses keys from one environment value: comma-separated `tenant:key` entries, or
 * `tenant:sha256:<64 hex digits>` to store only the hash (`printf %s "$KEY" | sha256sum`).
 * Only the first ":" separates the tenant, so a key may contain ":" but not ",", nor start with
 * "sha256:" (that reads as a hash). Messages name the entry by position and tenant, never the
 * secret.
 */
export function keysFromEnv(value: string, source = 'API keys'): ApiKeyEntry[] {
  const entries: ApiKeyEntry[] = [];
  value.split(',').forEach((raw, i) => {
    const item = raw.trim();
    if (item === '') return;
    const colon = item.indexOf(':');
    const where = `${source} entry ${i + 1}`;
    if (colon <= 0 || colon === item.length - 1) {
      throw configError(where, 'must look like tenant:key or tenant:sha256:<64 hex digits>');
    }
    const id = item.slice(0, colon);
    const secret = item.slice(colon + 1);
    if (!TENANT_ID.test(id)) {
      throw configError(
        where,
        'the tenant must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit',
      );
    }
    if (secret.toLowerCase().startsWith('sha256:')) {
      const hex = secret.slice('sha256:'.length).toLowerCase();
      if (!SHA256_HEX.test(hex)) {
        throw configError(where, `the sha256 of tenant "${id}" must be 64 hex digits`);
      }
      entries.push({ id, sha256: hex });
    } else {
      entries.push({ id, key: secret });
    }
  });
  return entries;
}
