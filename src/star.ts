/**
 * The star check (topology `star`), for jobs too big for a full mesh. See docs/protocol.md.
 *
 * Every member (index k > 0) resolves only the coordinator's name (index 0), connects to an address of
 * that answer and proves itself in the handshake. The coordinator admits member k once k's own name
 * resolves to the address k connected from (one query per member when it is Ready), and releases
 * everyone with the roster of verified addresses once all are admitted. Total DNS queries and connections
 * are O(N) for the job.
 *
 * Sockets are bounded on every pod. A member holds at most its connection to the coordinator, one
 * inbound release and its listener. The coordinator holds at most {@link MAX_HELD} member connections:
 * in a job of up to MAX_HELD + 1 pods it keeps every member connected (a lost member is noticed at once
 * and the release is one message on each connection); in a bigger job it parks each member once
 * admitted: the member hangs up, checks in again every {@link checkInMs} (which also tells it when the
 * coordinator restarted) and the coordinator delivers the release to the member's responder, at most
 * MAX_CONCURRENT_CONNECTS at a time. Members beyond the held capacity are told to come back later.
 */
import { HandshakeError, TimeoutError, type MissingPeer } from './errors.js';
import {
  packAddresses,
  unpackAddresses,
  type Channel,
  type ControlMessage,
  type HandshakeResult,
} from './handshake.js';
import { peerFqdn, serviceFqdn } from './identity.js';
import type { Config } from './options.js';
import {
  MAX_CONCURRENT_CONNECTS,
  MAX_CONCURRENT_LOOKUPS,
  RetryLater,
  Session,
  sleep,
  type FailureReason,
  type Loop,
} from './session.js';

/** Member connections the coordinator holds at once (being checked, or admitted in a small job). */
export const MAX_HELD = 256;
/** Time between two admission slots handed out to members told to come back (2 000 a second). */
const ADMISSION_SPACING_MS = 0.5;
/** The coordinator polls the Service this many times as often as a mesh pod would, ... */
const COORDINATOR_POLL_FACTOR = 10;
/** ... but at most every this many ms, ... */
const COORDINATOR_POLL_MIN_MS = 50;
/** ... and not more often than every N x this many ms (a Service answer holds N addresses). */
const COORDINATOR_POLL_MS_PER_POD = 1;
/** Handshakes the coordinator's responder runs at once: a burst of arrivals waits less. */
const COORDINATOR_MAX_PENDING = 128;
/** Handshakes a member's responder runs at once (it expects only the coordinator's push). */
const MAX_PENDING = 32;

/**
 * File descriptors the coordinator needs at most, besides Node's own handful: the listener, held members,
 * handshakes in progress and connections closing, release pushes and DNS lookups in flight.
 */
export const COORDINATOR_MAX_SOCKETS =
  1 + MAX_HELD + 2 * COORDINATOR_MAX_PENDING + MAX_CONCURRENT_CONNECTS + MAX_CONCURRENT_LOOKUPS;
/** The same for a member: listener, its connection to the coordinator, an inbound release and a lookup. */
export const MEMBER_MAX_SOCKETS = 1 + 1 + MAX_PENDING + 1;

/**
 * Mean interval between two check-ins of a parked member: the retry cap (10 s by default), or 2 ms per pod
 * when that is longer (20 s at 10 000 pods: the coordinator then answers about 500 check-ins a second).
 */
export function checkInMs(config: Pick<Config, 'size' | 'retryMaxDelayMs'>): number {
  return Math.max(config.retryMaxDelayMs, 2 * config.size);
}

type Failure = { reason: FailureReason; detail: string };

interface Member {
  index: number;
  fqdn: string;
  instance: string | undefined;
  /** Connection held open (being checked, or admitted in a small job). */
  channel: Channel | undefined;
  /** Address verified by the name check; set while admitted. */
  ip: string | undefined;
  admitted: boolean;
  /** Parked members must check in before this time (performance.now()). */
  leaseUntil: number;
  check: Loop | undefined;
  lastFailure: Failure | undefined;
}

