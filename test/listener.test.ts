/**
 * A real pod's listener (waitForPeers over the core and the engine) against test peers that speak the
 * protocol on real sockets (test/helpers/wire.ts): what a stranger can make a pod hold, and the
 * regressions of defects 1 (a release in the confirm's segment) and 3 (frames nobody consumes).
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenError, waitForPeers, type PeersResult, type WaitForPeersOptions } from '../src/index.js';
import { MAX_PENDING, MAX_PENDING_PER_SOURCE, STALE_HANDSHAKE_MS } from '../src/core/pod.js';
import { MAX_HELLO_BYTES, packAddresses } from '../src/core/wire.js';
import { listenDns, type DnsListener } from '../src/demo/dns-listener.js';
import { knotJobs } from './helpers/knot-jobs.js';
import { podOptions, type JobSpec } from './helpers/pods.js';
import { identity, scopeOf, Wire } from './helpers/wire.js';

// Each job gets its own 127.<60 + n>.x.y block (up to 62 500 pods).
const jobs = knotJobs('wire', (n, i) => `127.${60 + n}.${Math.floor(i / 250)}.${1 + (i % 250)}`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const closedWithin = (wire: Wire, ms: number): Promise<boolean> =>
  Promise.race([wire.closed.then(() => true), sleep(ms).then(() => false)]);
async function eventually(cond: () => boolean, ms = 5000): Promise<void> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > until) throw new Error(`not within ${ms} ms`);
    await sleep(10);
  }
}

const pods: { abort: AbortController; result: Promise<unknown> }[] = [];
const wires: Wire[] = [];
const closers: (() => unknown)[] = [];

afterEach(async () => {
  for (const w of wires.splice(0)) w.destroy();
  for (const { abort, result } of pods.splice(0)) {
    abort.abort();
    await result.catch(() => {});
  }
  for (const close of closers.splice(0)) await close();
});

/** Starts pod `i` of `spec` and waits until it listens (its first progress report). */
async function startPod(
  spec: JobSpec,
  i: number,
  extra: WaitForPeersOptions = {},
): Promise<{ result: Promise<PeersResult>; address: string; port: number }> {
  const abort = new AbortController();
  let listening!: () => void;
  const started = new Promise<void>((r) => (listening = r));
  const options = await podOptions(jobs.dir, spec, i, {
    timeoutMs: 30_000,
    signal: abort.signal,
    ...extra,
    onProgress: (p) => {
      listening();
      extra.onProgress?.(p);
    },
  });
  const result = waitForPeers(options);
  pods.push({ abort, result });
  await Promise.race([started, result]);
  return { result, address: spec.ip(i), port: spec.port };
}

async function dial(host: string, port: number, from?: string): Promise<Wire> {
  const wire = await Wire.connect(host, port, from);
  wires.push(wire);
  return wire;
}

/**
 * Member 1 of a 2-pod mesh job whose coordinator never shows up (no DNS records): a listener and nothing
 * else. `peer` is what the real coordinator would be.
 */
async function lonePod(extra: WaitForPeersOptions = {}) {
  const spec = await jobs.newJob(2);
  const pod = await startPod(spec, 1, { connectTimeoutMs: 20_000, ...extra });
  const scope = scopeOf(spec);
  return { ...pod, spec, scope, peer: () => identity(scope, 0) };
}

