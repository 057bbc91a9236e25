import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DnsError } from '../src/index.js';
import { StubResolver } from '../src/internals.js';
import { a, aaaa, reply, soa, startFakeDns, type FakeDns, type Handler } from './helpers/fake-dns.js';

const NAME = 'job-1.svc.ns.svc.cluster.local';
const servers: FakeDns[] = [];

async function dns(handler: Handler, address?: string): Promise<FakeDns> {
  const s = await startFakeDns(handler, address);
  servers.push(s);
  return s;
}

function resolverFor(list: FakeDns[], extra: { timeoutMs?: number; attempts?: number } = {}): StubResolver {
  return new StubResolver({
    nameservers: list.map((s) => ({ address: s.address, port: s.port })),
    timeoutMs: 300,
    ...extra,
  });
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('StubResolver', () => {
  it('asks for the absolute name only and returns addresses with the smallest TTL', async () => {
    const s = await dns((q) => [reply(q, { answers: [a(q.name, '10.0.0.1', 7), a(q.name, '10.0.0.2', 3)] })]);
    const answer = await resolverFor([s]).query(`${NAME}.`, 'A');
    expect(answer).toMatchObject({ status: 'ok', addresses: ['10.0.0.1', '10.0.0.2'], ttl: 3 });
    expect(s.queries.map((q) => q.name)).toEqual([NAME]); // no search-list walk
    expect(s.queries[0]!.packet.additionals?.some((r) => r.type === 'OPT')).toBe(true);
  });

  it('uses a fresh source port and a random ID for every query', async () => {
    const s = await dns((q) => [reply(q, { answers: [a(q.name, '10.0.0.1')] })]);
    const r = resolverFor([s]);
    for (let i = 0; i < 16; i++) await r.query(NAME, 'A');
    const ports = new Set(s.queries.map((q) => q.rinfo!.port));
    const ids = new Set(s.queries.map((q) => q.id));
    expect(ports.size).toBeGreaterThan(12);
    expect(ids.size).toBeGreaterThan(12);
  });

  it('drops replies with a wrong ID, a wrong question or garbage, and takes the right one after them', async () => {
    const s = await dns((q) => [
      reply(q, { id: (q.id + 1) % 65536, answers: [a(q.name, '6.6.6.1')] }),
      reply(q, { name: 'evil.example', answers: [a('evil.example', '6.6.6.2')] }),
      reply(q, { type: 'AAAA', answers: [] }),
      Buffer.from('not a dns packet at all'),
      Buffer.alloc(3),
      reply(q, { answers: [a(q.name, '10.0.0.9')] }),
    ]);
    const answer = await resolverFor([s]).query(NAME, 'A');
    expect(answer).toMatchObject({ status: 'ok', addresses: ['10.0.0.9'] });
  });

  it('ignores a matching reply sent from another port (spoofing attempt)', async () => {
    const spoofer = createSocket('udp4');
    await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', r));
    const s = await dns((q) => {
      spoofer.send(reply(q, { answers: [a(q.name, '6.6.6.6')] }), q.rinfo!.port, q.rinfo!.address);
      return new Promise((r) => setTimeout(() => r([reply(q, { answers: [a(q.name, '10.0.0.3')] })]), 50));
    });
    try {
      const answer = await resolverFor([s]).query(NAME, 'A');
      expect(answer).toMatchObject({ status: 'ok', addresses: ['10.0.0.3'] });
    } finally {
      spoofer.close();
    }
  });

  it('retries over TCP when the UDP reply is truncated', async () => {
    const many = Array.from({ length: 200 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
    const s = await dns((q) =>
      q.transport === 'udp'
        ? [reply(q, { tc: true })]
        : [reply(q, { answers: many.map((ip) => a(q.name, ip)) })],
    );
    const answer = await resolverFor([s]).query(NAME, 'A');
    expect(answer.status).toBe('ok');
    expect(answer.status === 'ok' && answer.addresses.length).toBe(200);
    expect(s.queries.map((q) => q.transport)).toEqual(['udp', 'tcp']);
  });

  it('fails with reason truncated when the TCP reply is truncated too (an answer over 64 KiB)', async () => {
    // A server whose answer does not fit in a 64 KiB DNS message sends what fits with TC set, over TCP too.
    const some = Array.from({ length: 1000 }, (_, i) => `10.2.${i >> 8}.${i & 255}`);
    const s = await dns((q) =>
      q.transport === 'udp'
        ? [reply(q, { tc: true })]
        : [reply(q, { tc: true, answers: some.map((ip) => a(q.name, ip)) })],
    );
    const err = await resolverFor([s])
      .query(NAME, 'A')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DnsError);
    expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_DNS', reason: 'truncated', rrtype: 'A' });
    expect((err as DnsError).message).toContain('did not fit even over TCP');
    // The same records on every try: no use asking again.
    expect(s.queries.map((q) => q.transport)).toEqual(['udp', 'tcp']);
  });

  it('tells NXDOMAIN and NODATA apart and takes the negative TTL from the SOA (RFC 2308)', async () => {
    const s = await dns((q) =>
      q.name.startsWith('gone')
        ? [reply(q, { rcode: 3, authorities: [soa('cluster.local', 30, 5)] })]
        : [reply(q, { authorities: [soa('cluster.local', 2, 5)] })],
    );
    const r = resolverFor([s]);
    expect(await r.query('gone.cluster.local', 'A')).toMatchObject({ status: 'nxdomain', negativeTtl: 5 });
    expect(await r.query('here.cluster.local', 'AAAA')).toMatchObject({ status: 'nodata', negativeTtl: 2 });
  });

  it('moves on to the next server after SERVFAIL and rotates servers between queries', async () => {
    const bad = await dns((q) => [reply(q, { rcode: 2 })]);
    const good = await dns((q) => [reply(q, { answers: [a(q.name, '10.0.0.4')] })]);
    const r = resolverFor([bad, good]);
    expect(await r.query(NAME, 'A')).toMatchObject({ status: 'ok', server: `127.0.0.1:${good.port}` });
    await r.query(NAME, 'A'); // rotation: this one starts at the good server
    expect(bad.queries.length).toBe(1);
    expect(good.queries.length).toBe(2);
  });

  it('fails with reason refused when every server refuses, naming the servers', async () => {
    const s1 = await dns((q) => [reply(q, { rcode: 5 })]);
    const s2 = await dns((q) => [reply(q, { rcode: 5 })]);
    const err = await resolverFor([s1, s2], { attempts: 2 })
      .query(NAME, 'A')
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DnsError);
    expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_DNS', reason: 'refused', rrtype: 'A' });
    expect((err as DnsError).message).toContain(`127.0.0.1:${s1.port}`);
    expect((err as DnsError).message).toContain(`127.0.0.1:${s2.port}`);
  });

  it('times out on a silent server after its attempts', async () => {
    const s = await dns(() => []);
    const started = performance.now();
    const err = await resolverFor([s], { timeoutMs: 100, attempts: 2 })
      .query(NAME, 'A')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_DNS', reason: 'timeout' });
    expect(s.queries.length).toBe(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('follows a CNAME chain inside the answer and reads AAAA', async () => {
    const s = await dns((q) => [
      reply(q, {
        answers: [
          { type: 'CNAME', name: q.name, ttl: 9, data: 'real.cluster.local' },
          aaaa('real.cluster.local', 'fd00::7', 4),
        ],
      }),
    ]);
    expect(await resolverFor([s]).query(NAME, 'AAAA')).toMatchObject({
      status: 'ok',
      addresses: ['fd00::7'],
      ttl: 4,
    });
  });

  it('returns AAAA addresses in canonical text, as sockets print them', async () => {
    // dns-packet decodes fd00:0:0:1::a as fd00::1:0:0:0:a and ::ffff:10.0.0.5 as ::ffff:a00:5.
    const s = await dns((q) => [
      reply(q, {
        answers: [
          aaaa(q.name, 'fd00:0:0:1::a'),
          aaaa(q.name, '2001:db8:0:0:1:0:0:1'),
          aaaa(q.name, 'FD00:0000:0000:0001:0000:0000:0000:000A'), // the first one again
          aaaa(q.name, '::ffff:10.0.0.5'),
        ],
      }),
    ]);
    expect(await resolverFor([s]).query(NAME, 'AAAA')).toMatchObject({
      status: 'ok',
      addresses: ['fd00:0:0:1::a', '2001:db8::1:0:0:1', '10.0.0.5'],
    });
  });

  it('accepts the replies of a nameserver on ::1 written in any IPv6 spelling', async () => {
    const s = await dns((q) => [reply(q, { answers: [a(q.name, '10.0.0.6')] })], '::1');
    for (const address of ['::1', '0:0:0:0:0:0:0:1', '::0001', '0000:0000:0000:0000:0000:0000:0000:0001']) {
      const r = new StubResolver({ nameservers: [{ address, port: s.port }], timeoutMs: 300, attempts: 1 });
      expect(await r.query(NAME, 'A'), address).toMatchObject({
        status: 'ok',
        addresses: ['10.0.0.6'],
        server: `[::1]:${s.port}`,
      });
    }
    expect(s.queries.length).toBe(4);
  });

  it('accepts the replies of a nameserver at an IPv4-mapped IPv6 address', async () => {
    const s = await dns((q) => [reply(q, { answers: [a(q.name, '10.0.0.7')] })]);
    for (const address of ['::ffff:127.0.0.1', '::FFFF:7F00:1', '0:0:0:0:0:ffff:127.0.0.1']) {
      const r = new StubResolver({ nameservers: [{ address, port: s.port }], timeoutMs: 300, attempts: 1 });
      expect(await r.query(NAME, 'A'), address).toMatchObject({ status: 'ok', addresses: ['10.0.0.7'] });
    }
  });

  it('accepts the replies of a link-local nameserver with a zone, named or numbered', async () => {
    // In a network namespace of its own, where lo also has fe80::1: Node prints the peer as fe80::1%lo.
    // Runs the built resolver (dist/) in a child process, since only that process is in the namespace.
    const script = `
      import { createRequire } from 'node:module';
      import { createSocket } from 'node:dgram';
      const { StubResolver } = await import(process.cwd() + '/dist/resolver.js');
      const dns = createRequire(process.cwd() + '/package.json')('dns-packet');
      const srv = createSocket('udp6');
      srv.on('message', (buf, rinfo) => {
        const q = dns.decode(buf);
        srv.send(dns.encode({ type: 'response', id: q.id, flags: 0, questions: q.questions,
          answers: [{ type: 'A', name: q.questions[0].name, ttl: 5, data: '10.0.0.8' }] }), rinfo.port, rinfo.address);
      });
      await new Promise((r) => srv.bind(0, 'fe80::1%lo', r));
      const out = {};
      for (const address of ['fe80::1%lo', 'FE80:0:0:0:0:0:0:1%lo', 'fe80::1%1']) {
        const r = new StubResolver({ nameservers: [{ address, port: srv.address().port }], timeoutMs: 500, attempts: 1 });
        out[address] = await r.query('a.example.', 'A').then((x) => x.addresses.join(), (e) => e.reason);
      }
      srv.close();
      console.log(JSON.stringify(out));
    `;
    const setup =
      'ip link set lo up && ip addr add fe80::1/64 dev lo nodad && exec "$0" --input-type=module -e "$1"';
    const child = spawn('unshare', ['--net', 'sh', '-c', setup, process.execPath, script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(stdout)).toEqual({
      'fe80::1%lo': '10.0.0.8',
      'FE80:0:0:0:0:0:0:1%lo': '10.0.0.8',
      'fe80::1%1': '10.0.0.8',
    });
  });

  it('rejects promptly on abort and leaves no socket open', async () => {
    const s = await dns(() => []);
    const udpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
    await new Promise((r) => setTimeout(r, 20));
    const before = udpHandles();
    const ac = new AbortController();
    const started = performance.now();
    const pending = resolverFor([s], { timeoutMs: 5000 }).query(NAME, 'A', { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 20));
    expect(udpHandles()).toBe(before + 1);
    ac.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
    expect(performance.now() - started).toBeLessThan(1000);
    await new Promise((r) => setTimeout(r, 20));
    expect(udpHandles()).toBe(before);
  });
});