export class StarBarrier extends Session {
  private readonly coordinator: boolean;
  // coordinator
  private readonly members = new Map<number, Member>();
  private readonly holdAll: boolean;
  private held = 0;
  private ips: string[] = [];
  /** The release frame, serialized once for every member. */
  private releaseFrame = '';
  private lastServiceFailure: string | undefined;
  /** Addresses of the last Service answer; undefined when the last lookup failed (or before the first). */
  private serviceIps: Set<string> | undefined;
  private nextSlot = 0;
  // member
  private link: Channel | undefined;
  private linkLoop: Loop | undefined;
  private coordinatorIp: string | undefined;
  /** The coordinator's last DNS answer, reused until its TTL runs out while the coordinator is busy. */
  private coordinatorAnswer: { addresses: string[]; until: number } | undefined;
  private admitted = false;
  private memberFailure: Failure | undefined;

  constructor(config: Config, started: number) {
    super(config, started);
    this.coordinator = config.index === 0;
    this.holdAll = config.size - 1 <= MAX_HELD;
    if (!this.coordinator) return;
    for (let k = 1; k < config.size; k++) {
      this.members.set(k, {
        index: k,
        fqdn: `${peerFqdn(config, k)}.`,
        instance: undefined,
        channel: undefined,
        ip: undefined,
        admitted: false,
        leaseUntil: 0,
        check: undefined,
        lastFailure: undefined,
      });
    }
  }

  protected responderLimits(): { maxConnections: number; maxPending: number } {
    return this.coordinator
      ? { maxConnections: MAX_HELD + 2 * COORDINATOR_MAX_PENDING, maxPending: COORDINATOR_MAX_PENDING }
      : { maxConnections: 1 + MAX_PENDING, maxPending: MAX_PENDING };
  }

  protected start(): void {
    if (this.coordinator) {
      void this.pollService();
      if (!this.holdAll) void this.every(checkInMs(this.config) / 2, async () => this.expireLeases());
      let first = true;
      void this.every(checkInMs(this.config), async () => {
        if (!first) await this.recall();
        first = false;
      });
    } else {
      this.connectToCoordinator();
    }
  }

  protected onInbound(channel: Channel, hs: HandshakeResult): void {
    if (this.coordinator) this.admit(channel, hs);
    else this.onPush(channel, hs);
  }

  // ---- coordinator ----

  /**
   * Polls the Service name while a member waits to be admitted (and once at the start). An address there
   * belongs to a pod that turned Ready: the check of the member that connected from it runs now, instead
   * of waiting out the negative TTL of its last answer (5 s in CoreDNS), and a check asks for a member's
   * name only once its address is there (see {@link admit}). Only the coordinator polls, so it may poll
   * more often than a mesh pod: every max(50 ms, pollIntervalMs / 10, N x 1 ms), i.e. 64 ms at 64 pods,
   * 1 s at 1 000: at most about a thousand addresses a second in Service answers. (At tens of thousands of
   * pods the answer outgrows a DNS message; the checks then ask for each name on their own backoff.)
   */
  private async pollService(): Promise<void> {
    const service = `${serviceFqdn(this.config)}.`;
    const { pollIntervalMs, size } = this.config;
    const interval = Math.max(
      COORDINATOR_POLL_MIN_MS,
      pollIntervalMs / COORDINATOR_POLL_FACTOR,
      size * COORDINATOR_POLL_MS_PER_POD,
    );
    await this.every(interval, async () => {
      const pending = new Map<string, Member>();
      for (const m of this.members.values())
        if (m.channel && !m.admitted) pending.set(m.channel.remoteAddress, m);
      if (pending.size === 0 && this.serviceIps) return;
      try {
        const { addresses } = await this.lookup(service, this.stop.signal);
        this.lastServiceFailure = undefined;
        this.serviceIps = new Set(addresses);
      } catch (err) {
        if (!(err instanceof RetryLater)) throw err;
        this.lastServiceFailure = err.message;
        // No Ready pod yet is an answer too; a failed lookup is not: checks then ask for names directly.
        this.serviceIps = err.reason === 'nxdomain' || err.reason === 'nodata' ? new Set() : undefined;
      }
      for (const ip of this.serviceIps ?? []) {
        const loop = pending.get(ip)?.check;
        if (loop?.sleeping) this.wake(loop);
      }
    });
  }