describe("a pod's listener", () => {
  it('closes a connection at once when its first frame grows over 1 KiB', async () => {
    const { address, port } = await lonePod();
    const w = await dial(address, port);
    // 1 KiB without a newline may still be a hello: the pod waits for more.
    await w.write('x'.repeat(MAX_HELLO_BYTES));
    expect(await closedWithin(w, 300)).toBe(false);
    // One byte more can only be an oversized frame: closed, long before the 20 s handshake deadline.
    await w.write('x');
    expect(await closedWithin(w, 5000)).toBe(true);
    expect(w.received).toBe('');
  });

  it('closes a connection that does not finish the handshake within connectTimeoutMs', async () => {
    const { address, port, peer } = await lonePod({ connectTimeoutMs: 400 });
    const started = performance.now();
    const idle = await dial(address, port);
    const real = await dial(address, port);
    await real.clientHandshake(peer(), 1);
    await idle.closed;
    expect(performance.now() - started).toBeGreaterThanOrEqual(400);
    expect(idle.received).toBe('');
    // The deadline is for the handshake: a peer that passed it stays connected.
    expect(await closedWithin(real, 400)).toBe(false);
  });

  it(`answers "busy" to the ${MAX_PENDING_PER_SOURCE + 1}th handshake in progress from one address`, async () => {
    const { address, port, peer } = await lonePod();
    const held: Wire[] = [];
    for (let n = 0; n < MAX_PENDING_PER_SOURCE; n++) held.push(await dial(address, port, '127.0.0.1'));
    const turned = await dial(address, port, '127.0.0.1');
    expect(await closedWithin(turned, 5000)).toBe(true);
    expect(turned.received).toBe('{"t":"reject","reason":"busy"}\n');
    expect(held.filter((w) => w.isClosed)).toEqual([]);
    // Another address has its own allowance.
    const other = await dial(address, port, '127.0.0.2');
    expect(await other.clientHandshake(peer(), 1)).toMatchObject({ peerIndex: 1 });
  });

  it(`${MAX_PENDING} idle connections from one address cannot starve a real peer from another`, async () => {
    // Regression (0210c82): 32 idle connections that never said hello made a real peer get "busy".
    const { address, port, peer } = await lonePod();
    const idle = await Promise.all(
      [...Array(MAX_PENDING).keys()].map(() => dial(address, port, '127.0.0.1')),
    );
    const real = await dial(address, port, '127.0.0.2');
    expect(await real.clientHandshake(peer(), 1)).toMatchObject({ peerIndex: 1, peerReleased: false });
    // The source's allowance held 8 of them; the others were told "busy".
    await eventually(() => idle.filter((w) => w.isClosed).length >= MAX_PENDING - MAX_PENDING_PER_SOURCE);
    await sleep(50);
    const turned = idle.filter((w) => w.isClosed);
    expect(turned).toHaveLength(MAX_PENDING - MAX_PENDING_PER_SOURCE);
    for (const w of turned) expect(w.received).toBe('{"t":"reject","reason":"busy"}\n');
    expect(await closedWithin(real, 100)).toBe(false);
  });

  // 32 handshakes in progress from 32 addresses, 127.0.0.3 (the oldest) to 127.0.0.34.
  const crowd = (address: string, port: number): Promise<Wire[]> =>
    [...Array(MAX_PENDING).keys()].reduce<Promise<Wire[]>>(
      async (acc, n) => [...(await acc), await dial(address, port, `127.0.0.${3 + n}`)],
      Promise.resolve([]),
    );

  it('when every slot holds a stale handshake, a newcomer takes the slot of the oldest', async () => {
    const { address, port, peer } = await lonePod();
    const idle = await crowd(address, port);
    await sleep(STALE_HANDSHAKE_MS + 150);
    const real = await dial(address, port, '127.0.0.2');
    expect(await real.clientHandshake(peer(), 1)).toMatchObject({ peerIndex: 1 });
    expect(await closedWithin(idle[0]!, 5000)).toBe(true);
    expect(idle[0]!.received).toBe('');
    await sleep(50);
    expect(idle.slice(1).filter((w) => w.isClosed)).toEqual([]);
  });

  it('when every slot holds a young handshake, a newcomer is told "busy" and nobody is evicted', async () => {
    const { address, port } = await lonePod();
    // At once (well within STALE_HANDSHAKE_MS): a real crowd, not idle strangers.
    const idle = await Promise.all(
      [...Array(MAX_PENDING).keys()].map((n) => dial(address, port, `127.0.0.${3 + n}`)),
    );
    const late = await dial(address, port, '127.0.0.2');
    expect(await closedWithin(late, 5000)).toBe(true);
    expect(late.received).toBe('{"t":"reject","reason":"busy"}\n');
    expect(idle.filter((w) => w.isClosed)).toEqual([]);
  });

  it('says one word to a pod of another run, and nothing of its own scope', async () => {
    const { address, port, spec } = await lonePod();
    const w = await dial(address, port);
    const other = identity(scopeOf(spec, { runId: 'uid-other' }), 0);
    const err = await w.clientHandshake(other, 1).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_HANDSHAKE', reason: 'mismatch' });
    await w.closed;
    expect(w.received).toBe('{"t":"reject","reason":"mismatch"}\n');
  });

  it('a taken port: waitForPeers rejects with ListenError naming address and port', async () => {
    const spec = await jobs.newJob(2);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(spec.port, spec.ip(1), r));
    closers.push(() => new Promise((r) => blocker.close(r)));
    const options = await podOptions(jobs.dir, spec, 1, { timeoutMs: 5000 });
    const err = await waitForPeers(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ListenError);
    expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_LISTEN', address: spec.ip(1), port: spec.port });
    expect((err as Error).message).toBe(
      `cannot listen on ${spec.ip(1)}:${spec.port} for the barrier responder (option port, env KUBEPEERS_PORT): EADDRINUSE`,
    );
  });
});

