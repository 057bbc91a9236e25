import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HandshakeError } from '../src/index.js';
import {
  Channel,
  clientHandshake,
  packAddresses,
  PROTOCOL_VERSION,
  scopeKey,
  serverHandshake,
  unpackAddresses,
  type Scope,
} from '../src/handshake.js';

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

afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A real TCP pair on loopback: the server side runs `onServer`, the client side is returned. */
async function pair(onServer: (socket: Socket) => void): Promise<{ client: Channel; port: number }> {
  const server = createServer(onServer);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  return { client: new Channel(socket), port };
}

function serve(serverScope: Scope, index: number, secret?: string, released = false) {
  const results: Promise<unknown>[] = [];
  const onServer = (socket: Socket): void => {
    const local = { scope: serverScope, key: scopeKey(serverScope, secret), index, instance: `srv-${index}` };
    results.push(
      serverHandshake(new Channel(socket), local, () => released, 2000, 0).catch((e: unknown) => e),
    );
  };
  return { results, onServer };
}

const client = (s: Scope = scope, secret?: string) => ({
  scope: s,
  key: scopeKey(s, secret),
  index: 1,
  instance: 'cli-1',
});

describe('handshake', () => {
  it('both sides learn and prove who the other is', async () => {
    const srv = serve(scope, 3, 'shh', true);
    const { client: ch, port } = await pair(srv.onServer);
    const res = await clientHandshake(ch, client(scope, 'shh'), 3, 2000, port);
    expect(res).toEqual({ peerIndex: 3, peerInstance: 'srv-3', peerReleased: true });
    await expect(srv.results[0]).resolves.toEqual({
      peerIndex: 1,
      peerInstance: 'cli-1',
      peerReleased: false,
    });
  });

  it('a probe (expect -1) learns the index of whoever answers', async () => {
    const srv = serve(scope, 2);
    const { client: ch, port } = await pair(srv.onServer);
    expect((await clientHandshake(ch, client(), -1, 2000, port)).peerIndex).toBe(2);
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
      const srv = serve(serverScope, 3);
      const { client: ch, port } = await pair(srv.onServer);
      let wire = '';
      ch.socket.on('data', (d: Buffer) => (wire += d.toString()));
      const err = await clientHandshake(ch, client(), 3, 2000, port).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HandshakeError);
      expect(err).toMatchObject({
        code: 'ERR_KUBEPEERS_HANDSHAKE',
        reason: 'mismatch',
        address: '127.0.0.1',
        port,
      });
      expect((err as Error).message).toContain('it is not index 3 of this run');
      // All a stranger learns is one word: nothing of the responder's scope.
      expect(wire).toBe('{"t":"reject","reason":"mismatch"}\n');
      expect(wire).not.toContain(theirs);
      // The responder itself knows why.
      expect(await srv.results[0]).toMatchObject({
        reason: 'mismatch',
        message: expect.stringContaining('differs: peer has'),
      });
    },
  );

  it('rejects the wrong index at the expected address (a reused IP inside the job)', async () => {
    const srv = serve(scope, 2);
    const { client: ch, port } = await pair(srv.onServer);
    const err = await clientHandshake(ch, client(), 3, 2000, port).catch((e: unknown) => e);
    expect(err).toMatchObject({
      reason: 'mismatch',
      message: expect.stringContaining('it is not index 3 of this run'),
    });
  });

  it('a responder keyed with another secret cannot prove itself', async () => {
    const srv = serve(scope, 3, 'theirs');
    const { client: ch, port } = await pair(srv.onServer);
    const err = await clientHandshake(ch, client(scope, 'ours'), 3, 2000, port).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'bad-proof' });
  });

  it('a replayed welcome from an earlier handshake does not pass', async () => {
    // Record a genuine welcome, then serve it verbatim to a new client (whose nonce differs).
    const srv = serve(scope, 3);
    let recorded = '';
    const { client: first, port } = await pair(srv.onServer);
    first.socket.on('data', (d: Buffer) => (recorded ||= d.toString().split('\n')[0]!));
    await clientHandshake(first, client(), 3, 2000, port);
    const { client: ch, port: port2 } = await pair((s) => s.once('data', () => s.write(`${recorded}\n`)));
    const err = await clientHandshake(ch, client(), 3, 2000, port2).catch((e: unknown) => e);
    expect(err).toMatchObject({ reason: 'bad-proof' });
  });

  it('tells a silent service, a closing one and a non-kubepeers one apart', async () => {
    const silent = await pair(() => {});
    expect(
      await clientHandshake(silent.client, client(), 3, 200, silent.port).catch((e: unknown) => e),
    ).toMatchObject({ reason: 'timeout' });
    const closing = await pair((s) => s.end());
    expect(
      await clientHandshake(closing.client, client(), 3, 2000, closing.port).catch((e: unknown) => e),
    ).toMatchObject({ reason: 'closed' });
    const http = await pair((s) => s.once('data', () => s.end('{"hello":"world"}\n')));
    expect(
      await clientHandshake(http.client, client(), 3, 2000, http.port).catch((e: unknown) => e),
    ).toMatchObject({ reason: 'protocol' });
  });

  it('the server rejects a client that cannot prove itself', async () => {
    const srv = serve(scope, 3);
    const { port } = await pair(() => {});
    servers[0]!.removeAllListeners('connection').on('connection', srv.onServer);
    const raw = connect(port, '127.0.0.1');
    const hello = {
      t: 'hello',
      v: PROTOCOL_VERSION,
      ns: 'ml',
      svc: 'workers',
      domain: 'cluster.local',
      job: 'train',
      run: 'uid-1',
      size: 4,
      topo: 'mesh',
      from: 1,
      to: 3,
      inst: 'x',
      nonce: 'n',
    };
    const welcome = new Promise((r) => raw.once('data', r));
    raw.write(`${JSON.stringify(hello)}\n`);
    await welcome;
    raw.write(`${JSON.stringify({ t: 'confirm', proof: 'forged' })}\n`);
    expect(await srv.results[0]).toMatchObject({ reason: 'bad-proof' });
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
