/**
 * What both roles share, without I/O: connections (framing, the handshake, caps on what a stranger can
 * make us hold), DNS lookups in flight, timers, and the check of one member: **verification** of member
 * _j_ means an authenticated connection with _j_'s current instance whose address is one its own name
 * resolves to. Discovery (who tells us addresses) and the release decision belong to the roles
 * (src/core/coordinator.ts, src/core/member.ts).
 */
import { createHash } from 'node:crypto';
import type { MissingPeer } from '../errors.js';
import { ClientHandshake, ServerHandshake, type HandshakeResult } from './handshake.js';
import { Timers } from './timers.js';
import type { CoreConfig, DnsResult, Input, Machine, Output } from './types.js';
import {
  encodeFrame,
  FrameDecoder,
  MAX_HELLO_BYTES,
  maxFrameBytes,
  parseControl,
  type ByeMessage,
  type ControlMessage,
  type Frame,
  type Message,
} from './wire.js';

/** Defects that tests can put back to show that the simulator catches them. Never set in production. */
export type Fault =
  /** Frames after the handshake are parsed under the pre-authentication limit within one read. */
  | 'decode-whole-chunk'
  /** A lingering pod queues the frames nobody consumes, without limit. */
  | 'unbounded-queue'
  /** The coordinator counts a release as delivered once written, not once acknowledged. */
  | 'release-without-ack';

export interface PodConfig extends CoreConfig {
  faults?: ReadonlySet<Fault>;
}

/** Handshakes in progress at once, at least (more: the oldest of the busiest source gives way). */
export const MAX_PENDING = 32;
/** Handshakes in progress at once, at most, whatever the job size. */
export const MAX_PENDING_CAP = 256;

/**
 * Handshakes a pod takes in at once: as many as peers may connect at the same moment (in a mesh every
 * other member may connect to a pod that turns Ready in a burst; with 32 slots, 63 peers connecting at
 * once would leave 31 with `busy` and a backoff), within [{@link MAX_PENDING}, {@link MAX_PENDING_CAP}];
 * a star member only hears from the coordinator (and strangers).
 */
export function maxPending(scope: { size: number; topology: 'mesh' | 'star' }, coordinator: boolean): number {
  if (scope.topology === 'star' && !coordinator) return MAX_PENDING;
  return Math.min(MAX_PENDING_CAP, Math.max(MAX_PENDING, scope.size));
}
/** Handshakes in progress from one source address, at most (more: `reject busy`). */
export const MAX_PENDING_PER_SOURCE = 8;
/** A handshake still in progress after this long is taken for an idle stranger's when slots run out. */
export const STALE_HANDSHAKE_MS = 250;
/** Outbound connections being opened or in their handshake, at most. */
export const MAX_CONNECTING = 64;
/** DNS lookups in flight, at most. */
export const MAX_QUERIES = 64;

export interface Conn {
  id: number;
  outbound: boolean;
  /** The other side's address (what the socket says, canonical). */
  remote: string;
  decoder: FrameDecoder;
  /** The handshake while it runs. */
  hs: ClientHandshake | ServerHandshake | undefined;
  /** Set once the handshake passed. */
  peer: HandshakeResult | undefined;
  /** Outbound: the TCP connection is open. */
  open: boolean;
  /** We closed it (a `closed` input may not follow). */
  gone: boolean;
  /** The `bye` the other side sent. */
  bye: ByeMessage['reason'] | undefined;
  /** Outbound: what to do when it fails before the handshake passed. */
  onFail: ((reason: MissingPeer['reason'], detail: string) => void) | undefined;
  /** When it was opened or accepted. */
  since: number;
}

/** A member being checked by this pod. */
export interface Target {
  index: number;
  name: string;
  /** Addresses someone saw listed for it in the Service (evidence that its name exists). */
  evidence: Set<string>;
  /** The authenticated connection with its current instance. */
  conn: Conn | undefined;
  instance: string | undefined;
  /** Addresses of the last positive answer for its name. */
  addresses: string[];
  /** When the last positive answer expires (its TTL): asking again sooner gets it again from a cache. */
  answerUntil: number;
  /** A negative answer holds until then (its TTL). */
  negativeUntil: number;
  querying: boolean;
  /** When its name was last asked (-Infinity: never): the same name is asked at most once per retry minimum. */
  askedAt: number;
  /** New evidence came while a query was in flight: ask again when it returns. */
  askAgain: boolean;
  /** Connect attempts in a row that failed; drives the backoff. */
  failures: number;
  /** No new connect or query before this time. */
  notBefore: number;
  connecting: boolean;
  /** The address it was verified at, or undefined while not verified. */
  verified: string | undefined;
  /** The last reason it did not pass. */
  why: { reason: MissingPeer['reason']; detail: string } | undefined;
}