  private admit(channel: Channel, hs: HandshakeResult): void {
    const m = this.members.get(hs.peerIndex);
    if (!m || (this.settled && !this.released)) {
      channel.close();
      return;
    }
    const from = channel.remoteAddress;
    if (m.instance !== hs.peerInstance) {
      // A new process for that index (first contact, or the pod restarted): check it afresh.
      this.unhold(m)?.close();
      m.admitted = false;
      m.ip = undefined;
      m.instance = hs.peerInstance;
    }
    if (m.admitted && m.ip === from) {
      if (this.released) void this.deliver(channel, this.lingering.signal);
      else this.keepOrPark(m, channel);
      return;
    }
    // The same process connecting again has given up on its other connection (it runs one at a time).
    this.unhold(m)?.close();
    if (this.held >= MAX_HELD) {
      // No room: come back in a slot of its own.
      m.lastFailure ??= {
        reason: 'connect-failed',
        detail: `connected from ${from} while the coordinator was full; told to come back`,
      };
      channel.send({ t: 'retry', ms: this.retrySlot() });
      channel.close();
      return;
    }
    this.hold(m, channel);
    const until = this.released ? this.lingering.signal : this.stop.signal;
    const since = performance.now();
    const check: Loop = (m.check = this.loop(
      async (signal) => {
        // Its name is asked for once its address is in the Service (it is Ready): asked earlier, an
        // NXDOMAIN may be cached for 5 s in front of us. After the retry cap it is asked for anyway.
        const { serviceIps } = this;
        if (serviceIps && !serviceIps.has(from) && performance.now() - since < this.config.retryMaxDelayMs) {
          throw new RetryLater(
            'not-seen',
            `connected from ${from}, which is not in ${serviceFqdn(this.config)} yet (not Ready?)`,
            this.config.retryMaxDelayMs,
          );
        }
        const { addresses, ttl } = await this.lookup(m.fqdn, signal);
        if (m.channel !== channel) return; // replaced or gone meanwhile
        if (!addresses.includes(from)) {
          throw new RetryLater(
            'wrong-identity',
            `${m.fqdn} resolves to ${addresses.join(', ')} but index ${m.index} connected from ${from} (stale DNS record?)`,
            Math.min(ttl * 1000, this.config.retryMaxDelayMs),
          );
        }
        m.admitted = true;
        m.ip = from;
        m.lastFailure = undefined;
        if (this.released) {
          this.ips[m.index] = from;
          this.releaseFrame = '';
          void this.deliver(channel, this.lingering.signal);
        } else {
          this.keepOrPark(m, channel);
        }
      },
      (err) => {
        if (err instanceof RetryLater) m.lastFailure = { reason: err.reason, detail: err.message };
        return m.channel === channel;
      },
      () => {
        if (m.check === check) m.check = undefined;
      },
      until,
    ));
  }

  /**
   * When a member told to come back should: the next free slot, {@link ADMISSION_SPACING_MS} after the
   * last one given, so that a crowd of N returns spread over N × spacing instead of all at once.
   */
  private retrySlot(): number {
    const now = performance.now();
    // Capped: a flood of reconnects cannot push real members' slots further than one round of the job.
    const horizon = now + this.config.retryMaxDelayMs + this.config.size * ADMISSION_SPACING_MS;
    this.nextSlot = Math.min(
      horizon,
      Math.max(this.nextSlot, now + this.config.retryMinDelayMs) + ADMISSION_SPACING_MS,
    );
    return Math.round(this.nextSlot - now);
  }

