import { BlockList, isIP } from 'node:net';
import { invalidAt } from './json-reader';

/**
 * Addresses a request may never make the gateway fetch: loopback, private, link-local (cloud
 * metadata lives at 169.254.169.254), carrier-grade NAT, multicast, reserved and documentation
 * ranges, and IPv6 forms that embed an IPv4 address (NAT64, 6to4, Teredo). IPv4-mapped IPv6
 * (`::ffff:127.0.0.1`) is matched against the IPv4 rules by BlockList itself.
 */
const BLOCKED_ADDRESSES = ((): BlockList => {
  const list = new BlockList();
  const v4: readonly [string, number][] = [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.0.2.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['198.51.100.0', 24],
    ['203.0.113.0', 24],
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ];
  const v6: readonly [string, number][] = [
    ['::', 96], // unspecified, loopback and the deprecated IPv4-compatible form
    ['64:ff9b::', 96],
    ['100::', 64],
    ['2001::', 32],
    ['2001:db8::', 32],
    ['2002::', 16],
    ['fc00::', 7],
    ['fe80::', 10],
    ['ff00::', 8],
  ];
  for (const [net, prefix] of v4) list.addSubnet(net, prefix, 'ipv4');
  for (const [net, prefix] of v6) list.addSubnet(net, prefix, 'ipv6');
  return list;
})();

/** Whether an IP literal is one the gateway must never fetch from. Not an IP literal → false. */
export function isBlockedAddress(address: string): boolean {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const family = isIP(bare);
  if (family === 0) return false;
  return BLOCKED_ADDRESSES.check(bare, family === 4 ? 'ipv4' : 'ipv6');
}

function normaliseHost(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Allow-list match: an entry `example.com` matches that host exactly; `*.example.com` matches
 * any subdomain of it (not the apex, which needs its own entry). IP literals match exactly,
 * IPv6 ones written with brackets as in a URL (`[2606:4700::1111]`).
 */
export function isHostAllowed(hostname: string, allowedHosts: readonly string[]): boolean {
  const host = normaliseHost(hostname);
  return allowedHosts.some((raw) => {
    const entry = normaliseHost(raw.trim());
    if (entry.startsWith('*.')) return host.endsWith(entry.slice(1)) && host.length > entry.length - 1;
    return host === entry;
  });
}

/**
 * Checks a client-supplied media URL before anything fetches it and returns it normalised.
 * Only https to an allow-listed host, without credentials, and never a private or loopback IP
 * literal. This only vets the text of the URL: the fetcher must still refuse redirects off the
 * allow-list and re-check the address a host name resolves to (DNS can point anywhere).
 */
export function validateRemoteUrl(raw: string, path: string, allowedHosts: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidAt(path, 'is not a valid URL; send an https:// URL or a base64 data: URL');
  }
  if (url.protocol !== 'https:') {
    throw invalidAt(
      path,
      `the ${url.protocol.replace(/:$/, '')} scheme is not accepted; use an https:// URL on the allow-list or inline the bytes as a base64 data: URL`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw invalidAt(
      path,
      'must not contain credentials (user:password@); host the file where it can be fetched without them',
    );
  }
  const host = normaliseHost(url.hostname);
  if (isBlockedAddress(host)) {
    throw invalidAt(
      path,
      `${host} is a private, loopback or reserved address; the gateway never fetches from those`,
    );
  }
  if (host === 'localhost' || host.endsWith('.localhost')) {
    throw invalidAt(path, `${host} is a loopback name; the gateway never fetches from it`);
  }
  if (allowedHosts.length === 0) {
    throw invalidAt(
      path,
      'remote URLs are disabled on this deployment; inline the bytes as a base64 data: URL',
    );
  }
  if (!isHostAllowed(host, allowedHosts)) {
    throw invalidAt(
      path,
      `host ${host} is not on the allow-list (${allowedHosts.join(', ')}); use one of those hosts or inline the bytes as a base64 data: URL`,
    );
  }
  return url.href;
}