export abstract class Pod implements Machine {
  protected readonly out: Output[] = [];
  protected readonly timers = new Timers();
  protected readonly conns = new Map<number, Conn>();
  protected now = 0;
  protected stopped = false;
  private nextConn = 1;
  private nextQuery = 1;
  private readonly queries = new Map<number, (r: DnsResult) => void>();
  private readonly queryQueue: { name: string; done: (r: DnsResult) => void }[] = [];
  private connecting = 0;
  private readonly connectQueue: (() => void)[] = [];
  private readonly pendingBySource = new Map<string, number>();
  private backlog = 0;
  /** Connections that passed their handshake and are open. */
  protected authenticated = 0;
  released = false;

  /** Handshakes taken in at once ({@link maxPending}). */
  private readonly pendingCap: number;

  constructor(protected readonly config: PodConfig) {
    this.pendingCap = maxPending(config.scope, config.index === config.coordinator);
  }

  // ---- what the roles provide ----

  abstract start(now: number): void;
  /** A connection passed its handshake. */
  protected abstract onPeer(conn: Conn): void;
  protected abstract onMessage(conn: Conn, message: ControlMessage): void;
  /** An authenticated connection closed. */
  protected abstract onPeerClosed(conn: Conn): void;
  protected abstract onTimer(key: string): void;
  abstract missing(): MissingPeer[];
  abstract hint(): string | undefined;

  // ---- Machine ----

  handle(now: number, input: Input): void {
    this.now = Math.max(this.now, now);
    if (this.stopped) {
      if (input.type === 'accepted') this.out.push({ type: 'close', conn: input.conn, destroy: true });
      return;
    }
    switch (input.type) {
      case 'dns': {
        const done = this.queries.get(input.id);
        if (!done) return; // a duplicate, or an answer to a query we gave up
        this.queries.delete(input.id);
        this.drainQueries();
        done(input.result);
        break;
      }
      case 'accepted':
        this.accept(input.conn, input.remote);
        break;
      case 'connected': {
        const conn = this.conns.get(input.conn);
        if (!conn || conn.gone) return;
        conn.open = true;
        if (conn.hs instanceof ClientHandshake) this.send(conn, conn.hs.hello());
        break;
      }
      case 'connect-failed':
        this.fail(
          input.conn,
          'connect-failed',
          `connect to ${this.conns.get(input.conn)?.remote ?? '?'} failed: ${input.detail}`,
        );
        break;
      case 'data':
        this.receive(input.conn, input.bytes);
        break;
      case 'closed':
        this.onClosed(input.conn);
        break;
      case 'tick':
        break;
    }
    this.runTimers();
    this.afterInput();
  }

  poll(): Output[] {
    return this.out.splice(0);
  }

  nextTimer(): number | undefined {
    return this.timers.next();
  }

  stop(now: number, reason: 'timeout' | 'aborted' | 'released'): void {
    this.now = Math.max(this.now, now);
    if (this.stopped) return;
    this.stopped = true;
    for (const conn of [...this.conns.values()]) this.close(conn, reason);
    this.timers.clearAll();
  }

  idle(): boolean {
    return this.released;
  }

  /** What this pod holds, for the simulator's bounds. */
  stats(): { connections: number; queries: number; timers: number; backlog: number } {
    return {
      connections: this.conns.size,
      queries: this.queries.size + this.queryQueue.length,
      timers: this.timers.size,
      backlog: this.backlog,
    };
  }

  /** Handshakes ended, by outcome (`ok` or why one failed), for the runtime's metrics. */
  readonly handshakes: Record<string, number> = {};

  private counted(outcome: string): void {
    this.handshakes[outcome] = (this.handshakes[outcome] ?? 0) + 1;
  }

  /** Called after every input: roles flush what they batch. */
  protected afterInput(): void {}

  // ---- DNS ----

  /** Looks `name` up; at most {@link MAX_QUERIES} in flight, the rest wait in order. */
  protected query(name: string, done: (r: DnsResult) => void): void {
    this.queryQueue.push({ name, done });
    this.drainQueries();
  }

