import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedDns } from '../src/demo/dns-server.js';
import { DnsError } from '../src/index.js';
import { StubResolver } from '../src/internals.js';

let dns: EmbeddedDns | undefined;
afterEach(async () => {
  await dns?.stop();
  dns = undefined;
});

async function start(): Promise<{ server: EmbeddedDns; resolver: StubResolver }> {
  const server = new EmbeddedDns({ ttl: 7, soaMinimum: 3 });
  await server.start();
  dns = server;
  return {
    server,
    resolver: new StubResolver({
      nameservers: [{ address: server.address, port: server.port }],
      timeoutMs: 500,
    }),
  };
}

describe('EmbeddedDns (the demo and simulation DNS server)', () => {
  it('serves added records, forgets removed ones, and answers NXDOMAIN/NODATA with the SOA minimum', async () => {
    const { server, resolver } = await start();
    server.add('job-0.svc.ns.svc.cluster.local', 'A', '10.0.0.1');
    server.add('job-0.svc.ns.svc.cluster.local', 'AAAA', 'fd00::1:2');
    expect(await resolver.query('job-0.svc.ns.svc.cluster.local', 'A')).toMatchObject({
      status: 'ok',
      addresses: ['10.0.0.1'],
      ttl: 7,
    });
    expect(await resolver.query('job-0.svc.ns.svc.cluster.local', 'AAAA')).toMatchObject({
      status: 'ok',
      addresses: ['fd00::1:2'],
    });
    expect(await resolver.query('job-1.svc.ns.svc.cluster.local', 'A')).toMatchObject({
      status: 'nxdomain',
      negativeTtl: 3,
    });
    expect(await resolver.query('svc.ns.svc.cluster.local', 'A')).toMatchObject({
      status: 'nodata',
      negativeTtl: 3,
    });
    server.remove('job-0.svc.ns.svc.cluster.local', 'A', '10.0.0.1');
    expect(await resolver.query('job-0.svc.ns.svc.cluster.local', 'A')).toMatchObject({ status: 'nodata' });
    server.remove('job-0.svc.ns.svc.cluster.local', 'AAAA', 'fd00::1:2');
    expect(await resolver.query('job-0.svc.ns.svc.cluster.local', 'A')).toMatchObject({ status: 'nxdomain' });
    expect(server.counters).toMatchObject({ total: 6, udp: 6, tcp: 0, byType: { A: 5, AAAA: 1 } });
  });

  it('compresses big answers, sets TC when they do not fit in UDP, and serves them over TCP', async () => {
    const { server, resolver } = await start();
    const ips = Array.from({ length: 300 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
    for (const ip of ips) server.add('svc.ns.svc.cluster.local', 'A', ip);
    const answer = await resolver.query('svc.ns.svc.cluster.local', 'A');
    expect(answer.status === 'ok' && [...answer.addresses].sort()).toEqual([...ips].sort());
    expect(server.counters).toMatchObject({ udp: 1, tcp: 1 });
    // 64 addresses fit in one EDNS datagram once compressed (16 bytes each).
    for (const ip of ips.slice(64)) server.remove('svc.ns.svc.cluster.local', 'A', ip);
    await resolver.query('svc.ns.svc.cluster.local', 'A');
    expect(server.counters).toMatchObject({ udp: 2, tcp: 1 });
  });

  it('refuses names outside its zone', async () => {
    const { resolver } = await start();
    const err = await resolver.query('example.com', 'A').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DnsError);
    expect(err).toMatchObject({ reason: 'refused' });
  });
});
