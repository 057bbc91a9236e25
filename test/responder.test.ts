import { connect, createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenError } from '../src/index.js';
import {
  Channel,
  clientHandshake,
  MAX_HELLO_BYTES,
  packAddresses,
  scopeKey,
  unpackAddresses,
  type Scope,
} from '../src/handshake.js';
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
const sleep = (ms: number): Promise<false> => new Promise((r) => setTimeout(() => r(false), ms));
const until = async (cond: () => boolean): Promise<void> => {
  while (!cond()) await sleep(10);
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

  it('answers "busy" beyond the cap of pending handshakes from one source', async () => {
    const { port } = await start({ maxPendingPerSource: 2, handshakeTimeoutMs: 5000 });
    const idle = [await open(port), await open(port)];
    const third = await open(port);
    let got = '';
    third.on('data', (d: Buffer) => (got += d.toString()));
    await closed(third);
    expect(got).toBe('{"t":"reject","reason":"busy"}\n');
    expect(idle.every((s) => !s.destroyed)).toBe(true);
    idle.forEach((s) => s.destroy());
  });

  it('idle strangers cannot starve a real peer', async () => {
    // Regression (0210c82): 32 idle connections that never said hello made a real peer get "busy".
    const { peers, port } = await start({ handshakeTimeoutMs: 5000 });
    const idle: Socket[] = [];
    for (let i = 0; i < 32; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      idle.push(s);
    }
    await sleep(100);
    const real = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    await new Promise((r) => real.once('connect', r));
    const hs = await clientHandshake(
      new Channel(real),
      { scope, key, index: 2, instance: 'c2' },
      0,
      3000,
      port,
    );
    expect(hs.peerIndex).toBe(0);
    await sleep(20);
    expect(peers).toEqual([2]);
    idle.forEach((s) => s.destroy());
    real.destroy();
  });

  it('when every slot is taken, the oldest handshake of the source holding most gives way', async () => {
    const { peers, port } = await start({ maxPending: 4, handshakeTimeoutMs: 5000 });
    const idle: Socket[] = [];
    for (const local of ['127.0.0.3', '127.0.0.3', '127.0.0.3', '127.0.0.4']) {
      const s = connect({ port, host: '127.0.0.1', localAddress: local });
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      await sleep(5);
      idle.push(s);
    }
    const real = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    await new Promise((r) => real.once('connect', r));
    await clientHandshake(new Channel(real), { scope, key, index: 2, instance: 'c2' }, 0, 3000, port);
    await closed(idle[0]!);
    await sleep(20);
    expect(peers).toEqual([2]);
    expect(idle.map((s) => s.destroyed)).toEqual([true, false, false, false]);
    idle.forEach((s) => s.destroy());
    real.destroy();
  });

  it('takes a big frame that arrives in the same segment as the confirm (a star release push)', async () => {
    // Regression (0210c82): the rest of the segment was parsed under the 1 KiB pre-authentication limit and
    // the member dropped the connection: at 10 000 pods no pushed release ever arrived.
    const size = 10_000;
    const big: Scope = { ...scope, size, topology: 'star' };
    const bigKey = scopeKey(big, undefined);
    const roster = [...Array(size).keys()].map((i) => `10.0.${(i >> 8) & 255}.${i & 255}`);
    const frame = `${JSON.stringify({ t: 'release', roster: packAddresses(roster) })}\n`;
    for (const first of [frame.length, 1448]) {
      const received: string[] = [];
      const { port } = await start({
        scope: big,
        key: bigKey,
        index: 5,
        onPeer: (ch) => ch.startMessages((m) => received.push(m.t === 'release' ? m.roster : m.t)),
      });
      const s = await open(port);
      const ch = new Channel(s);
      const send = ch.send.bind(ch);
      ch.send = (m) => {
        if (m.t === 'confirm') s.write(`${JSON.stringify(m)}\n${frame.slice(0, first)}`);
        else send(m);
      };
      await clientHandshake(ch, { scope: big, key: bigKey, index: 0, instance: 'coord' }, 5, 3000, port);
      s.write(frame.slice(first));
      await until(() => received.length > 0 || s.destroyed);
      expect(s.destroyed).toBe(false);
      expect(unpackAddresses(received[0], size)).toEqual(roster);
      s.destroy();
    }
  });

  it('closes an authenticated connection whose frames nobody takes, instead of queueing them', async () => {
    // Regression (0210c82): a lingering pod queued every frame a peer sent (30 MB -> 10 M frames, +850 MB).
    const { port } = await start({ onPeer: () => {} });
    const s = await open(port);
    s.on('error', () => {});
    await clientHandshake(new Channel(s), { scope, key, index: 2, instance: 'c2' }, 0, 1000, port);
    const chunk = '{"t":"verified"}\n'.repeat(1000);
    for (let i = 0; i < 100 && !s.destroyed; i++) s.write(chunk);
    await closed(s);
    expect(s.destroyed).toBe(true);
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