  private hold(m: Member, channel: Channel): void {
    m.channel = channel;
    this.held++;
    channel.socket.setKeepAlive(true, 5000); // a member whose node died silently is noticed
    channel.onClose = (bye) => {
      if (m.channel !== channel) return;
      this.unhold(m);
      if (this.settled) return;
      if (m.admitted) {
        m.admitted = false;
        m.ip = undefined;
        m.lastFailure = { reason: 'connect-failed', detail: `connection from ${channel.remoteAddress} lost` };
      } else if (!m.lastFailure) {
        m.lastFailure = {
          reason: bye ? 'gave-up' : 'connect-failed',
          detail: `it disconnected from ${channel.remoteAddress} before its name was verified${bye ? ` (${bye.reason})` : ''}`,
        };
      }
      this.update();
    };
    channel.startMessages(() => {});
  }

  /** Stops holding the member's connection (the caller closes it) and its check. */
  private unhold(m: Member): Channel | undefined {
    const channel = m.channel;
    if (!channel) return undefined;
    m.channel = undefined;
    this.held--;
    m.check?.controller.abort();
    return channel;
  }

  /** An admitted member: a small job keeps it connected; a big one parks it until the release. */
  private keepOrPark(m: Member, channel: Channel): void {
    if (this.holdAll) {
      if (m.channel !== channel) {
        this.unhold(m)?.close();
        this.hold(m, channel);
      }
      channel.send({ t: 'verified' });
    } else {
      const ms = checkInMs(this.config);
      m.leaseUntil = performance.now() + 2 * ms + this.config.retryMaxDelayMs + this.config.connectTimeoutMs;
      if (m.channel === channel) {
        m.channel = undefined;
        this.held--;
      } else {
        this.unhold(m)?.close();
      }
      channel.send({ t: 'park', ms });
      channel.close();
    }
    this.update();
  }

  /**
   * A coordinator that starts after the job was released (its pod was replaced) would wait for members
   * that never come back: they passed and stopped. Once per check-in interval it asks one member it has
   * never heard from; if that one answers "released", it asks every such member (bounded by the connect
   * and lookup limits) and admits each that proves itself at an address its name resolves to.
   */
  private async recall(): Promise<void> {
    const silent = [...this.members.values()].filter((m) => m.instance === undefined && !m.channel);
    const pick = silent[Math.floor(Math.random() * silent.length)];
    if (!pick || !(await this.recallOne(pick))) return;
    await Promise.all(silent.filter((m) => m !== pick).map((m) => this.recallOne(m)));
  }

  private async recallOne(m: Member): Promise<boolean> {
    try {
      const { addresses } = await this.lookup(m.fqdn, this.stop.signal);
      for (const ip of addresses) {
        const { channel, hs } = await this.connectPeer(ip, m.index, this.stop.signal).catch(() => ({
          channel: undefined,
          hs: undefined,
        }));
        channel?.close();
        if (!hs) continue;
        if (!hs.peerReleased || m.instance !== undefined || this.settled) return false;
        m.instance = hs.peerInstance;
        m.admitted = true;
        m.ip = ip;
        m.leaseUntil = Number.POSITIVE_INFINITY; // released: it will not check in
        m.lastFailure = undefined;
        this.update();
        return true;
      }
    } catch (err) {
      if (!(err instanceof RetryLater)) throw err;
    }
    return false;
  }

  private async expireLeases(): Promise<void> {
    const now = performance.now();
    let changed = false;
    for (const m of this.members.values()) {
      if (m.admitted && !m.channel && m.leaseUntil < now) {
        m.admitted = false;
        m.ip = undefined;
        m.lastFailure = { reason: 'connect-failed', detail: 'admitted, then stopped checking in' };
        changed = true;
      }
    }
    if (changed) this.update();
  }

