import { describe, expect, it } from 'vitest';
import { isBlockedAddress, isHostAllowed } from './address-guard';

describe('isBlockedAddress', () => {
  it.each([
    '127.0.0.1',
    '127.255.255.254',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '100.127.255.255',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '198.18.0.1',
    '192.0.2.1',
    '::',
    '::1',
    '[::1]',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:169.254.169.254',
    '64:ff9b::a00:1',
    '2001:db8::1',
    '2002:a00:1::1',
    '2001::1', // Teredo
    'not-an-address',
    '',
  ])('blocks %s', (address) => {
    expect(isBlockedAddress(address)).toBe(true);
  });

  it.each([
    '93.184.216.34',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700::1111',
    '2001:4860:4860::8888',
    '::ffff:8.8.8.8',
  ])('lets the public address %s through', (address) => {
    expect(isBlockedAddress(address)).toBe(false);
  });
});

describe('isHostAllowed', () => {
  const list = ['example.com', '*.cdn.example.org'];
  it.each([
    ['example.com', true],
    ['EXAMPLE.com.', true],
    ['www.example.com', false],
    ['a.cdn.example.org', true],
    ['a.b.cdn.example.org', true],
    ['cdn.example.org', false],
    ['xcdn.example.org', false],
    ['example.com.evil.net', false],
  ])('%s → %s', (host, allowed) => {
    expect(isHostAllowed(host, list)).toBe(allowed);
  });
});