  private drainQueries(): void {
    while (this.queries.size < MAX_QUERIES && this.queryQueue.length > 0) {
      const { name, done } = this.queryQueue.shift()!;
      const id = this.nextQuery++;
      this.queries.set(id, done);
      this.out.push({ type: 'query', id, name });
    }
  }

  // ---- connections ----

  /**
   * Opens a connection to `address` expecting index `expect` (-1: whoever answers); `onPeer` hears of it
   * once it passes the handshake, `onFail` if it does not.
   */
  protected connect(address: string, expect: number, onFail: Conn['onFail']): void {
    const open = (): void => {
      if (this.stopped) return;
      this.connecting++;
      const id = this.nextConn++;
      const conn = this.newConn(id, true, address);
      conn.hs = new ClientHandshake(this.identity(), expect, this.config.nonce);
      conn.onFail = onFail;
      this.out.push({ type: 'connect', conn: id, address, fromSelf: true });
    };
    if (this.connecting < MAX_CONNECTING) open();
    else this.connectQueue.push(open);
  }

  /** Forgets the connects waiting for a slot (released: nobody is left to reach). */
  protected dropQueuedConnects(): void {
    this.connectQueue.length = 0;
  }

  protected send(conn: Conn, message: Message | string): void {
    if (conn.gone) return;
    this.out.push({
      type: 'send',
      conn: conn.id,
      data: typeof message === 'string' ? message : encodeFrame(message),
    });
  }

  /** Closes a connection, saying `bye` first when a reason is given. No `onPeerClosed` follows. */
  protected close(conn: Conn, reason?: ByeMessage['reason'], destroy = false): void {
    if (conn.gone) return;
    if (reason && conn.peer) this.send(conn, { t: 'bye', reason });
    this.forget(conn);
    this.out.push({ type: 'close', conn: conn.id, destroy });
  }

  private identity(): { scope: CoreConfig['scope']; key: Uint8Array; index: number; instance: string } {
    const { scope, key, index, instance } = this.config;
    return { scope, key, index, instance };
  }

  private newConn(id: number, outbound: boolean, remote: string): Conn {
    const conn: Conn = {
      id,
      outbound,
      remote,
      decoder: new FrameDecoder(),
      hs: undefined,
      peer: undefined,
      open: false,
      gone: false,
      bye: undefined,
      onFail: undefined,
      since: this.now,
    };
    this.conns.set(id, conn);
    this.timers.set(`hs:${id}`, this.now + this.config.connectTimeoutMs);
    return conn;
  }

  private accept(id: number, remote: string): void {
    const count = this.pendingBySource.get(remote) ?? 0;
    if (count >= MAX_PENDING_PER_SOURCE) {
      this.out.push({ type: 'send', conn: id, data: encodeFrame({ t: 'reject', reason: 'busy' }) });
      this.out.push({ type: 'close', conn: id, destroy: false });
      this.counted('refused');
      return;
    }
    let pending = 0;
    for (const n of this.pendingBySource.values()) pending += n;
    if (pending >= this.pendingCap && !this.evict()) {
      // Every slot holds a handshake younger than a stranger's idle one would be: a real crowd.
      this.out.push({ type: 'send', conn: id, data: encodeFrame({ t: 'reject', reason: 'busy' }) });
      this.out.push({ type: 'close', conn: id, destroy: false });
      this.counted('refused');
      return;
    }
    const conn = this.newConn(id, false, remote);
    conn.hs = new ServerHandshake(this.identity(), () => this.released, this.config.nonce);
    this.pendingBySource.set(remote, count + 1);
  }

  /**
   * Drops the oldest handshake of the source that holds the most, if it has been waiting longer than a
   * real handshake takes ({@link STALE_HANDSHAKE_MS}): idle strangers give way, a crowd of real peers
   * does not thrash. Returns whether a slot was freed.
   */
  private evict(): boolean {
    let most = 0;
    for (const n of this.pendingBySource.values()) most = Math.max(most, n);
    for (const conn of this.conns.values()) {
      if (!conn.outbound && conn.hs && this.pendingBySource.get(conn.remote) === most) {
        if (this.now - conn.since < STALE_HANDSHAKE_MS) return false;
        this.close(conn, undefined, true);
        return true;
      }
    }
    return false;
  }

