import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { assertValidPolicy, checkSource, type MediaSourcePolicy } from './index';

const ROOT = '/srv/media';
const FIELD = 'items[3].uri';

function policy(overrides: Partial<MediaSourcePolicy> = {}): MediaSourcePolicy {
  return {
    allowedHosts: ['media.example.com', '*.cdn.example.org'],
    fileRoot: ROOT,
    maxBytes: 1024,
    timeoutMs: 1000,
    ...overrides,
  };
}

const withStore = (): MediaSourcePolicy =>
  policy({
    objectStore: { scheme: 's3', endpoint: 'https://minio.internal:9000/', buckets: ['media-in', 'archive'] },
  });

function refusal(uri: string, p: MediaSourcePolicy = policy()): DomainError {
  try {
    checkSource(uri, p, FIELD);
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(uri)} to be refused`);
}

function expectInvalid(uri: string, fragment: RegExp, p: MediaSourcePolicy = policy()): void {
  const error = refusal(uri, p);
  expect(error.code, uri).toBe(ErrorCode.InvalidInput); // INVALID_ARGUMENT on the wire, as the issue demands
  expect(error.details.field, uri).toBe(FIELD);
  expect(error.message, uri).toMatch(new RegExp(`^items\\[3\\]\\.uri: `));
  expect(error.message, uri).toMatch(fragment);
}

describe('checkSource: files', () => {
  it('resolves bare relative paths, absolute paths and file URIs under the root', () => {
    expect(checkSource('clips/a.mp4', policy(), FIELD)).toEqual({
      kind: 'file',
      path: '/srv/media/clips/a.mp4',
    });
    expect(checkSource('./a.jpg', policy(), FIELD)).toEqual({ kind: 'file', path: '/srv/media/a.jpg' });
    expect(checkSource('/srv/media/x/y.wav', policy(), FIELD)).toEqual({
      kind: 'file',
      path: '/srv/media/x/y.wav',
    });
    expect(checkSource('file:///srv/media/a%20b.png', policy(), FIELD)).toEqual({
      kind: 'file',
      path: '/srv/media/a b.png',
    });
    expect(checkSource('file://localhost/srv/media/a.png', policy(), FIELD)).toEqual({
      kind: 'file',
      path: '/srv/media/a.png',
    });
    expect(checkSource('sub/a:b.png', policy(), FIELD)).toEqual({
      kind: 'file',
      path: '/srv/media/sub/a:b.png',
    });
  });

  it.each([
    ['../x', /"\.\." segment/],
    ['a/../../x', /"\.\." segment/],
    ['a/../b', /"\.\." segment/], // even when it would stay inside: no resolution order can escape
    ['..', /"\.\." segment/],
    ['%2e%2e/x', /percent-encoded/],
    ['%2E%2e/x', /percent-encoded/],
    ['a%2fb', /percent-encoded/],
    ['..\\x', /backslash/],
    ['a\\..\\..\\x', /backslash/],
    ['a\0.jpg', /control character/],
    ['a\n.jpg', /control character/],
    [' a.jpg', /whitespace/],
    ['/etc/passwd', /outside the media root/],
    ['/srv/media-other/x', /outside the media root/], // prefix of the root is not inside it
    ['/srv/media', /root directory itself/],
    ['.', /root directory itself/],
    ['file:///etc/passwd', /outside the media root/],
    [`file://${ROOT}/../x`, /"\.\." segment/],
    [`file://${ROOT}/%2e%2e/x`, /percent-encoded/],
    [`file://${ROOT}/.%2E/x`, /percent-encoded/],
    [`file://${ROOT}/a%00.jpg`, /percent-encoded/],
    [`file://${ROOT}/a%0a.jpg`, /control character/],
    [`file://${ROOT}/a%zz.jpg`, /malformed percent-encoding/],
    [`file://${ROOT}/a.jpg?x=1`, /no query or fragment/],
    ['file://evil.example.com/srv/media/a.jpg', /may not name a host/],
    ['file:clips/a.jpg', /absolute path/],
    ['c:foo.png', /the c: scheme is not accepted.*\.\/name/],
  ])('refuses %j', (uri, fragment) => {
    expectInvalid(uri, fragment);
  });

  it('refuses every file source when no root is configured', () => {
    const noRoot = policy({ fileRoot: undefined });
    expectInvalid('clips/a.mp4', /file sources are disabled/, noRoot);
    expectInvalid('file:///srv/media/a.mp4', /file sources are disabled/, noRoot);
  });
});

