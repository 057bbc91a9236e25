/**
 * waitForPeers(): the barrier. See docs/protocol.md for the protocol and why it cannot strand a pod.
 *
 * In short, for every other index k this pod needs both
 *  - out(k): k's name resolves and a live authenticated connection exists with an address of that answer;
 *  - in(k):  k told us it has done the same for our name (`verified`), or k had already been released.
 * A pod releases when it has both for every k; a pod that lost its connection to k (k died) forgets
 * both and checks again. Peers are found by polling one name, the headless Service, and by gossip of
 * the addresses others saw, so each pod asks DNS for each peer name about once.
 */
import { isIP, connect as tcpConnect } from 'node:net';
import pRetry, { AbortError as PRetryAbort } from 'p-retry';
import {
  AbortedError,
  ConnectError,
  DnsError,
  HandshakeError,
  KubepeersError,
  TimeoutError,
  type MissingPeer,
} from './errors.js';
import {
  Channel,
  clientHandshake,
  randomToken,
  scopeKey,
  type ControlMessage,
  type HandshakeResult,
  type Scope,
} from './handshake.js';
import { peerFqdn, peerHostname, serviceFqdn } from './identity.js';
import { resolveConfig, type Config, type WaitForPeersOptions } from './options.js';
import { Responder } from './responder.js';
import { StubResolver, type AddressType } from './resolver.js';

/** One member of the job in the released roster. */
export interface Peer {
  /** Completion index. */
  index: number;
  /** Pod hostname `<job>-<index>`. */
  hostname: string;
  /** `<job>-<index>.<svc>.<ns>.svc.<domain>`, without trailing dot. */
  fqdn: string;
  /** The address its name resolved to and at which it proved its identity. */
  ip: string;
  /** Its responder port. */
  port: number;
}

/** What {@link waitForPeers} resolves with once every peer has passed. */
export interface PeersResult {
  /** This pod's index. */
  index: number;
  /** Number of pods. */
  size: number;
  jobName: string;
  subdomain: string;
  namespace: string;
  clusterDomain: string;
  /** This pod's own entry. */
  self: Peer;
  /** Every member, this pod included, ordered by index. */
  peers: Peer[];
  /** The member with index 0 (what frameworks call master, head or coordinator). */
  coordinator: Peer;
  /** Milliseconds from the call to the release. */
  elapsedMs: number;
}

type FailureReason = Exclude<MissingPeer['reason'], 'unconfirmed'>;

interface PeerState {
  index: number;
  fqdn: string;
  instance: string | undefined;
  channels: Set<Channel>;
  /** Address verified for out(k). */
  address: string | undefined;
  /** Addresses of k's last positive DNS answer. */
  resolved: string[];
  outDone: boolean;
  inDone: boolean;
  released: boolean;
  lastFailure: { reason: FailureReason; detail: string } | undefined;
  check: Loop | undefined;
}

interface Loop {
  controller: AbortController;
  sleeping: boolean;
  again: boolean;
}

