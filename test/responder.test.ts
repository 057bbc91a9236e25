import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenError } from '../src/index.js';
import { Channel, clientHandshake, MAX_HELLO_BYTES, scopeKey, type Scope } from '../src/handshake.js';
import { Responder } from '../src/responder.js';

const scope: Scope = {
  namespace: 'ml',
  subdomain: 'workers',
  clusterDomain: 'cluster.local',
  jobName: 'train',
  runId: '',
  size: 4,
  topology: 'mesh',
};
const key = scopeKey(scope, undefined);
const responders: Responder[] = [];

afterEach(async () => {
  await Promise.all(responders.splice(0).map((r) => r.close()));
});

async function start(extra: Partial<ConstructorParameters<typeof Responder>[0]> = {}) {
  const peers: number[] = [];
  const r = new Responder({
    address: '127.0.0.1',
    port: 0,
    scope,
    key,
    index: 0,
    instance: 'r0',
    handshakeTimeoutMs: 300,
    released: () => false,
    onPeer: (_c, hs) => peers.push(hs.peerIndex),
    ...extra,
  });
  await r.listen();
  responders.push(r);
  return { r, peers, port: r.boundPort };
}

const open = async (port: number): Promise<Socket> => {
  const s = connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  return s;
};
const closed = (s: Socket): Promise<void> =>
  new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

describe('Responder', () => {
  it('hands authenticated peers to the barrier', async () => {
    const { peers, port } = await start();
    const ch = new Channel(await open(port));
    await clientHandshake(ch, { scope, key, index: 2, instance: 'c2' }, 0, 1000, port);
    await new Promise((r) => setTimeout(r, 20));
    expect(peers).toEqual([2]);
  });

  it('drops a connection that sends an oversized frame before authenticating', async () => {
    const { port } = await start({ handshakeTimeoutMs: 5000 });
    const s = await open(port);
    s.on('error', () => {});
    const started = performance.now();
    s.write('x'.repeat(MAX_HELLO_BYTES + 10));
    await closed(s);
    // Closed for the size, long before the 5 s handshake deadline would have closed it.
    expect(performance.now() - started).toBeLessThan(2500);
  });

  it('drops a connection that does not finish the handshake in time', async () => {
    const { port } = await start({ handshakeTimeoutMs: 200 });
    const s = await open(port);
    const started = performance.now();
    await closed(s);
    expect(performance.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('answers "busy" beyond the cap of pending handshakes', async () => {
    const { port } = await start({ maxPending: 2, handshakeTimeoutMs: 5000 });
    const idle = [await open(port), await open(port)];
    const third = await open(port);
    let got = '';
    third.setEncoding('utf8');
    third.on('data', (d: string) => (got += d));
    await closed(third);
    expect(JSON.parse(got.split('\n')[0]!)).toMatchObject({ t: 'reject', reason: 'busy' });
    idle.forEach((s) => s.destroy());
  });

  it('reports a taken port as ListenError with address and port', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    const r = new Responder({
      address: '127.0.0.1',
      port,
      scope,
      key,
      index: 0,
      instance: 'x',
      handshakeTimeoutMs: 100,
      released: () => false,
      onPeer: () => {},
    });
    const err = await r.listen().catch((e: unknown) => e);
    blocker.close();
    expect(err).toBeInstanceOf(ListenError);
    expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_LISTEN', address: '127.0.0.1', port });
    expect((err as Error).message).toBe(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
  });

  it('close() ends open connections', async () => {
    const { r, port } = await start({ handshakeTimeoutMs: 5000 });
    const s = await open(port);
    await r.close();
    await closed(s);
    expect(s.destroyed).toBe(true);
  });
});