describe('checkSource: https', () => {
  it('accepts allow-listed hosts, exact and by wildcard, and normalises the URL', () => {
    expect(checkSource('https://media.example.com/a.jpg', policy(), FIELD)).toEqual({
      kind: 'https',
      url: 'https://media.example.com/a.jpg',
    });
    expect(checkSource('HTTPS://Media.Example.COM./a.jpg', policy(), FIELD)).toEqual({
      kind: 'https',
      url: 'https://media.example.com./a.jpg',
    });
    expect(checkSource('https://eu.a.cdn.example.org/x.png?v=2', policy(), FIELD).kind).toBe('https');
  });

  it.each([
    '127.0.0.1',
    '10.0.0.1',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '0x7f.1', // the URL parser turns this into 127.0.0.1
    '2130706433', // and this
    '[::1]',
    '[::]',
    '[fe80::1]',
    '[fc00::1]',
    '[ff02::1]',
    '[::ffff:127.0.0.1]',
    '[::ffff:10.0.0.1]',
    '[64:ff9b::7f00:1]',
    '[2002:7f00:1::]',
  ])('refuses the private or reserved literal %s', (host) => {
    // Even an operator who allow-listed the literal cannot open these.
    expectInvalid(
      `https://${host}/a.jpg`,
      /private, loopback, link-local or reserved/,
      policy({ allowedHosts: ['*.x.test'] }),
    );
  });

  it.each([
    [
      'https://evil.example.net/a.jpg',
      /not on the allow-list \(media\.example\.com, \*\.cdn\.example\.org\)/,
    ],
    ['https://cdn.example.org/a.jpg', /not on the allow-list/], // the wildcard does not cover the apex
    ['https://evilcdn.example.org/a.jpg', /not on the allow-list/],
    ['https://media.example.com.evil.net/a.jpg', /not on the allow-list/],
    ['https://user:pw@media.example.com/a.jpg', /credentials/],
    ['https://user@media.example.com/a.jpg', /credentials/],
    ['https://localhost/a.jpg', /loopback name/],
    ['https://api.localhost/a.jpg', /loopback name/],
    ['https:media.example.com/a.jpg', /absolute https:\/\/ URL/],
    ['https://media.example.com\\@evil.net/', /backslash/],
    ['https://exa mple.com/', /not a valid https/],
    ['http://media.example.com/a.jpg', /plain http:\/\/ is not accepted; use https/],
    ['ftp://media.example.com/a.jpg', /the ftp: scheme is not accepted/],
    ['data:image/png;base64,AAAA', /data: URIs are not accepted/],
    ['gopher://media.example.com/', /the gopher: scheme is not accepted/],
  ])('refuses %j', (uri, fragment) => {
    expectInvalid(uri, fragment);
  });

  it('refuses https entirely when nothing is allow-listed', () => {
    expectInvalid(
      'https://media.example.com/a.jpg',
      /https sources are disabled/,
      policy({ allowedHosts: [] }),
    );
  });

  it('accepts a public IP literal only when it is allow-listed', () => {
    const p = policy({ allowedHosts: ['93.184.216.34'] });
    expect(checkSource('https://93.184.216.34/a.jpg', p, FIELD).kind).toBe('https');
    expectInvalid('https://93.184.216.35/a.jpg', /not on the allow-list/, p);
  });
});

describe('checkSource: s3', () => {
  it('is disabled without an object store', () => {
    expectInvalid('s3://media-in/a.jpg', /s3:\/\/ sources are disabled/);
  });

  it('maps an allowed bucket to <endpoint>/<bucket>/<key>, re-encoding the key', () => {
    expect(checkSource('s3://media-in/2024/a%20b.jpg', withStore(), FIELD)).toEqual({
      kind: 's3',
      bucket: 'media-in',
      key: '2024/a b.jpg',
      url: 'https://minio.internal:9000/media-in/2024/a%20b.jpg',
    });
  });

  it.each([
    ['s3://other/a.jpg', /bucket "other" is not one this service reads \(media-in, archive\)/],
    ['s3://media-in/../archive/a.jpg', /"\." or "\.\." segment/],
    ['s3://media-in/a/%2e%2e/%2e%2e/archive/x', /"\." or "\.\." segment/],
    ['s3://media-in/a/%2E/x', /"\." or "\.\." segment/],
    ['s3://media-in/', /names no object key/],
    ['s3://media-in', /s3:\/\/<bucket>\/<key>/],
    ['s3://media-in/a.jpg?versionId=1', /no query or fragment/],
    ['s3://media-in/a%zz', /malformed percent-encoding/],
    ['s3://media-in/a%00b', /control characters/],
  ])('refuses %j', (uri, fragment) => {
    expectInvalid(uri, fragment, withStore());
  });
});

describe('policy validation', () => {
  it('names every misconfiguration at once', () => {
    const bad = {
      allowedHosts: ['https://a.com', 'A.com', '*.', '127.0.0.1', 'localhost', '*.1.2.3.4', 'b.com:8443'],
      fileRoot: 'relative/root',
      objectStore: { scheme: 's3', endpoint: 'http://u:p@minio/?x', buckets: ['Bad_Bucket'] },
      maxBytes: 0,
      timeoutMs: -1,
    } as const satisfies MediaSourcePolicy;
    let message = '';
    try {
      assertValidPolicy(bad);
    } catch (error) {
      message = (error as Error).message;
    }
    for (const part of [
      'maxBytes must be a positive integer',
      'timeoutMs must be a positive number',
      'allowedHosts[0]',
      'allowedHosts[1]',
      'allowedHosts[2]',
      'allowedHosts[3] ("127.0.0.1") is a private',
      'allowedHosts[4] ("localhost") is a loopback name',
      'allowedHosts[5] ("*.1.2.3.4") a wildcard cannot apply',
      'allowedHosts[6]',
      'fileRoot must be an absolute directory path',
      'objectStore.endpoint must use https',
      'must not embed credentials',
      'must not have a query',
      'objectStore.buckets[0] ("Bad_Bucket")',
    ]) {
      expect(message).toContain(part);
    }
  });

  it('fails closed: checkSource refuses to run on a bad policy', () => {
    expect(() => checkSource('a.jpg', policy({ fileRoot: 'rel' }), FIELD)).toThrow(
      /invalid media source policy/,
    );
  });
});