/**
 * A DNS forwarder in front of knotd that holds each answer for `delayMs` (changeable between queries),
 * and logs the names asked.
 */
async function slowDns(delayMs: number) {
  const knot = jobs.knot;
  const upstream = createSocket('udp4');
  await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
  const waiting = new Map<number, (reply: Buffer) => void>();
  upstream.on('message', (reply) => waiting.get(reply.readUInt16BE(0))?.(reply));
  const log = { delayMs, asked: [] as string[], answered: 0 };
  const listener: DnsListener = await listenDns('127.0.0.1', 0, async (message, transport) => {
    if (transport !== 'udp') return [];
    const delay = log.delayMs;
    log.asked.push(questionName(message));
    const reply = await new Promise<Buffer>((resolve) => {
      waiting.set(message.readUInt16BE(0), resolve);
      upstream.send(message, knot.port, knot.address);
    });
    await sleep(delay);
    log.answered++;
    return [reply];
  });
  closers.push(async () => {
    await listener.close();
    upstream.close();
  });
  return { log, nameserver: `127.0.0.1:${listener.port}` };
}

/** The name asked in a DNS query message, without the trailing dot. */
function questionName(message: Buffer): string {
  const labels: string[] = [];
  for (let at = 12; message[at]! > 0; at += 1 + message[at]!)
    labels.push(message.subarray(at + 1, at + 1 + message[at]!).toString('latin1'));
  return labels.join('.');
}

