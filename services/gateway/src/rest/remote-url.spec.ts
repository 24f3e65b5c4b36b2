import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { describe, expect, it } from 'vitest';
import { isBlockedAddress, isHostAllowed, validateRemoteUrl } from './remote-url';

const PATH = 'messages[0].content[0].image_url.url';

function refusal(url: string, allowed: readonly string[]): string {
  try {
    validateRemoteUrl(url, PATH, allowed);
  } catch (e) {
    if (!(e instanceof DomainError)) throw e;
    expect(e.code).toBe(ErrorCode.InvalidInput);
    expect(e.details.field).toBe(PATH);
    return e.message;
  }
  throw new Error(`expected ${url} to be refused`);
}

describe('validateRemoteUrl', () => {
  const allowed = ['media.example.com', '*.cdn.example.org'];

  it('accepts https URLs on allow-listed hosts and returns them normalised', () => {
    expect(validateRemoteUrl('https://Media.Example.com/a b.jpg', PATH, allowed)).toBe(
      'https://media.example.com/a%20b.jpg',
    );
    expect(validateRemoteUrl('https://eu.cdn.example.org:8443/x.png?v=1', PATH, allowed)).toBe(
      'https://eu.cdn.example.org:8443/x.png?v=1',
    );
  });

  it('matches wildcard entries on subdomains only, and ignores a trailing dot', () => {
    expect(isHostAllowed('a.b.cdn.example.org', allowed)).toBe(true);
    expect(isHostAllowed('cdn.example.org', allowed)).toBe(false);
    expect(isHostAllowed('evilcdn.example.org', allowed)).toBe(false);
    expect(isHostAllowed('media.example.com.', allowed)).toBe(true);
    expect(isHostAllowed('media.example.com.evil.net', allowed)).toBe(false);
  });

  it.each([
    ['http://media.example.com/a.jpg', 'the http scheme is not accepted'],
    ['file:///etc/passwd', 'the file scheme is not accepted'],
    ['ftp://media.example.com/a.jpg', 'the ftp scheme is not accepted'],
    ['https://user:secret@media.example.com/a.jpg', 'must not contain credentials'],
    ['https://other.example.com/a.jpg', 'host other.example.com is not on the allow-list'],
    ['not a url', 'is not a valid URL'],
  ])('refuses %s', (url, message) => {
    expect(refusal(url, allowed)).toContain(`${PATH}: ${message}`);
  });

  it.each([
    ['https://127.0.0.1/x', '127.0.0.1'],
    ['https://127.1/x', '127.0.0.1'],
    ['https://2130706433/x', '127.0.0.1'],
    ['https://0x7f000001/x', '127.0.0.1'],
    ['https://10.1.2.3/x', '10.1.2.3'],
    ['https://192.168.0.10/x', '192.168.0.10'],
    ['https://172.16.5.4/x', '172.16.5.4'],
    ['https://169.254.169.254/latest/meta-data', '169.254.169.254'],
    ['https://100.64.0.1/x', '100.64.0.1'],
    ['https://0.0.0.0/x', '0.0.0.0'],
    ['https://[::1]/x', '[::1]'],
    ['https://[::ffff:127.0.0.1]/x', '[::ffff:7f00:1]'],
    ['https://[fd12:3456::1]/x', '[fd12:3456::1]'],
    ['https://[fe80::1]/x', '[fe80::1]'],
  ])('refuses the private or loopback address in %s even when allow-listed', (url, host) => {
    // Listing the address must not open it: an operator typo would otherwise expose the pod network.
    const everything = [host, new URL(url).hostname, ...allowed];
    expect(refusal(url, everything)).toContain(`${host} is a private, loopback or reserved address`);
  });

  it('refuses localhost names, and every URL when the allow-list is empty', () => {
    expect(refusal('https://localhost/x', ['localhost'])).toContain('localhost is a loopback name');
    expect(refusal('https://api.localhost/x', ['*.localhost'])).toContain('is a loopback name');
    expect(refusal('https://media.example.com/a.jpg', [])).toContain(
      'remote URLs are disabled on this deployment',
    );
  });

  it('lets an allow-listed public IP literal through', () => {
    expect(validateRemoteUrl('https://[2606:4700::1111]/a.png', PATH, ['[2606:4700::1111]'])).toBe(
      'https://[2606:4700::1111]/a.png',
    );
    expect(validateRemoteUrl('https://93.184.215.14/a.png', PATH, ['93.184.215.14'])).toBe(
      'https://93.184.215.14/a.png',
    );
  });
});

describe('isBlockedAddress', () => {
  it('knows private ranges from public addresses and host names', () => {
    expect(isBlockedAddress('192.168.1.1')).toBe(true);
    expect(isBlockedAddress('172.31.255.255')).toBe(true);
    expect(isBlockedAddress('172.32.0.1')).toBe(false);
    expect(isBlockedAddress('8.8.8.8')).toBe(false);
    expect(isBlockedAddress('::ffff:10.0.0.1')).toBe(true);
    expect(isBlockedAddress('64:ff9b::a00:1')).toBe(true);
    expect(isBlockedAddress('2606:4700::1111')).toBe(false);
    expect(isBlockedAddress('media.example.com')).toBe(false);
  });
});