  /** Removes a connection from our books (handshake slot, timers). */
  private forget(conn: Conn): void {
    if (conn.gone) return;
    conn.gone = true;
    if (conn.peer) this.authenticated--;
    this.conns.delete(conn.id);
    this.timers.clear(`hs:${conn.id}`);
    if (conn.hs) this.handshakeEnded(conn);
  }

  private handshakeEnded(conn: Conn): void {
    conn.hs = undefined;
    this.timers.clear(`hs:${conn.id}`);
    if (conn.outbound) {
      this.connecting--;
      const next = this.connectQueue.shift();
      if (next) next();
    } else {
      const left = (this.pendingBySource.get(conn.remote) ?? 1) - 1;
      if (left > 0) this.pendingBySource.set(conn.remote, left);
      else this.pendingBySource.delete(conn.remote);
    }
  }

  private fail(id: number, reason: MissingPeer['reason'], detail: string): void {
    const conn = this.conns.get(id);
    if (!conn) return;
    const onFail = conn.onFail;
    this.close(conn, undefined, true);
    onFail?.(reason, detail);
  }

  private receive(id: number, bytes: Uint8Array): void {
    const conn = this.conns.get(id);
    if (!conn || conn.gone) return;
    conn.decoder.push(bytes);
    const faulty = this.config.faults?.has('decode-whole-chunk') === true;
    const chunkLimit = this.limit(conn);
    while (!conn.gone) {
      const decoded = conn.decoder.next(faulty ? chunkLimit : this.limit(conn));
      if (decoded === undefined) return;
      if ('error' in decoded) {
        this.fail(id, 'wrong-identity', `${conn.remote} sent ${decoded.detail}`);
        return;
      }
      this.frame(conn, decoded.frame);
    }
  }

  private limit(conn: Conn): number {
    return conn.peer ? maxFrameBytes(this.config.scope.size) : MAX_HELLO_BYTES;
  }

  private frame(conn: Conn, frame: Frame): void {
    const hs = conn.hs;
    if (hs) {
      const step = hs.receive(frame);
      for (const m of step.send) this.send(conn, m);
      if (step.failure) {
        const { reason, detail } = step.failure;
        this.counted(reason);
        const onFail = conn.onFail;
        this.close(conn, undefined, step.send.length === 0);
        const why = reason === 'busy' ? 'connect-failed' : 'wrong-identity';
        onFail?.(why, `handshake with ${conn.remote}: ${reason}: ${detail}`);
      } else if (step.result) {
        this.counted('ok');
        this.handshakeEnded(conn);
        conn.peer = step.result;
        this.authenticated++;
        conn.onFail = undefined;
        this.onPeer(conn);
      }
      return;
    }
    if (!conn.peer) return;
    const message = parseControl(frame);
    if (message === undefined) return;
    if (message.t === 'bye') {
      conn.bye = message.reason;
      return;
    }
    if (this.released && this.config.faults?.has('unbounded-queue')) {
      this.backlog++;
      return;
    }
    this.onMessage(conn, message);
  }

  private onClosed(id: number): void {
    const conn = this.conns.get(id);
    if (!conn || conn.gone) return;
    if (!conn.peer) {
      if (conn.hs && (!conn.outbound || conn.open)) this.counted('closed');
      this.fail(id, 'connect-failed', `${conn.remote} closed the connection during the handshake`);
      return;
    }
    this.forget(conn);
    this.onPeerClosed(conn);
  }

  private runTimers(): void {
    for (const key of this.timers.due(this.now)) {
      if (this.stopped) return;
      if (key.startsWith('hs:')) {
        const id = Number(key.slice(3));
        const conn = this.conns.get(id);
        if (conn && !conn.peer) {
          this.counted('timeout');
          this.fail(
            id,
            'connect-failed',
            `${conn.remote}: no handshake within ${this.config.connectTimeoutMs} ms`,
          );
        }
      } else {
        this.onTimer(key);
      }
    }
  }

  // ---- checking one member ----

  protected newTarget(index: number): Target {
    return {
      index,
      name: this.config.nameOf(index),
      evidence: new Set(),
      conn: undefined,
      instance: undefined,
      addresses: [],
      answerUntil: 0,
      negativeUntil: 0,
      querying: false,
      askedAt: Number.NEGATIVE_INFINITY,
      askAgain: false,
      failures: 0,
      notBefore: 0,
      connecting: false,
      verified: undefined,
      why: undefined,
    };
  }

