import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HandshakeError } from '../src/index.js';
import { ClientHandshake } from '../src/core/handshake.js';
import { packAddresses, unpackAddresses, type Scope } from '../src/core/wire.js';
import { identity, token, Wire } from './helpers/wire.js';

const scope: Scope = {
  namespace: 'ml',
  subdomain: 'workers',
  clusterDomain: 'cluster.local',
  jobName: 'train',
  runId: 'uid-1',
  size: 4,
  topology: 'mesh',
};
const servers: Server[] = [];
const wires: Wire[] = [];

afterEach(() => {
  for (const s of servers.splice(0)) s.close();
  for (const w of wires.splice(0)) w.destroy();
});

/** A TCP server on loopback whose connections go to `onServer`; returns its port. */
async function listen(onServer: (socket: Socket) => void): Promise<number> {
  const server = createServer(onServer);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

async function dial(port: number): Promise<Wire> {
  const wire = await Wire.connect('127.0.0.1', port);
  wires.push(wire);
  return wire;
}

/** A server that runs the server side of the handshake as index `index` of `serverScope` on every connection. */
async function serve(serverScope: Scope, index: number, secret?: string, released = false) {
  const results: Promise<unknown>[] = [];
  const local = identity(serverScope, index, secret, `srv-${index}`);
  const port = await listen((socket) => {
    const wire = new Wire(socket);
    wires.push(wire);
    results.push(wire.serverHandshake(local, released).catch((e: unknown) => e));
  });
  return { results, port };
}

const client = (s: Scope = scope, secret?: string) => identity(s, 1, secret, 'cli-1');

describe('handshake', () => {
  it('both sides learn and prove who the other is', async () => {
    const srv = await serve(scope, 3, 'shh', true);
    const wire = await dial(srv.port);
    const res = await wire.clientHandshake(client(scope, 'shh'), 3);
    expect(res).toEqual({ peerIndex: 3, peerInstance: 'srv-3', peerReleased: true });
    await expect(srv.results[0]).resolves.toEqual({
      peerIndex: 1,
      peerInstance: 'cli-1',
      peerReleased: false,
    });
  });

  it('a probe (expect -1) learns the index of whoever answers', async () => {
    const srv = await serve(scope, 2);
    const wire = await dial(srv.port);
    expect((await wire.clientHandshake(client(), -1)).peerIndex).toBe(2);
  });

  it.each([
    ['another job', { ...scope, jobName: 'other' }, 'other'],
    ['another namespace', { ...scope, namespace: 'prod' }, 'prod'],
    ['another run of the same job', { ...scope, runId: 'uid-2' }, 'uid-2'],
    ['another size', { ...scope, size: 8 }, '8'],
    ['another topology', { ...scope, topology: 'star' as const }, 'star'],
  ])(
    'rejects a pod of %s as a mismatch, without saying what the responder has',
    async (_w, serverScope, theirs) => {
      const srv = await serve(serverScope, 3);
      const wire = await dial(srv.port);
      const err = await wire.clientHandshake(client(), 3).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HandshakeError);
      expect(err).toMatchObject({
        code: 'ERR_KUBEPEERS_HANDSHAKE',
        reason: 'mismatch',
        address: '127.0.0.1',
        port: srv.port,
      });
      expect((err as Error).message).toContain('it is not index 3 of this run');
      await wire.closed;
      // All a stranger learns is one word: nothing of the responder's scope.
      expect(wire.received).toBe('{"t":"reject","reason":"mismatch"}\n');
      expect(wire.received).not.toContain(theirs);
      // The responder itself knows why.
      expect(await srv.results[0]).toMatchObject({
        reason: 'mismatch',
        message: expect.stringContaining('differs: peer has'),
      });
    },
  );

  it('rejects the wrong index at the expected address (a reused IP inside the job)', async () => {
    const srv = await serve(scope, 2);
    const wire = await dial(srv.port);
    const err = await wire.clientHandshake(client(), 3).catch((e: unknown) => e);
    expect(err).toMatchObject({
      reason: 'mismatch',
      message: expect.stringContaining('it is not index 3 of this run'),
    });
    await wire.closed;
    expect(wire.received).toBe('{"t":"reject","reason":"mismatch"}\n');
    expect(await srv.results[0]).toMatchObject({
      reason: 'mismatch',
      message: expect.stringContaining('index 3'),
    });
  });

  it('a responder keyed with another secret cannot prove itself', async () => {
    const srv = await serve(scope, 3, 'theirs');
    const wire = await dial(srv.port);
    const err = await wire.clientHandshake(client(scope, 'ours'), 3).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'bad-proof' });
    // No confirm was sent: the responder never takes it as a peer.
    expect(await srv.results[0]).toMatchObject({ reason: 'closed' });
  });

  it('a replayed welcome from an earlier handshake does not pass', async () => {
    // Record a genuine welcome, then serve it verbatim to a new client (whose nonce differs).
    const srv = await serve(scope, 3);
    const first = await dial(srv.port);
    await first.clientHandshake(client(), 3);
    const recorded = first.frames[0]!;
    expect(recorded).toMatchObject({ t: 'welcome', from: 3 });
    const port = await listen((s) => s.once('data', () => s.write(`${JSON.stringify(recorded)}\n`)));
    const wire = await dial(port);
    const err = await wire.clientHandshake(client(), 3).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'bad-proof' });
  });

  it('tells a silent service, a closing one and a non-kubepeers one apart', async () => {
    const silent = await dial(await listen(() => {}));
    expect(
      await silent.clientHandshake(client(), 3, { timeoutMs: 200 }).catch((e: unknown) => e),
    ).toMatchObject({ reason: 'timeout' });
    const closing = await dial(await listen((s) => s.end()));
    expect(await closing.clientHandshake(client(), 3).catch((e: unknown) => e)).toMatchObject({
      reason: 'closed',
    });
    const other = await dial(await listen((s) => s.once('data', () => s.end('{"hello":"world"}\n'))));
    expect(await other.clientHandshake(client(), 3).catch((e: unknown) => e)).toMatchObject({
      reason: 'protocol',
    });
  });

  it('the server rejects a client that cannot prove itself', async () => {
    const srv = await serve(scope, 3);
    const wire = await dial(srv.port);
    // A genuine hello, then a confirm whose proof is made up.
    await wire.send(new ClientHandshake(client(), 3, token).hello());
    expect(await wire.next()).toMatchObject({ t: 'welcome', from: 3 });
    await wire.send({ t: 'confirm', proof: 'forged' });
    expect(await srv.results[0]).toMatchObject({ reason: 'bad-proof' });
    await wire.closed;
  });
});

describe('packed roster', () => {
  it('round-trips IPv4, IPv6 and missing entries, and rejects anything malformed', () => {
    const ips = ['10.244.0.5', '', 'fd00:10:244::7', '255.255.255.255', '::ffff:10.1.2.3'];
    const packed = packAddresses(ips);
    expect(unpackAddresses(packed, ips.length)).toEqual(ips);
    expect(Buffer.from(packAddresses(['10.0.0.1']), 'base64')).toEqual(Buffer.from([4, 10, 0, 0, 1]));
    expect(unpackAddresses(packed, ips.length - 1)).toBeUndefined(); // bytes left over
    expect(unpackAddresses(packed, ips.length + 1)).toBeUndefined(); // too few
    expect(unpackAddresses(Buffer.from([4, 1, 2]).toString('base64'), 1)).toBeUndefined(); // cut short
    expect(unpackAddresses(Buffer.from([9]).toString('base64'), 1)).toBeUndefined(); // unknown tag
    const notV6 = Buffer.concat([Buffer.from([6, 3]), Buffer.from('a:b')]).toString('base64');
    expect(unpackAddresses(notV6, 1)).toBeUndefined();
    expect(unpackAddresses(42, 1)).toBeUndefined();
  });
});