  private update(): void {
    if (this.settled) return;
    this.report();
    for (const m of this.members.values()) if (!m.admitted) return;
    void this.releaseAll();
  }

  /** Delivers the roster to every member (held connections, then pushes to parked ones), then resolves. */
  private async releaseAll(): Promise<void> {
    this.released = true;
    this.settled = true;
    this.stop.abort();
    const { config } = this;
    let selfIp = config.selfAddress;
    this.ips = [''];
    for (const m of this.members.values()) {
      this.ips.push(m.ip ?? '');
      selfIp ??= m.channel?.socket.localAddress?.replace(/^::ffff:/, '');
    }
    this.ips[0] = selfIp ?? config.listenAddress;
    const held: Channel[] = [];
    const parked: Member[] = [];
    for (const m of this.members.values()) {
      if (m.channel) held.push(m.channel);
      else parked.push(m);
    }
    // Bounded: each push by the connect timeout, all deliveries by as many rounds as the connect limit
    // needs. The timer is ref'd on purpose: the process stays up until the roster is out (or the bound).
    // A member that misses its push (it restarted, or the network dropped it) gets the roster when it
    // checks in next, while the coordinator lingers.
    const bound = new AbortController();
    const rounds = 2 + Math.ceil(parked.length / MAX_CONCURRENT_CONNECTS);
    const timer = setTimeout(() => bound.abort(), config.connectTimeoutMs * rounds);
    await Promise.all(held.map((c) => this.deliver(c, bound.signal)));
    await Promise.all(
      parked.map(async (m) => {
        try {
          const { channel } = await this.connectPeer(m.ip!, m.index, bound.signal);
          await this.deliver(channel, bound.signal);
        } catch {
          // see above
        }
      }),
    );
    clearTimeout(timer);
    this.settle(this.ips);
  }

  /** Sends the roster and says goodbye; gives up on a peer that does not take it before `signal`. */
  private async deliver(channel: Channel, signal: AbortSignal): Promise<void> {
    this.releaseFrame ||= JSON.stringify({ t: 'release', roster: packAddresses(this.ips) });
    const giveUp = (): void => {
      channel.socket.destroy();
    };
    if (signal.aborted) return giveUp();
    signal.addEventListener('abort', giveUp, { once: true });
    await channel.sendFlushed(this.releaseFrame);
    signal.removeEventListener('abort', giveUp);
    channel.close('released');
  }

  // ---- member ----

  /** Resolves the coordinator's name, connects, proves itself and waits to be parked or released. */
  private connectToCoordinator(): void {
    const fqdn = `${peerFqdn(this.config, 0)}.`;
    this.linkLoop = this.loop(
      async (signal) => {
        // A busy coordinator is still where its name said: retry there while that answer's TTL lasts.
        const now = performance.now();
        let answer = this.coordinatorAnswer;
        if (!answer || answer.until <= now) {
          const { addresses, ttl } = await this.resolveCoordinator(fqdn, signal);
          answer = this.coordinatorAnswer = { addresses, until: now + ttl * 1000 };
        }
        const { addresses } = answer;
        const ttl = (answer.until - now) / 1000;
        let last: unknown;
        for (const ip of addresses) {
          let link: { channel: Channel; hs: HandshakeResult };
          try {
            // From our own address: the coordinator checks our name against where we connect from.
            link = await this.connectPeer(ip, 0, signal, true);
          } catch (err) {
            if (signal.aborted) throw err;
            last = err;
            continue;
          }
          this.coordinatorIp = ip;
          this.memberFailure = undefined;
          return this.follow(link.channel, signal);
        }
        const after = Math.min(ttl * 1000, this.config.retryMaxDelayMs);
        // Turned away by a full responder (a reject, or a socket dropped at the connection cap).
        if (last instanceof HandshakeError && (last.reason === 'busy' || last.reason === 'closed'))
          throw new RetryLater('connect-failed', last.message);
        this.coordinatorAnswer = undefined;
        if (last instanceof HandshakeError && (last.reason === 'mismatch' || last.reason === 'bad-proof'))
          throw new RetryLater('wrong-identity', last.message, after);
        throw new RetryLater('connect-failed', last instanceof Error ? last.message : String(last), after);
      },
      (err) => {
        // "It stopped waiting" explains the refused connects that follow; keep it until we reconnect.
        const sticky = this.memberFailure?.reason === 'gave-up';
        if (err instanceof RetryLater && !(sticky && err.reason === 'connect-failed'))
          this.memberFailure = { reason: err.reason, detail: err.message };
        return true;
      },
      () => {
        this.linkLoop = undefined;
      },
    );
  }