  /**
   * Someone saw `address` listed for `t` in the Service: its name exists now, whatever an earlier
   * negative answer said. Returns whether this is news.
   */
  protected addEvidence(t: Target, address: string): boolean {
    if (t.evidence.has(address)) return false;
    t.evidence.add(address);
    t.negativeUntil = Math.min(t.negativeUntil, this.now);
    return true;
  }

  /** Exponential backoff from the retry minimum to its maximum, jittered over [1/2, 3/2]. */
  protected backoff(failures: number): number {
    const { retryMinMs, retryMaxMs, random } = this.config;
    const base = Math.min(retryMaxMs, retryMinMs * 2 ** Math.min(failures, 20));
    return base * (0.5 + random());
  }

  /**
   * Takes an authenticated connection with target `t`. A new instance replaces what was known of the
   * old one; the old connection of the same instance is kept if it is still open (no churn).
   */
  protected attach(t: Target, conn: Conn): void {
    const instance = conn.peer!.peerInstance;
    if (t.instance !== instance) {
      if (t.conn) this.close(t.conn);
      t.conn = undefined;
      t.verified = undefined;
      t.instance = instance;
    }
    if (t.conn && t.conn !== conn) {
      // Two connections with the same instance (both sides connected at once): keep the first.
      if (
        t.verified === undefined &&
        t.addresses.includes(conn.remote) &&
        !t.addresses.includes(t.conn.remote)
      ) {
        this.close(t.conn);
        t.conn = conn;
      } else {
        this.close(conn);
        return;
      }
    }
    t.conn = conn;
    t.failures = 0;
    t.why = undefined;
  }

  /**
   * Connects to `address` expecting target `t`; on failure backs off (a `recheck` follows when the wait
   * is over) and records why, unless `t` is known to have given up.
   */
  protected connectTarget(t: Target, address: string): void {
    t.connecting = true;
    this.connect(address, t.index, (reason, detail) => {
      t.connecting = false;
      // Maybe not there any more (a pod that restarted is elsewhere): its name is asked again before the
      // next attempt (the Service's evidence stays).
      t.addresses = t.addresses.filter((a) => a !== address);
      if (t.why?.reason !== 'gave-up') t.why = { reason, detail };
      this.holdOff(t);
    });
  }

  /** Leaves `t` alone for `ms` (default: the next backoff step), then looks at it again. */
  protected holdOff(t: Target, ms = this.backoff(t.failures++)): void {
    t.notBefore = this.now + ms;
    this.timers.setEarliest(`ask:${t.index}`, t.notBefore);
  }

  /**
   * A target waiting out a backoff must be looked at again when it is over, whatever timer fired
   * before (a timer set for an earlier deadline does not cover a later one).
   */
  protected rearm(t: Target): void {
    if (t.verified === undefined && !t.conn && !t.connecting && t.notBefore > this.now)
      this.timers.setEarliest(`ask:${t.index}`, t.notBefore);
  }

  /** Target `t` lost its connection (not on purpose): it must pass again. */
  protected detach(t: Target, conn: Conn): void {
    if (t.conn !== conn) return;
    const wasVerified = t.verified !== undefined;
    const cause = wasVerified ? undefined : (t.why ?? this.unseen(t));
    t.conn = undefined;
    t.verified = undefined;
    if (conn.bye === 'timeout' || conn.bye === 'aborted') {
      const gaveUp = `it stopped waiting (${conn.bye}) and disconnected from ${conn.remote}`;
      // What kept it from passing stays the reason; that it left is a consequence.
      t.why = cause
        ? { reason: cause.reason, detail: `${cause.detail}; then ${gaveUp}` }
        : { reason: 'gave-up', detail: gaveUp };
    } else {
      t.why = { reason: 'connect-failed', detail: `connection with ${conn.remote} lost` };
    }
  }

  /** Why `t` has not passed when no failure was seen: nothing said it exists yet. */
  protected abstract unseen(t: Target): { reason: MissingPeer['reason']; detail: string };

