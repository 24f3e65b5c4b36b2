import { createHash } from 'node:crypto';
import { ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { ANONYMOUS_TENANT, ApiKeyAuthenticator, keysFromEnv } from './api-keys';
import { domainErrorOf } from '@imagebind-llm/testing';

const ACME_KEY = 'sk-acme-0123456789abcdef';
const BETA_KEY = 'sk-beta-fedcba9876543210';
const betaHash = createHash('sha256').update(BETA_KEY).digest('hex');

describe('ApiKeyAuthenticator', () => {
  const auth = new ApiKeyAuthenticator({
    keys: [
      { id: 'acme', key: ACME_KEY },
      { id: 'beta', sha256: betaHash.toUpperCase() },
    ],
    required: true,
  });

  it('recognises a plaintext key from the Bearer header and a hashed one from x-api-key', () => {
    expect(auth.authenticate(`Bearer ${ACME_KEY}`)).toEqual({ tenant: 'acme', anonymous: false });
    expect(auth.authenticate(`bearer   ${ACME_KEY} `)).toEqual({ tenant: 'acme', anonymous: false });
    expect(auth.authenticate(undefined, BETA_KEY)).toEqual({ tenant: 'beta', anonymous: false });
    expect(auth.authenticateHeaders({ 'x-api-key': BETA_KEY, host: 'gw' })).toEqual({
      tenant: 'beta',
      anonymous: false,
    });
  });

  it('refuses a missing key with UNAUTHENTICATED saying how to send one', () => {
    const e = domainErrorOf(() => auth.authenticate(undefined));
    expect(e.code).toBe(ErrorCode.Unauthenticated);
    expect(e.httpStatus).toBe(401);
    expect(e.message).toBe('missing API key; send it as "Authorization: Bearer <key>" or "x-api-key: <key>"');
  });

  it('refuses a wrong key without echoing it', () => {
    const e = domainErrorOf(() => auth.authenticate('Bearer sk-acme-0123456789abcdeX'));
    expect(e.code).toBe(ErrorCode.Unauthenticated);
    expect(e.message).toContain('invalid API key');
    expect(e.message).not.toContain('sk-acme');
    // The hash itself is not a key.
    expect(domainErrorOf(() => auth.authenticate(`Bearer ${betaHash}`)).code).toBe(ErrorCode.Unauthenticated);
  });

  it('refuses other schemes, conflicting headers and repeated headers', () => {
    expect(domainErrorOf(() => auth.authenticate(`Basic ${ACME_KEY}`)).message).toContain(
      'the Authorization header must be "Bearer <key>"',
    );
    expect(domainErrorOf(() => auth.authenticate(`Bearer ${ACME_KEY}`, BETA_KEY)).message).toContain(
      'Authorization and x-api-key carry different keys',
    );
    expect(
      domainErrorOf(() => auth.authenticateHeaders({ 'x-api-key': [ACME_KEY, BETA_KEY] })).message,
    ).toContain('x-api-key was sent 2 times');
    expect(auth.authenticate(`Bearer ${ACME_KEY}`, ACME_KEY).tenant).toBe('acme');
  });

  it('lets keyless requests through as "local" when keys are optional, but still checks a sent key', () => {
    const optional = new ApiKeyAuthenticator({ keys: [{ id: 'acme', key: ACME_KEY }], required: false });
    expect(optional.authenticate(undefined)).toEqual({ tenant: ANONYMOUS_TENANT, anonymous: true });
    expect(optional.authenticate(`Bearer ${ACME_KEY}`)).toEqual({ tenant: 'acme', anonymous: false });
    expect(domainErrorOf(() => optional.authenticate('Bearer sk-typo-typo-typo-typo')).code).toBe(
      ErrorCode.Unauthenticated,
    );
    // No keys at all: SDK placeholder keys are ignored.
    const open = new ApiKeyAuthenticator({ keys: [], required: false });
    expect(open.authenticate('Bearer sk-placeholder')).toEqual({ tenant: 'local', anonymous: true });
  });

  it('refuses a configuration that cannot work, naming the entry but never the secret', () => {
    expect(domainErrorOf(() => new ApiKeyAuthenticator({ keys: [], required: true })).message).toContain(
      'API keys are required but none are configured',
    );
    const short = domainErrorOf(
      () => new ApiKeyAuthenticator({ keys: [{ id: 'acme', key: 'short' }], required: true }),
    );
    expect(short.message).toContain('keys[0].key: the key of tenant "acme" is shorter than 16 characters');
    expect(short.message).not.toContain('short"');
    const dup = domainErrorOf(
      () =>
        new ApiKeyAuthenticator({
          keys: [
            { id: 'a', key: BETA_KEY },
            { id: 'b', sha256: betaHash },
          ],
          required: true,
        }),
    );
    expect(dup.message).toContain('tenant "b" has the same key as tenant "a"');
    expect(
      domainErrorOf(() => new ApiKeyAuthenticator({ keys: [{ id: 'x', sha256: 'abc' }], required: true }))
        .message,
    ).toContain('keys[0].sha256');
    expect(
      domainErrorOf(
        () => new ApiKeyAuthenticator({ keys: [{ id: 'bad id', key: ACME_KEY }], required: true }),
      ).message,
    ).toContain('keys[0].id');
  });
});

describe('keysFromEnv', () => {
  it('parses plaintext and hashed entries, keeping colons inside keys', () => {
    expect(keysFromEnv(` acme:${ACME_KEY}, beta:sha256:${betaHash},ops:a:b:c:d:e:f:g:h:i ,`)).toEqual([
      { id: 'acme', key: ACME_KEY },
      { id: 'beta', sha256: betaHash },
      { id: 'ops', key: 'a:b:c:d:e:f:g:h:i' },
    ]);
    expect(keysFromEnv('')).toEqual([]);
  });

  it('rejects malformed entries by position and tenant, without printing the secret', () => {
    expect(domainErrorOf(() => keysFromEnv(`acme:${ACME_KEY},justakey`)).message).toBe(
      'API keys entry 2: must look like tenant:key or tenant:sha256:<64 hex digits>',
    );
    expect(domainErrorOf(() => keysFromEnv('acme:')).message).toContain('API keys entry 1');
    const badHash = domainErrorOf(() => keysFromEnv('beta:sha256:xyz', 'GATEWAY_API_KEYS'));
    expect(badHash.message).toBe(
      'GATEWAY_API_KEYS entry 1: the sha256 of tenant "beta" must be 64 hex digits',
    );
    expect(domainErrorOf(() => keysFromEnv(`bad tenant:${ACME_KEY}`)).message).not.toContain(ACME_KEY);
  });

  it('feeds the authenticator', () => {
    const auth = new ApiKeyAuthenticator({ keys: keysFromEnv(`beta:sha256:${betaHash}`), required: true });
    expect(auth.authenticate(`Bearer ${BETA_KEY}`).tenant).toBe('beta');
  });
});
