import { BlockList, isIP } from 'node:net';

function blockList(family: 'ipv4' | 'ipv6', subnets: readonly (readonly [string, number])[]): BlockList {
  const list = new BlockList();
  for (const [network, prefix] of subnets) list.addSubnet(network, prefix, family);
  return list;
}

/**
 * IPv4 ranges that are not globally reachable unicast (IANA special-purpose registry): "this
 * network", private, CGNAT, loopback, link-local (cloud metadata at 169.254.169.254), IETF
 * protocol assignments, documentation, 6to4 relay, benchmarking, multicast, reserved, broadcast.
 */
const BLOCKED_V4 = blockList('ipv4', [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
]);

/** `::ffff:a.b.c.d`: judged by the IPv4 rules (BlockList matches mapped addresses against them). */
const MAPPED_V6 = blockList('ipv6', [['::ffff:0:0', 96]]);

/**
 * IPv6 is judged by an allow-list rather than a block-list: only 2000::/3 is allocated global
 * unicast, so loopback, unspecified, ULA (fc00::/7), link-local (fe80::/10), site-local,
 * multicast (ff00::/8), discard, IPv4-compatible and anything IANA assigns later are refused
 * without being listed.
 */
const GLOBAL_V6 = blockList('ipv6', [['2000::', 3]]);

/**
 * Inside 2000::/3 but not safe to fetch: IETF protocol assignments incl. Teredo (2001::/23),
 * documentation (2001:db8::/32, 3fff::/20) and 6to4 (2002::/16), whose embedded IPv4 address
 * could be private. NAT64 (64:ff9b::/96) lies outside 2000::/3 and is refused with the rest.
 */
const SPECIAL_V6 = blockList('ipv6', [
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['3fff::', 20],
]);

/** `[::1]` → `::1`, `fe80::1%eth0` → `fe80::1`, `example.com.` → `example.com`, lower case. */
export function normaliseHost(host: string): string {
  let bare = host.trim().toLowerCase();
  if (bare.startsWith('[') && bare.endsWith(']')) bare = bare.slice(1, -1);
  const zone = bare.indexOf('%');
  if (zone !== -1 && isIP(bare) === 6) bare = bare.slice(0, zone);
  return bare.endsWith('.') ? bare.slice(0, -1) : bare;
}

export function isIpLiteral(host: string): boolean {
  return isIP(normaliseHost(host)) !== 0;
}

/**
 * Whether this service must never connect to `address`: true for private, loopback,
 * link-local, CGNAT, multicast and reserved IPv4 and IPv6 addresses, IPv4-mapped IPv6 forms of
 * those, and for anything that is not an IP address at all (fail closed: a resolver that
 * returns garbage must not open a hole).
 */
export function isBlockedAddress(address: string): boolean {
  const bare = normaliseHost(address);
  const family = isIP(bare);
  try {
    if (family === 4) return BLOCKED_V4.check(bare, 'ipv4');
    if (family === 6) {
      if (MAPPED_V6.check(bare, 'ipv6')) return BLOCKED_V4.check(bare, 'ipv6');
      return !GLOBAL_V6.check(bare, 'ipv6') || SPECIAL_V6.check(bare, 'ipv6');
    }
  } catch {
    return true;
  }
  return true;
}

/** `localhost` and anything under it (RFC 6761) resolves to loopback on most systems. */
export function isLoopbackName(host: string): boolean {
  const bare = normaliseHost(host);
  return bare === 'localhost' || bare.endsWith('.localhost');
}

/**
 * Allow-list match: `example.com` matches that host only; `*.example.com` matches any subdomain
 * at any depth but not the apex (list it separately). IP literals match exactly.
 */
export function isHostAllowed(host: string, allowedHosts: readonly string[]): boolean {
  const bare = normaliseHost(host);
  return allowedHosts.some((raw) => {
    const entry = normaliseHost(raw);
    if (!entry.startsWith('*.')) return bare === entry;
    const suffix = entry.slice(1); // ".example.com"
    return bare.length > suffix.length && bare.endsWith(suffix);
  });
}
