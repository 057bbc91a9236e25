/**
 * The full-mesh check (topology `mesh`). See docs/protocol.md for the protocol and why it cannot strand
 * a pod.
 *
 * In short, for every other index k this pod needs both
 *  - out(k): k's name resolves and a live authenticated connection exists with an address of that answer;
 *  - in(k):  k told us it has done the same for our name (`verified`), or k had already been released.
 * A pod releases when it has both for every k; a pod that lost its connection to k (k died) forgets
 * both and checks again. Peers are found by polling one name, the headless Service, and by gossip of
 * the addresses others saw, so each pod asks DNS for each peer name about once.
 */
import { isIP } from 'node:net';
import { HandshakeError, TimeoutError, type MissingPeer } from './errors.js';
import type { Channel, ControlMessage, HandshakeResult } from './handshake.js';
import { peerFqdn, serviceFqdn } from './identity.js';
import type { Config } from './options.js';
import { DnsError } from './errors.js';
import { RetryLater, Session, sleep, type FailureReason, type Loop } from './session.js';

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

const MAX_GOSSIP_ADDRESSES = 1024;

export class MeshBarrier extends Session {
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
  private selfSeen = false;
  private lastServiceFailure: string | undefined;

  constructor(config: Config, started: number) {
    super(config, started);
    this.maxKnownAddresses = 4 * config.size + MAX_GOSSIP_ADDRESSES;
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

  protected start(): void {
    void this.discover();
    void this.sweep();
  }

  protected responderLimits(): { maxConnections: number; maxPending: number } {
    return { maxConnections: 2 * this.config.size + 32, maxPending: 32 };
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
   * An address seen before is still in the Service: if the check of its owner sleeps on a negative
   * answer (NXDOMAIN/NODATA, typically the negative TTL of an answer older than this one), try again now.
   * Nothing else is woken: a connect or handshake failure is not contradicted by the Service, and waking
   * those on every poll would turn N pods x N peers into a retry storm. At most one query per such peer
   * per poll; a peer that passed is never asked again.
   */
  private remind(ip: string): void {
    const owner = this.addresses.get(ip)?.owner;
    const peer = owner === undefined ? undefined : this.peers.get(owner);
    const reason = peer?.lastFailure?.reason;
    if (peer?.check?.sleeping && (reason === 'nxdomain' || reason === 'nodata')) this.wake(peer.check);
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
    const { addresses, ttl } = await this.lookup(peer.fqdn, signal);
    if (peer.outDone) return;
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
  // ---- connections ----

  protected onInbound(channel: Channel, hs: HandshakeResult): void {
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
    // Who is at that address is known now: a probe of it (queued or sleeping) would only add a connection.
    if (entry.probe) {
      entry.probe.again = false;
      entry.probe.controller.abort();
    }
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
  private release(): void {
    const { config } = this;
    const ips: string[] = [];
    let selfIp = config.selfAddress;
    for (let k = 0; k < config.size; k++) {
      const peer = this.peers.get(k);
      const channel = peer?.channels.values().next().value;
      selfIp ??= channel?.socket.localAddress?.replace(/^::ffff:/, '');
      ips.push(peer?.address ?? '');
    }
    ips[config.index] = selfIp ?? config.listenAddress;
    this.settle(ips);
  }

  protected closeChannels(reason: 'released' | 'timeout' | 'aborted'): void {
    for (const peer of this.peers.values()) {
      // A peer that was released before us needs nothing from us any more: no goodbye to write and read.
      const bye = reason === 'released' && peer.released ? undefined : reason;
      for (const c of peer.channels) c.close(bye);
    }
  }

  protected missing(): number[] {
    const missing: number[] = [];
    for (const peer of this.peers.values()) if (!peer.outDone || !peer.inDone) missing.push(peer.index);
    return missing;
  }

  private runningNotInDns(from: string): string {
    return `it is running (connected from ${from}) but its address never appeared in ${serviceFqdn(this.config)}: not Ready?`;
  }

  protected timeoutError(): TimeoutError {
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