describe('regressions on real sockets', () => {
  /**
   * Defect 1 (0210c82): the rest of the confirm's segment was parsed under the 1 KiB pre-authentication
   * limit, so a star member dropped a coordinator that sent the release right after the handshake (at
   * 10 000 pods it never got one). A fake coordinator connects from its own address (the one its name
   * resolves to; nothing listens there, so the member's own connects are refused) and sends confirm,
   * `peers` and the ~66 KB release in one write, or with the release cut after 1448 bytes.
   */
  it.each([
    ['in the same write as the confirm', undefined],
    ['cut after 1448 bytes, the rest 20 ms later', 1448],
  ])('a star member of 10 000 takes a release %s', async (_what, cut) => {
    const spec = await jobs.newJob(10_000);
    const m = 5;
    const coordinatorAddress = spec.ip(0);
    const scope = scopeOf(spec, { topology: 'star' });
    const roster = [...Array(spec.size).keys()].map((k) => spec.ip(k));
    const release = `${JSON.stringify({ t: 'release', roster: packAddresses(roster) })}\n`;
    expect(release.length).toBeGreaterThan(60_000);
    const coordinatorName = `${spec.job}-0.${spec.svc}.${spec.ns}.svc.cluster.local`;
    // Answers come at once until the coordinator's name is published, then (whole write) 150 ms late:
    // the member reads the whole first write before it can have verified the coordinator.
    const dns = await slowDns(0);
    const member = await startPod(spec, m, {
      topology: 'star',
      nameservers: [dns.nameserver],
      // Its fallback query comes seconds after the first NXDOMAIN: only the coordinator's evidence asks.
      retryMinDelayMs: 5000,
      retryMaxDelayMs: 10_000,
    });
    await eventually(() => dns.log.answered === 1); // NXDOMAIN: no coordinator yet
    expect(dns.log.asked).toEqual([coordinatorName]);
    await jobs.knot.update([`update add ${spec.job}-0.${spec.svc}.${spec.ns}.svc 5 A ${coordinatorAddress}`]);
    if (cut === undefined) dns.log.delayMs = 150;

    const c = await dial(member.address, member.port, coordinatorAddress);
    const peers = JSON.stringify({ t: 'peers', p: [[0, coordinatorAddress]] });
    const first = `${peers}\n${cut === undefined ? release : release.slice(0, cut)}`;
    expect(await c.clientHandshake(identity(scope, 0), m, { confirmWith: first })).toMatchObject({
      peerIndex: m,
      peerReleased: false,
    });
    if (cut !== undefined) {
      await sleep(20);
      await c.write(release.slice(cut));
    }
    // It keeps the connection and asks the coordinator's name on the evidence. A release that came before
    // it had verified us is kept, not taken: it is taken (ack) only once the name check passed.
    const next = await c.next();
    expect(dns.log.asked).toEqual([coordinatorName, coordinatorName]);
    expect(dns.log.answered).toBe(2);
    if (cut === undefined) {
      expect(next).toEqual({ t: 'ack' });
    } else if (next.t === 'done') {
      // Verified before the rest of the release arrived: it takes it when it is complete.
      expect(next).toMatchObject({ t: 'done', d: expect.any(String) });
      expect(await c.next()).toEqual({ t: 'ack' });
    } else {
      expect(next).toEqual({ t: 'ack' });
    }
    expect(await c.next()).toEqual({ t: 'bye', reason: 'released' });
    const result = await member.result;
    expect(result.peers.map((p) => p.ip)).toEqual(roster);
    expect(result.coordinator.ip).toBe(coordinatorAddress);
    await c.closed;
    const seen = next.t === 'done' ? ['welcome', 'done', 'ack', 'bye'] : ['welcome', 'ack', 'bye'];
    expect(c.frames.map((f) => f.t)).toEqual(seen);
  });

  /**
   * Defect 3 (0210c82): a lingering pod queued every frame an authenticated peer sent (30 MB of frames:
   * +850 MB of heap). Here a fake member 1 with a new instance handshakes with the released, lingering
   * coordinator of a 2-pod job and sends 30 MB of valid control frames.
   */
  it("a released pod's heap stays bounded while a peer floods it, and it still answers handshakes", async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const spec = await jobs.newJob(2);
    for (const i of [0, 1]) await jobs.knot.markReady(`${spec.job}-${i}`, spec.svc, spec.ns, spec.ip(i));
    const both = await Promise.all([0, 1].map((i) => startPod(spec, i, { lingerMs: 600_000 })));
    await Promise.all(both.map((p) => p.result));
    const scope = scopeOf(spec);

    const flooder = await dial(spec.ip(0), spec.port, spec.ip(1));
    expect(await flooder.clientHandshake(identity(scope, 1), 0)).toMatchObject({
      peerIndex: 0,
      peerReleased: true,
    });
    // A member the coordinator verifies again (same address, new instance) gets the release. It does not
    // acknowledge it (an ack would end the conversation), and floods instead.
    expect(await flooder.until('release')).toMatchObject({ t: 'release' });

    const frames = [
      { t: 'verified' },
      { t: 'done', d: 'x' },
      { t: 'ips', ips: ['10.1.2.3'] },
      { t: 'peers', p: [[1, '10.1.2.3']] },
    ]
      .map((f) => JSON.stringify(f))
      .join('\n');
    const chunk = `${`${frames}\n`.repeat(Math.floor((64 * 1024) / (frames.length + 1)))}`;
    const total = 30 * 1024 * 1024;
    const used = (): number => {
      gc();
      const u = process.memoryUsage();
      return u.heapUsed + u.arrayBuffers;
    };
    const base = used();
    let peak = base;
    let sent = 0;
    for (let n = 0; sent < total && !flooder.isClosed; n++) {
      if (!(await flooder.write(chunk))) break;
      sent += chunk.length;
      if (n % 16 === 15) peak = Math.max(peak, used());
    }
    expect(sent).toBeGreaterThanOrEqual(total);
    await sleep(100);
    peak = Math.max(peak, used());
    expect(peak - base).toBeLessThan(64 * 1024 * 1024);

    const late = await dial(spec.ip(0), spec.port, spec.ip(1));
    expect(await late.clientHandshake(identity(scope, 1), 0)).toMatchObject({
      peerIndex: 0,
      peerReleased: true,
    });
  });
});