  /**
   * Resolves the coordinator's name. While it does not exist yet (NXDOMAIN/NODATA: the coordinator is not
   * Ready) it is asked again every poll interval (jittered), not after the negative TTL and backoff: every
   * member asks, so the job sends about 100 queries a second up to 500 pods (N per 5 s above) and each
   * member learns of a late coordinator within a poll interval rather than 5 to 10 s. DNS errors (timeout,
   * SERVFAIL) go to the caller's backoff.
   */
  private async resolveCoordinator(
    fqdn: string,
    signal: AbortSignal,
  ): Promise<{ addresses: string[]; ttl: number }> {
    for (;;) {
      try {
        return await this.lookup(fqdn, signal);
      } catch (err) {
        if (!(err instanceof RetryLater) || (err.reason !== 'nxdomain' && err.reason !== 'nodata')) throw err;
        if (this.memberFailure?.reason !== 'gave-up')
          this.memberFailure = { reason: err.reason, detail: err.message };
        await sleep(jittered(this.config.pollIntervalMs), signal);
        signal.throwIfAborted();
      }
    }
  }

  /** Follows the coordinator's answer on a fresh connection until it parks or releases us. */
  private follow(channel: Channel, signal: AbortSignal): Promise<void> {
    this.link = channel;
    channel.socket.setKeepAlive(true, 5000); // a coordinator whose node died silently is noticed
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        channel.close();
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let done = false;
      const settle = (err?: RetryLater): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        if (this.link === channel) this.link = undefined;
        if (err) reject(err);
        else resolve();
      };
      const from = channel.remoteAddress;
      channel.onClose = (bye) => {
        this.admitted = false;
        settle(
          bye && bye.reason !== 'released'
            ? new RetryLater('gave-up', `the coordinator at ${from} stopped waiting (${bye.reason})`)
            : new RetryLater('connect-failed', `the coordinator at ${from} closed the connection`),
        );
      };
      channel.startMessages((message) => {
        if (message.t === 'verified') {
          this.admitted = true;
        } else if (message.t === 'retry') {
          // Come back exactly when told: the coordinator spreads a crowd over time slots.
          const ms = retryMs(message);
          this.memberFailure = {
            reason: 'connect-failed',
            detail: `the coordinator at ${from} was busy (told to come back in ${ms} ms)`,
          };
          channel.onClose = undefined;
          channel.close();
          settle();
          this.reconnectAfter(ms);
        } else if (message.t === 'park') {
          this.admitted = true;
          channel.onClose = undefined;
          channel.close();
          settle();
          const ms = retryMs(message);
          this.reconnectAfter(jittered(ms));
        } else {
          this.onRelease(message);
        }
      }, this.releaseFrameBytes());
      if (channel.isClosed)
        settle(new RetryLater('connect-failed', `the coordinator at ${from} closed the connection`));
    });
  }

  /** Parked (check in again, so that a restarted coordinator learns of us) or told to come back: reconnect. */
  private reconnectAfter(ms: number): void {
    const timer = setTimeout(() => {
      this.stop.signal.removeEventListener('abort', cancel);
      if (!this.settled && !this.linkLoop) this.connectToCoordinator();
    }, ms);
    timer.unref();
    const cancel = (): void => clearTimeout(timer);
    this.stop.signal.addEventListener('abort', cancel, { once: true });
  }

  /** A parked member receives the release pushed by the coordinator. */
  private onPush(channel: Channel, hs: HandshakeResult): void {
    if (hs.peerIndex !== 0 || this.settled) {
      channel.close(this.released ? 'released' : undefined);
      return;
    }
    channel.startMessages((message) => this.onRelease(message), this.releaseFrameBytes());
  }

  private onRelease(message: ControlMessage): void {
    if (this.settled || message.t !== 'release') return;
    const { config } = this;
    const ips = unpackAddresses(message.roster, config.size);
    if (!ips) return;
    const roster = [...ips];
    roster[0] = this.coordinatorIp ?? ips[0]!;
    roster[config.index] = config.selfAddress ?? ips[config.index] ?? config.listenAddress;
    this.settle(roster);
  }

  private releaseFrameBytes(): number {
    // Base64 of at most 41 bytes per index (an IPv6 address as text): 56 bytes.
    return 64 * 1024 + 56 * this.config.size;
  }

  // ---- both ----

  protected closeChannels(reason: 'released' | 'timeout' | 'aborted'): void {
    if (reason === 'released') {
      this.link?.close('released');
      return;
    }
    this.link?.close(reason);
    for (const m of this.members.values()) m.channel?.close(reason);
  }

  protected missing(): number[] {
    const missing: number[] = [];
    if (this.coordinator) {
      for (const m of this.members.values()) if (!m.admitted) missing.push(m.index);
    } else {
      // A member learns of the others only from the release.
      for (let k = 0; k < this.config.size; k++) if (k !== this.config.index) missing.push(k);
    }
    return missing;
  }

  protected timeoutError(): TimeoutError {
    const { config } = this;
    const missing: MissingPeer[] = [];
    const service = serviceFqdn(config);
    if (this.coordinator) {
      for (const m of this.members.values()) {
        if (m.admitted) continue;
        missing.push({
          index: m.index,
          fqdn: m.fqdn,
          reason: m.lastFailure?.reason ?? 'not-seen',
          detail:
            m.lastFailure?.detail ??
            (m.channel
              ? `connected from ${m.channel.remoteAddress}; its name was not checked yet`
              : 'it never connected to the coordinator'),
        });
      }
      const hint = this.lastServiceFailure
        ? `Last lookup of ${service}: ${this.lastServiceFailure}`
        : undefined;
      return new TimeoutError(config.timeoutMs, missing, hint);
    }
    const fqdn = `${peerFqdn(config, 0)}.`;
    if (this.admitted) {
      missing.push({
        index: 0,
        fqdn,
        reason: 'unconfirmed',
        detail: `the coordinator at ${this.coordinatorIp ?? '?'} verified this pod but had not released it: it was still waiting for other pods (its own timeout error names them)`,
      });
    } else if (this.link) {
      missing.push({
        index: 0,
        fqdn,
        reason: 'unconfirmed',
        detail: `connected to the coordinator at ${this.link.remoteAddress}, which had not verified this pod's name yet (does ${peerFqdn(config, config.index)} resolve to this pod's address?)`,
      });
    } else {
      missing.push({
        index: 0,
        fqdn,
        reason: this.memberFailure?.reason ?? 'not-seen',
        detail: this.memberFailure?.detail ?? 'the coordinator was never reached',
      });
    }
    return new TimeoutError(
      config.timeoutMs,
      missing,
      'Topology star: this pod waits for the coordinator (index 0) only; the coordinator waits for everyone.',
    );
  }
}

/** `ms` jittered uniformly over [2/3, 4/3] × ms, as the polls of {@link Session.every} are. */
function jittered(ms: number): number {
  return ms * (2 / 3 + (2 * Math.random()) / 3);
}

function retryMs(message: { ms?: unknown }): number {
  const ms = message.ms;
  return typeof ms === 'number' && Number.isFinite(ms) ? Math.min(Math.max(ms, 0), 600_000) : 1000;
}
