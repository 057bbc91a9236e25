import { SocketAddress } from 'node:net';
import { describe, expect, it } from 'vitest';
import { canonicalIp, sameIp } from '../src/address.js';

describe('canonicalIp', () => {
  it.each([
    // RFC 5952: lower case, no leading zeros, the longest zero run as ::, the first of equal runs
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::0001', '::1'],
    ['0000:0000:0000:0000:0000:0000:0000:0001', '::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::', '::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fd00::1:0:0:0:a', 'fd00:0:0:1::a'], // dns-packet's text for fd00:0:0:1::a
    ['FD00:0000:0:1:0:0:0:A', 'fd00:0:0:1::a'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // equal runs: the first
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // one zero group: not compressed
    ['1:2:3:4:5:6::8', '1:2:3:4:5:6:0:8'],
    ['2001:DB8::0:1', '2001:db8::1'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'], // embedded IPv4 outside ::ffff:0:0/96 is hex
    // IPv4-mapped IPv6: the IPv4 address
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::FFFF:0a00:0001', '10.0.0.1'],
    ['0:0:0:0:0:ffff:10.0.0.1', '10.0.0.1'],
    ['::ffff:a00:1', '10.0.0.1'],
    // zones: kept as written, the address before them canonical
    ['fe80::1%eth0', 'fe80::1%eth0'],
    ['FE80:0:0:0:0:0:0:0001%eth0', 'fe80::1%eth0'],
    ['fe80::0:1%2', 'fe80::1%2'],
    ['fe80::1%Eth_0.100', 'fe80::1%Eth_0.100'],
    // IPv4: as it is
    ['10.0.0.1', '10.0.0.1'],
    ['255.255.255.255', '255.255.255.255'],
    // not an IP address: unchanged
    ['', ''],
    ['job-0.svc', 'job-0.svc'],
    ['fe80::1%', 'fe80::1%'],
    ['10.0.0.1%eth0', '10.0.0.1%eth0'],
    ['010.0.0.1', '010.0.0.1'],
    ['1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7:8:9'],
    ['fd00::g', 'fd00::g'],
  ])('%j -> %j', (input, expected) => {
    expect(canonicalIp(input)).toBe(expected);
  });

  it('gives the text a socket shows for the same address', () => {
    // SocketAddress prints an address the way Node prints a socket's peer (inet_ntop).
    for (const ip of [
      'fd00::1:0:0:0:a',
      '2001:db8:0:0:1:0:0:1',
      '0:0:0:0:0:0:0:1',
      'fe80:0::1',
      '1:0:0:2:0:0:0:3',
    ]) {
      expect(canonicalIp(ip), ip).toBe(new SocketAddress({ address: ip, family: 'ipv6' }).address);
    }
  });
});

describe('sameIp', () => {
  it.each([
    ['fd00::1:0:0:0:a', 'fd00:0:0:1::a', true],
    ['::1', '0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', '127.0.0.1', true],
    ['::FFFF:7F00:1', '::ffff:127.0.0.1', true],
    ['10.0.0.1', '10.0.0.1', true],
    ['10.0.0.1', '10.0.0.2', false],
    ['fd00::a', 'fd00::b', false],
    ['::1', '127.0.0.1', false],
    // zones count only when both sides have one
    ['fe80::1%eth0', 'FE80::0:1', true],
    ['fe80::1', 'fe80::1%eth0', true],
    ['fe80::1%eth0', 'fe80:0::1%eth0', true],
    ['fe80::1%eth0', 'fe80::1%eth1', false],
    ['fe80::1%eth0', 'fe80::1%2', false],
    // not addresses: compared as text
    ['job-0', 'job-0', true],
    ['job-0', 'JOB-0', false],
  ])('%j, %j: %j', (a, b, expected) => {
    expect(sameIp(a, b)).toBe(expected);
    expect(sameIp(b, a)).toBe(expected);
  });
});