/** A failure worth retrying, with the DNS-given minimum wait before the next try. */
class RetryLater extends Error {
  constructor(
    readonly reason: FailureReason,
    message: string,
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

const MAX_CONCURRENT_CONNECTS = 64;
const MAX_GOSSIP_ADDRESSES = 1024;

/**
 * Waits until every pod of this Indexed Job resolves in cluster DNS and proves its identity over TCP,
 * and every pod has verified this one. Resolves with the roster; rejects with a {@link KubepeersError}
 * (`ERR_KUBEPEERS_CONFIG` before any I/O, `ERR_KUBEPEERS_LISTEN`, `ERR_KUBEPEERS_TIMEOUT`,
 * `ERR_KUBEPEERS_ABORTED`). After it settles nothing it started keeps the process alive.
 */
export async function waitForPeers(options: WaitForPeersOptions = {}): Promise<PeersResult> {
  const started = performance.now();
  const config = await resolveConfig(options);
  if (config.signal?.aborted) throw new AbortedError({ cause: config.signal.reason });
  return new Barrier(config, started).run();
}

class Barrier {
  private readonly scope: Scope;
  private readonly key: Buffer;
  private readonly instance = randomToken();
  private readonly resolver: StubResolver;
  private readonly peers = new Map<number, PeerState>();
  /** Addresses seen in the Service answer, by our own poll or by gossip. */
  private readonly seenInDns = new Set<string>();
  /** Gossip stops being read past this many known addresses: a peer cannot make us probe without end. */
  private readonly maxKnownAddresses: number;
  /** What we know of an address: being probed, owned by a peer, or foreign. */
  private readonly addresses = new Map<
    string,
    { owner?: number; foreign?: string; failure?: string; probe?: Loop }
  >();
  private readonly stop = new AbortController();
  private readonly types: AddressType[];
  private responder: Responder | undefined;
  private released = false;
  private settled = false;
  private selfSeen = false;
  private lastServiceFailure: string | undefined;
  private lastReady = -1;
  private connectSlots = MAX_CONCURRENT_CONNECTS;
  private readonly connectQueue: (() => void)[] = [];
  private resolveRun!: (r: PeersResult) => void;
  private rejectRun!: (e: unknown) => void;

  constructor(
    private readonly config: Config,
    private readonly started: number,
  ) {
    this.scope = {
      namespace: config.namespace,
      subdomain: config.subdomain,
      clusterDomain: config.clusterDomain,
      jobName: config.jobName,
      runId: config.runId,
      size: config.size,
    };
    this.key = scopeKey(this.scope, config.secret);
    this.resolver = new StubResolver({
      nameservers: config.nameservers,
      timeoutMs: config.dnsTimeoutMs,
      attempts: config.dnsAttempts,
    });
    this.maxKnownAddresses = 4 * config.size + MAX_GOSSIP_ADDRESSES;
    this.types = config.family === 'dual' ? ['A', 'AAAA'] : [config.family === 6 ? 'AAAA' : 'A'];
    for (let k = 0; k < config.size; k++) {
      if (k === config.index) continue;
      this.peers.set(k, {
        index: k,
        fqdn: `${peerFqdn(config, k)}.`,
        instance: undefined,
        channels: new Set(),
        address: undefined,
        resolved: [],
        outDone: false,
        inDone: false,
        released: false,
        lastFailure: undefined,
        check: undefined,
      });
    }
  }

  async run(): Promise<PeersResult> {
    const { config } = this;
    const result = new Promise<PeersResult>((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
    // The one handle that keeps the process alive while we wait.
    const deadline = setTimeout(() => this.fail(this.timeoutError()), config.timeoutMs);
    const onAbort = (): void => {
      if (this.settled) void this.closeResponder();
      else this.fail(new AbortedError({ cause: config.signal?.reason }));
    };
    config.signal?.addEventListener('abort', onAbort, { once: true });
    result.then(
      () => clearTimeout(deadline),
      () => {
        clearTimeout(deadline);
        config.signal?.removeEventListener('abort', onAbort);
      },
    );

    if (this.peers.size === 0) {
      this.release();
      return result;
    }
    this.responder = new Responder({
      address: config.listenAddress,
      port: config.port,
      scope: this.scope,
      key: this.key,
      index: config.index,
      instance: this.instance,
      handshakeTimeoutMs: config.connectTimeoutMs,
      released: () => this.released,
      onPeer: (channel, hs) => this.onInbound(channel, hs),
    });
    try {
      await this.responder.listen();
    } catch (err) {
      this.fail(err);
      return result;
    }
    this.report();
    void this.discover();
    void this.sweep();
    return result;
  }

  // ---- discovery: poll the Service name, gossip what is new ----

  private async discover(): Promise<void> {
    const service = `${serviceFqdn(this.config)}.`;
    await this.every(this.config.pollIntervalMs, async () => {
      const fresh: string[] = [];
      for (const type of this.types) {
        try {
          const answer = await this.resolver.query(service, type, { signal: this.stop.signal });
          if (answer.status !== 'ok') {
            this.lastServiceFailure = `${service} ${type}: ${answer.status.toUpperCase()}`;
            continue;
          }
          this.lastServiceFailure = undefined;
          for (const ip of answer.addresses) {
            if (!this.seenInDns.has(ip)) {
              this.seenInDns.add(ip);
              fresh.push(ip);
            } else {
              this.remind(ip);
            }
          }
          if (this.config.selfAddress && answer.addresses.includes(this.config.selfAddress))
            this.selfSeen = true;
        } catch (err) {
          if (err instanceof DnsError) this.lastServiceFailure = err.message;
          else throw err;
        }
      }
      if (fresh.length > 0) {
        this.broadcast({ t: 'ips', ips: fresh });
        this.onAddresses(fresh);
      }
    });
  }

  /**
   * Runs `tick` now and then every `intervalMs`, jittered uniformly over [2/3, 4/3] × interval, until the
   * barrier settles: p-retry as a poller (every attempt "fails"; factor 1 and randomize give the jitter).
   */
  private async every(intervalMs: number, tick: () => Promise<void>): Promise<void> {
    await pRetry(
      async () => {
        await tick();
        throw new Error('tick again');
      },
      {
        retries: Number.POSITIVE_INFINITY,
        factor: 1,
        minTimeout: (intervalMs * 2) / 3,
        maxTimeout: (intervalMs * 4) / 3,
        randomize: true,
        unref: true,
        signal: this.stop.signal,
      },
    ).catch(() => {});
  }

  /**
   * Slow fallback for peers no DNS answer or gossip has pointed at: once per retry cap (jittered), check
   * the name of one such peer, round robin. Costs each pod at most one query per `retryMaxDelayMs`
   * whatever the job size, and gives the timeout error a reason (NXDOMAIN, wrong identity) for each.
   */
  private async sweep(): Promise<void> {
    const cap = this.config.retryMaxDelayMs;
    await sleep(cap * (0.5 + Math.random()), this.stop.signal);
    let turn = 0;
    await this.every(cap, async () => {
      const idle = [...this.peers.values()].filter((p) => !p.outDone && !p.check);
      const peer = idle[turn++ % Math.max(1, idle.length)];
      if (!peer) return;
      await this.checkOnce(peer, this.stop.signal).catch((err: unknown) => {
        if (err instanceof RetryLater) peer.lastFailure = { reason: err.reason, detail: err.message };
      });
    });
  }

  /**
   * An address seen before is still in the Service: if the check of its owner (or its probe) sleeps,
   * typically on the negative TTL of an answer older than this one, try again now. At most one query
   * per such peer per poll; a peer that passed is never asked again.
   */
  private remind(ip: string): void {
    const entry = this.addresses.get(ip);
    const loop = entry?.owner !== undefined ? this.peers.get(entry.owner)?.check : entry?.probe;
    if (loop?.sleeping) this.wake(loop);
  }

  private onAddresses(ips: readonly string[]): void {
    for (const ip of ips) {
      if (this.settled || ip === this.config.selfAddress) continue;
      const known = this.addresses.get(ip);
      if (known?.owner !== undefined) {
        const peer = this.peers.get(known.owner);
        if (peer && !peer.outDone) this.kick(peer);
      } else if (known?.probe) {
        this.wake(known.probe);
      } else if (!known?.foreign) {
        this.probe(ip);
      }
    }
  }

  /** Connects to an address of unknown owner and lets the handshake say who it is. */
  private probe(ip: string): void {
    const entry = this.addresses.get(ip) ?? {};
    this.addresses.set(ip, entry);
    entry.probe = this.loop(
      async (signal) => {
        const { channel, hs } = await this.connectPeer(ip, -1, signal);
        this.attach(channel, hs);
        const peer = this.peers.get(hs.peerIndex);
        if (peer) this.kick(peer); // its address came from DNS: its name should resolve now
      },
      (err) => {
        if (err instanceof HandshakeError && (err.reason === 'mismatch' || err.reason === 'bad-proof')) {
          entry.foreign = err.message;
          return false;
        }
        if (err instanceof Error) entry.failure = err.message;
        return true;
      },
      () => {
        delete entry.probe;
      },
    );
  }

  // ---- checking one peer: resolve its name, verify an address of the answer ----

  /** Starts (or restarts without delay) the check of `peer`. */
  private kick(peer: PeerState): void {
    if (this.settled || peer.outDone) return;
    if (peer.check) {
      this.wake(peer.check);
      return;
    }
    peer.check = this.loop(
      async (signal) => this.checkOnce(peer, signal),
      (err) => {
        if (err instanceof RetryLater) peer.lastFailure = { reason: err.reason, detail: err.message };
        return !peer.outDone;
      },
      () => {
        peer.check = undefined;
      },
    );
  }

  private async checkOnce(peer: PeerState, signal: AbortSignal): Promise<void> {
    const addresses: string[] = [];
    let ttl = Number.POSITIVE_INFINITY;
    let negative: RetryLater | undefined;
    for (const type of this.types) {
      try {
        const answer = await this.resolver.query(peer.fqdn, type, { signal });
        if (answer.status === 'ok') {
          addresses.push(...answer.addresses);
          ttl = Math.min(ttl, answer.ttl);
        } else {
          negative = new RetryLater(
            answer.status,
            `${peer.fqdn} ${type}: ${answer.status.toUpperCase()} from ${answer.server}`,
            Math.min(answer.negativeTtl * 1000, this.config.retryMaxDelayMs),
          );
        }
      } catch (err) {
        if (err instanceof DnsError) negative = new RetryLater('dns-error', err.message);
        else throw err;
      }
    }
    if (peer.outDone) return;
    if (addresses.length === 0) throw negative ?? new RetryLater('nodata', `${peer.fqdn}: no address`);
    peer.resolved = addresses;
    const live = [...peer.channels].find((c) => addresses.includes(c.remoteAddress));
    if (live) {
      this.markOut(peer, live);
      return;
    }
    let last: unknown;
    for (const ip of addresses) {
      try {
        const { channel, hs } = await this.connectPeer(ip, peer.index, signal);
        this.attach(channel, hs);
        if (!peer.outDone) this.markOut(peer, channel);
        return;
      } catch (err) {
        if (signal.aborted) throw err;
        last = err;
      }
    }
    const retryAfterMs = Math.min(Number.isFinite(ttl) ? ttl * 1000 : 0, this.config.retryMaxDelayMs);
    if (last instanceof HandshakeError) {
      throw new RetryLater(
        last.reason === 'mismatch' || last.reason === 'bad-proof' ? 'wrong-identity' : 'connect-failed',
        last.message,
        retryAfterMs,
      );
    }
    throw new RetryLater('connect-failed', last instanceof Error ? last.message : String(last), retryAfterMs);
  }

  /**
   * Runs `attempt` under p-retry until it succeeds or `retry` says stop: exponential, jittered, capped
   * delays, lengthened to the DNS-given minimum. {@link wake} skips the current wait.
   */
  private loop(
    attempt: (signal: AbortSignal) => Promise<void>,
    retry: (err: unknown) => boolean,
    done: () => void,
  ): Loop {
    const state: Loop = { controller: new AbortController(), sleeping: false, again: false };
    const run = (): void => {
      const signal = AbortSignal.any([state.controller.signal, this.stop.signal]);
      let succeeded = false;
      pRetry(
        async () => {
          state.sleeping = false;
          state.again = false;
          await attempt(signal);
        },
        {
          retries: Number.POSITIVE_INFINITY,
          factor: 2,
          minTimeout: this.config.retryMinDelayMs,
          maxTimeout: this.config.retryMaxDelayMs,
          randomize: true,
          unref: true,
          signal,
          shouldRetry: ({ error }) => !this.settled && retry(error),
          onFailedAttempt: async ({ error }) => {
            if (state.again) {
              state.controller.abort();
              return;
            }
            state.sleeping = true;
            const extra = error instanceof RetryLater ? error.retryAfterMs - this.config.retryMinDelayMs : 0;
            if (extra > 0) await sleep(extra, signal);
          },
        },
      )
        .then(() => {
          succeeded = true;
        })
        .catch((err: unknown) => {
          if (!(err instanceof Error) || err instanceof PRetryAbort) return;
          if (!signal.aborted) retry(err);
        })
        .finally(() => {
          if (state.again && !succeeded && !this.settled && !this.stop.signal.aborted) {
            state.controller = new AbortController();
            run();
          } else {
            done();
          }
        });
    };
    run();
    return state;
  }

  /** New evidence: retry now rather than after the backoff. */
  private wake(loop: Loop): void {
    loop.again = true;
    if (loop.sleeping) loop.controller.abort();
  }

  private async connectPeer(
    ip: string,
    expect: number,
    signal: AbortSignal,
  ): Promise<{ channel: Channel; hs: HandshakeResult }> {
    if (this.connectSlots === 0) await new Promise<void>((r) => this.connectQueue.push(r));
    else this.connectSlots--;
    try {
      signal.throwIfAborted();
      const { port, connectTimeoutMs } = this.config;
      const socket = await new Promise<import('node:net').Socket>((resolve, reject) => {
        const s = tcpConnect({ host: ip, port, timeout: connectTimeoutMs });
        s.unref();
        const onAbort = (): void => {
          s.destroy();
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const done = (err?: Error): void => {
          signal.removeEventListener('abort', onAbort);
          s.setTimeout(0);
          if (err) {
            s.destroy();
            reject(err);
          } else resolve(s);
        };
        s.once('connect', () => done());
        s.once('timeout', () => done(new ConnectError(ip, port, 'ETIMEDOUT')));
        s.once('error', (e: NodeJS.ErrnoException) =>
          done(new ConnectError(ip, port, e.code ?? e.message, { cause: e })),
        );
      });
      const channel = new Channel(socket);
      const local = { scope: this.scope, key: this.key, index: this.config.index, instance: this.instance };
      const hs = await clientHandshake(channel, local, expect, connectTimeoutMs, port);
      return { channel, hs };
    } finally {
      const next = this.connectQueue.shift();
      if (next) next();
      else this.connectSlots++;
    }
  }

  // ---- connections ----

  private onInbound(channel: Channel, hs: HandshakeResult): void {
    if (this.settled) return; // lingering: answer handshakes, keep nothing
    this.attach(channel, hs);
    const peer = this.peers.get(hs.peerIndex);
    // Its address is in its last DNS answer already: the inbound connection verifies it too.
    if (peer && !peer.outDone && peer.resolved.includes(channel.remoteAddress)) this.markOut(peer, channel);
  }

  private attach(channel: Channel, hs: HandshakeResult): void {
    const peer = this.peers.get(hs.peerIndex);
    if (!peer || this.settled || channel.isClosed) {
      channel.close(this.released ? 'released' : undefined);
      return;
    }
    if (peer.instance !== undefined && peer.instance !== hs.peerInstance) {
      // A new process for that index (restarted pod): nothing we knew of the old one holds.
      for (const old of peer.channels) old.close();
      peer.channels.clear();
      this.forget(peer, { reason: 'connect-failed', detail: `index ${peer.index} restarted` });
    }
    peer.instance = hs.peerInstance;
    peer.channels.add(channel);
    const entry = this.addresses.get(channel.remoteAddress) ?? {};
    entry.owner = peer.index;
    delete entry.foreign;
    this.addresses.set(channel.remoteAddress, entry);
    channel.socket.setKeepAlive(true, 5000);
    channel.onClose = (bye) => this.onChannelClosed(peer, channel, bye?.reason);
    channel.startMessages((message) => this.onMessage(peer, channel, message));
    if (this.seenInDns.has(channel.remoteAddress) && !peer.outDone) this.kick(peer);
    if (hs.peerReleased) {
      peer.released = true;
      peer.inDone = true;
    }
    if (peer.outDone && peer.address === undefined) peer.address = channel.remoteAddress;
    this.update();
  }

  private onMessage(peer: PeerState, channel: Channel, message: ControlMessage): void {
    if (this.settled || !peer.channels.has(channel)) return;
    if (message.t === 'verified') {
      peer.inDone = true;
      this.update();
    } else if (
      message.t === 'ips' &&
      Array.isArray(message.ips) &&
      this.seenInDns.size < this.maxKnownAddresses
    ) {
      const ips = message.ips
        .slice(0, MAX_GOSSIP_ADDRESSES)
        .filter((ip): ip is string => typeof ip === 'string' && isIP(ip) !== 0 && !this.seenInDns.has(ip));
      for (const ip of ips) this.seenInDns.add(ip);
      this.onAddresses(ips);
    }
  }

  private onChannelClosed(peer: PeerState, channel: Channel, bye: string | undefined): void {
    if (!peer.channels.delete(channel) || this.settled) return;
    if (bye === 'released') {
      peer.released = true;
      peer.inDone = true;
      this.update();
      return;
    }
    if (peer.channels.size > 0 || peer.released) return;
    const from = channel.remoteAddress;
    let why: NonNullable<PeerState['lastFailure']>;
    if (!bye) why = { reason: 'connect-failed', detail: `connection with ${from} lost` };
    else if (peer.outDone)
      why = { reason: 'gave-up', detail: `it stopped waiting (${bye}) and disconnected from ${from}` };
    else
      why = { reason: 'not-seen', detail: `${this.runningNotInDns(from)}; it has stopped waiting (${bye})` };
    this.forget(peer, why);
    this.update();
    this.kick(peer);
  }

  /** Drops what we knew of a peer that went away. A failure seen before it was verified stays the reason. */
  private forget(peer: PeerState, why: NonNullable<PeerState['lastFailure']>): void {
    if (peer.outDone || !peer.lastFailure) peer.lastFailure = why;
    if (peer.address) this.addresses.delete(peer.address);
    peer.outDone = false;
    peer.inDone = false;
    peer.released = false;
    peer.address = undefined;
    peer.resolved = [];
  }

  private markOut(peer: PeerState, channel: Channel): void {
    peer.outDone = true;
    peer.address = channel.remoteAddress;
    peer.lastFailure = undefined;
    channel.send({ t: 'verified' });
    this.update();
  }

  private broadcast(message: ControlMessage): void {
    for (const peer of this.peers.values()) {
      const first = peer.channels.values().next();
      if (!first.done) first.value.send(message);
    }
  }

  // ---- outcome ----

  private update(): void {
    if (this.settled) return;
    this.report();
    for (const peer of this.peers.values()) if (!peer.outDone || !peer.inDone) return;
    this.release();
  }

  private report(): void {
    const { onProgress } = this.config;
    if (!onProgress) return;
    const missing: number[] = [];
    for (const peer of this.peers.values()) if (!peer.outDone || !peer.inDone) missing.push(peer.index);
    const ready = this.peers.size - missing.length;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    try {
      onProgress({
        ready,
        total: this.peers.size,
        missing,
        elapsedMs: Math.round(performance.now() - this.started),
      });
    } catch {
      // A throwing progress callback must not break the barrier.
    }
  }

  private release(): void {
    const { config } = this;
    this.released = true;
    this.settled = true;
    this.stop.abort();
    let selfIp = config.selfAddress;
    const roster: Peer[] = [];
    for (let k = 0; k < config.size; k++) {
      const peer = this.peers.get(k);
      const channel = peer?.channels.values().next().value;
      selfIp ??= channel?.socket.localAddress?.replace(/^::ffff:/, '');
      roster.push({
        index: k,
        hostname: peerHostname(config, k),
        fqdn: peerFqdn(config, k),
        ip: peer?.address ?? '',
        port: config.port,
      });
    }
    const self = roster[config.index]!;
    self.ip = selfIp ?? config.listenAddress;
    for (const peer of this.peers.values()) for (const c of peer.channels) c.close('released');
    if (this.responder && config.lingerMs > 0)
      setTimeout(() => void this.closeResponder(), config.lingerMs).unref();
    else void this.closeResponder();
    this.resolveRun({
      index: config.index,
      size: config.size,
      jobName: config.jobName,
      subdomain: config.subdomain,
      namespace: config.namespace,
      clusterDomain: config.clusterDomain,
      self,
      peers: roster,
      coordinator: roster[0]!,
      elapsedMs: Math.round(performance.now() - this.started),
    });
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.stop.abort();
    const reason = err instanceof AbortedError ? 'aborted' : 'timeout';
    for (const peer of this.peers.values()) for (const c of peer.channels) c.close(reason);
    void this.closeResponder();
    this.rejectRun(err instanceof KubepeersError ? err : new AbortedError({ cause: err }));
  }

  private closeResponder(): Promise<void> {
    const r = this.responder;
    this.responder = undefined;
    return r ? r.close() : Promise.resolve();
  }

  private runningNotInDns(from: string): string {
    return `it is running (connected from ${from}) but its address never appeared in ${serviceFqdn(this.config)}: not Ready?`;
  }

  private timeoutError(): TimeoutError {
    const missing: MissingPeer[] = [];
    for (const peer of this.peers.values()) {
      if (peer.outDone && peer.inDone) continue;
      let reason: MissingPeer['reason'];
      let detail: string;
      if (peer.outDone) {
        reason = 'unconfirmed';
        detail = `verified at ${peer.address ?? '?'} but it has not verified ${peerFqdn(this.config, this.config.index)} (can it resolve and reach this pod?)`;
      } else if (peer.lastFailure) {
        ({ reason, detail } = peer.lastFailure);
      } else if (peer.channels.size > 0) {
        reason = 'not-seen';
        detail = this.runningNotInDns([...peer.channels][0]!.remoteAddress);
      } else {
        reason = 'not-seen';
        detail = `no address of ${serviceFqdn(this.config)} belonged to it and it never connected${this.lastServiceFailure ? ` (last Service lookup: ${this.lastServiceFailure})` : ''}`;
      }
      missing.push({ index: peer.index, fqdn: peer.fqdn, reason, detail });
    }
    // Causes first: peers that gave up did so because someone else was missing.
    missing.sort(
      (x, y) => Number(x.reason === 'gave-up') - Number(y.reason === 'gave-up') || x.index - y.index,
    );
    const hints: string[] = [];
    if (this.config.selfAddress && !this.selfSeen) {
      hints.push(
        `This pod's own address ${this.config.selfAddress} never appeared in ${serviceFqdn(this.config)}: ` +
          'the pod is not Ready (peers cannot resolve it either). If kubepeers runs in an init container or before a ' +
          'readiness probe passes, set publishNotReadyAddresses: true on the headless Service.',
      );
    }
    // Addresses of the Service that never proved to be a member: why a "not-seen" peer may be missing.
    const strangers = [...this.addresses].filter(
      ([, e]) => e.owner === undefined && (e.foreign ?? e.failure),
    );
    if (strangers.length > 0) {
      const shown = strangers.slice(0, 5).map(([ip, e]) => `  ${ip}: ${e.foreign ?? e.failure}`);
      if (strangers.length > 5) shown.push(`  ... and ${strangers.length - 5} more`);
      hints.push(
        `Addresses in ${serviceFqdn(this.config)} that did not prove to be a member:\n${shown.join('\n')}`,
      );
    }
    return new TimeoutError(this.config.timeoutMs, missing, hints.length > 0 ? hints.join('\n') : undefined);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