  /**
   * Moves the check of `t` on: asks for its name when there is evidence it exists (or `askFreely`), and
   * marks it verified once an authenticated connection's address is among the addresses its name
   * resolves to. Returns whether it is verified.
   */
  protected check(t: Target, askFreely: boolean): boolean {
    if (t.verified !== undefined) return true;
    if (t.conn && t.addresses.includes(t.conn.remote)) {
      t.verified = t.conn.remote;
      t.why = undefined;
      return true;
    }
    if (t.conn && t.addresses.length > 0 && !t.querying)
      t.why = {
        reason: 'wrong-identity',
        detail: `${t.name} resolves to ${t.addresses.join(', ')} but index ${t.index} connected from ${t.conn.remote} (stale DNS record?)`,
      };
    const stale =
      t.addresses.length === 0 ||
      (t.conn !== undefined && !t.addresses.includes(t.conn.remote)) ||
      [...t.evidence].some((a) => !t.addresses.includes(a));
    if ((t.evidence.size > 0 || askFreely) && stale) {
      this.ask(t);
    } else if (t.conn && t.addresses.length > 0 && !t.querying) {
      // Its name exists but points elsewhere (a record not updated yet after a restart): ask again once
      // the answer expires.
      if (this.now >= t.answerUntil) this.ask(t);
      else this.timers.setEarliest(`ask:${t.index}`, t.answerUntil);
    }
    return false;
  }

  private ask(t: Target): void {
    if (t.querying) {
      t.askAgain = true;
      return;
    }
    // A stale positive answer (a connection, or an address in the Service, that it does not list) is
    // asked again at most once per retry minimum: the record may take a while to change, and until it
    // does every answer would be as stale as the last. (A negative one waits for negativeUntil, which new
    // evidence lifts.)
    const pace = t.addresses.length > 0 ? t.askedAt + this.config.retryMinMs : Number.NEGATIVE_INFINITY;
    const wait = Math.max(t.negativeUntil, t.notBefore, pace) - this.now;
    if (wait > 0) {
      this.timers.setEarliest(`ask:${t.index}`, this.now + wait);
      return;
    }
    t.querying = true;
    t.askedAt = this.now;
    t.askAgain = false;
    this.query(t.name, (r) => {
      t.querying = false;
      if (r.status === 'ok') {
        t.addresses = r.addresses;
        // A cache's answer may have milliseconds left: never sooner than the retry minimum.
        t.answerUntil =
          this.now + Math.min(Math.max(r.ttlMs, this.config.retryMinMs), this.config.retryMaxMs);
        t.negativeUntil = 0;
        t.notBefore = 0;
      } else {
        t.addresses = [];
        t.failures++;
        // A negative answer holds for its TTL; with evidence that the name exists (its address is in the
        // Service), ask again sooner, backing off, in case the answer raced the record.
        const negative = r.status === 'error' ? this.backoff(t.failures) : r.ttlMs;
        const soon = t.evidence.size > 0 ? this.backoff(t.failures - 1) / 4 : negative;
        t.negativeUntil = this.now + Math.min(negative, soon, this.config.retryMaxMs);
        t.why =
          r.status === 'error'
            ? { reason: 'dns-error', detail: r.detail }
            : { reason: r.status, detail: r.detail };
      }
      this.onAnswer(t, r);
      if (t.askAgain && t.verified === undefined) this.ask(t);
    });
  }

  protected onTimerAsk(key: string): boolean {
    if (!key.startsWith('ask:')) return false;
    const t = this.targetOf(Number(key.slice(4)));
    if (t) this.recheck(t);
    return true;
  }

  /** The target of index `k`, if this pod checks it. */
  protected abstract targetOf(k: number): Target | undefined;
  /** Something changed for `t` (an answer, a timer): move it on. */
  protected abstract recheck(t: Target): void;
  /** The answer for `t`'s name arrived. */
  protected onAnswer(t: Target, _r: DnsResult): void {
    this.recheck(t);
  }
}

/** Orders a timeout's list: causes first (by index), then members merely unconfirmed, then those that gave up. */
export function byCause(a: MissingPeer, b: MissingPeer): number {
  const rank = (m: MissingPeer): number => (m.reason === 'gave-up' ? 2 : m.reason === 'unconfirmed' ? 1 : 0);
  return rank(a) - rank(b) || a.index - b.index;
}

/**
 * A digest of who verified whom, compared by the coordinator: the members a pod checked, by index,
 * instance and verified address, and the pod itself by index and instance.
 */
export function viewDigest(entries: readonly [index: number, instance: string, address: string][]): string {
  const text = [...entries]
    .sort((a, b) => a[0] - b[0])
    .map(([i, inst, addr]) => `${i}:${inst}:${addr}`)
    .join(',');
  return createHash('sha256').update(text).digest('base64url');
}
