/**
 * The coordinator's role, without I/O. **Discovery**: it polls the Service (the addresses of the Ready
 * members), connects to each new address (the handshake names its owner) and tells the members what it
 * learned (`peers`). **Verification**: it checks every member's name against the address of its
 * authenticated connection, asking for a name only once the Service listed the member, or (when the
 * Service cannot be used) once the member connected to us (so no cache in between keeps an early
 * NXDOMAIN). **Release decision**: when every member is verified and has reported
 * `done` with the view the coordinator expects of it, it releases everyone with its roster and delivers
 * it until each member acknowledged it. See docs/protocol.md.
 */
import type { MissingPeer } from '../errors.js';
import {
  byCause,
  MAX_CONNECTING,
  MAX_PENDING_CAP,
  maxPending,
  MAX_QUERIES,
  Pod,
  viewDigest,
  type Conn,
  type PodConfig,
  type Target,
} from './pod.js';
import type { DnsResult } from './types.js';
import { packAddresses, unpackAddresses, type ControlMessage } from './wire.js';

/** Member connections a star coordinator holds at once; more are parked (told to check in later). */
export const MAX_HELD = 256;
/**
 * Sockets a star coordinator holds at most, besides Node's own handful and connections we closed whose
 * other side has not yet closed (at most 1 s each): the listener, held members, handshakes in progress,
 * outbound connects and DNS lookups.
 */
export const COORDINATOR_MAX_SOCKETS = 1 + MAX_HELD + MAX_PENDING_CAP + MAX_CONNECTING + MAX_QUERIES;

/**
 * Inbound connections a pod's listener keeps at once (the runtime closes more at once): a star
 * coordinator holds at most {@link MAX_HELD} members and its handshakes ({@link maxPending}); a mesh pod
 * about two per peer (both may connect at once) and its handshakes; a star member the coordinator's.
 */
export function maxInbound(scope: { size: number; topology: 'mesh' | 'star' }, coordinator: boolean): number {
  const pending = maxPending(scope, coordinator);
  if (scope.topology === 'mesh') return 2 * scope.size + pending;
  return coordinator ? MAX_HELD + pending : 2 + pending;
}

export class Coordinator extends Pod {
  private readonly members: (Target | undefined)[];
  /** The Service's last answer. */
  private service = new Set<string>();
  /** Whose address is whose, from handshakes. */
  private readonly owner = new Map<string, number>();
  private readonly probing = new Set<string>();
  /** Addresses that did not answer as a member, and until when they are left alone. */
  private readonly badUntil = new Map<string, number>();
  /** Probes in a row that did not prove a member there: the backoff before the next (a Service shared
   * with other jobs or groups lists their running pods for good). */
  private readonly badCount = new Map<string, number>();
  /** Why each Service address that did not prove to be a member failed. */
  private readonly badWhy = new Map<string, string>();
  private serviceFailures = 0;
  /** The Service answer did not fit even over TCP (tens of thousands of pods): members come to us. */
  private serviceTooBig = false;
  /** Our own address is in the Service: our name resolves. */
  private named = false;
  private readonly done = new Map<number, string>();
  /** Rosters offered by released members (we restarted after the release), taken once they are verified. */
  private readonly offered = new Map<number, string[]>();
  /** `peers` entries to tell every member (mesh), batched until the end of the input. */
  private readonly announce: [number, string][] = [];
  private readonly announced: [number, string][] = [];
  private roster: string[] = [];
  private releaseFrame = '';
  private readonly delivered = new Set<number>();
  /** Connections on which the current release frame was sent. */
  private readonly sentOn = new WeakSet<Conn>();
  private lastReady = -1;
  private verifiedCount = 0;
  private doneCount = 0;
  /** Bumped when a member's verified or done state changes: progress is counted again only then. */
  private changes = 0;
  private countedAt = -1;

  constructor(config: PodConfig) {
    super(config);
    this.members = Array.from({ length: config.scope.size }, (_, k) =>
      k === config.index ? undefined : this.newTarget(k),
    );
    this.others = this.members.filter((t): t is Target => t !== undefined);
  }

  private get mesh(): boolean {
    return this.config.scope.topology === 'mesh';
  }

  start(now: number): void {
    this.now = now;
    this.timers.set('poll', now);
    this.progress();
  }

  // ---- discovery ----

  /** A Service lookup is in flight: at most one at a time. */
  private polling = false;

  private pollService(): void {
    if (this.released || this.polling) return;
    this.polling = true;
    this.query(this.config.service, (r) => {
      this.polling = false;
      this.onService(r);
    });
  }

  private onService(r: DnsResult): void {
    if (this.released || this.stopped) return;
    if (r.status === 'error') {
      this.serviceFailures++;
      if (r.truncated) this.serviceTooBig = true;
      // Members come to us meanwhile; their names are asked for without the Service's evidence.
      for (const t of this.targets()) this.recheck(t);
      this.timers.set(
        'poll',
        this.now + (r.truncated ? this.config.retryMaxMs : this.backoff(this.serviceFailures)),
      );
      return;
    }
    this.serviceFailures = 0;
    this.serviceTooBig = false;
    this.service = new Set(r.status === 'ok' ? r.addresses : []);
    for (const a of this.badWhy.keys()) if (!this.service.has(a)) this.badWhy.delete(a);
    for (const a of this.badCount.keys()) if (!this.service.has(a)) this.badCount.delete(a);
    for (const address of this.service) {
      if (address === this.config.selfAddress) {
        if (!this.named) {
          this.named = true;
          this.tell(this.config.index, address);
          this.maybeAdopt();
        }
        continue;
      }
      const k = this.owner.get(address);
      if (k !== undefined) {
        const t = this.members[k]!;
        if (this.addEvidence(t, address)) {
          // A star member hears of its own entry now; a mesh hears of a member once its name is checked.
          if (!this.mesh) this.tell(k, address);
          this.recheck(t);
        }
      } else if (!this.probing.has(address) && (this.badUntil.get(address) ?? 0) <= this.now) {
        this.probe(address);
      }
    }
    this.schedulePoll();
  }

  private schedulePoll(): void {
    if (this.released || this.polling || this.timers.has('poll')) return;
    // Until every member is verified, and we have seen ourselves listed (members verify us then).
    if (this.named && this.verifiedCount === this.targets().length) return;
    const { pollMs, random } = this.config;
    this.timers.set('poll', this.now + pollMs * (2 / 3 + (2 / 3) * random()));
  }

  /** Connects to an address the Service lists, to learn whose it is. */
  private probe(address: string): void {
    if (!this.mesh && this.authenticated >= MAX_HELD) return; // next poll, once there is room
    this.probing.add(address);
    this.connect(address, -1, (reason, detail) => {
      this.probing.delete(address);
      const n = this.badCount.get(address) ?? 0;
      this.badCount.set(address, n + 1);
      this.badUntil.set(address, this.now + this.backoff(n));
      this.badWhy.set(address, detail);
      // Probed again at a poll once the backoff is over. Someone else answered there: a member's record
      // may be stale and point there. The members connected to us from an address the Service does not
      // list are running, so asking their names is no guess; the others' names are not asked (one not
      // Ready yet would get an NXDOMAIN that a cache keeps).
      if (reason !== 'wrong-identity') return;
      for (const t of this.targets()) if (t.conn && t.evidence.size === 0) this.check(t, true);
    });
  }

  /** What was told of whom, so that each (index, address) is told once. */
  private readonly told = new Map<number, Set<string>>();

  /** Queues a `peers` entry for every member (mesh), or our own for the star's members. */
  private tell(k: number, address: string): void {
    const known = this.told.get(k) ?? new Set<string>();
    if (known.has(address)) return;
    known.add(address);
    this.told.set(k, known);
    this.announce.push([k, address]);
  }

  protected override afterInput(): void {
    if (this.announce.length === 0) return;
    const fresh = this.announce.splice(0);
    this.announced.push(...fresh);
    if (this.mesh) {
      for (const t of this.targets()) if (t.conn) this.send(t.conn, { t: 'peers', p: fresh });
      return;
    }
    // A star member hears of us, and of itself (so that it knows the Service lists it).
    const self: [number, string][] = [];
    const own = new Map<number, [number, string][]>();
    for (const e of fresh) {
      if (e[0] === this.config.index) self.push(e);
      else own.set(e[0], [...(own.get(e[0]) ?? []), e]);
    }
    if (self.length === 0) {
      for (const [k, entries] of own) {
        const conn = this.members[k]?.conn;
        if (conn) this.send(conn, { t: 'peers', p: entries });
      }
      return;
    }
    for (const t of this.targets())
      if (t.conn) this.send(t.conn, { t: 'peers', p: [...self, ...(own.get(t.index) ?? [])] });
  }

  /** What a member that just connected needs to know. */
  private introduce(conn: Conn): void {
    const self = this.config.index;
    const k = conn.peer!.peerIndex;
    const told = (i: number): [number, string][] => [...(this.told.get(i) ?? [])].map((a) => [i, a]);
    // (`told` also holds what is still to announce: it goes out at the end of this input anyway.)
    const entries = this.mesh ? this.announced : [...told(self), ...told(k)];
    if (entries.length > 0) this.send(conn, { t: 'peers', p: entries });
  }

  // ---- verification ----

  protected targetOf(k: number): Target | undefined {
    return this.members[k];
  }

  /** Every member but us (built once: per-event paths must not cost O(N)). */
  private readonly others: Target[];

  private targets(): Target[] {
    return this.others;
  }

  protected onPeer(conn: Conn): void {
    this.probing.delete(conn.remote);
    this.badCount.delete(conn.remote);
    const k = conn.peer!.peerIndex;
    const t = this.members[k];
    if (!t) {
      this.close(conn);
      return;
    }
    this.owner.set(conn.remote, k);
    // Released already (by us before a restart, or our ack was lost): nothing is owed to it.
    if (conn.peer!.peerReleased) this.delivered.add(k);
    if (this.service.has(conn.remote) && this.addEvidence(t, conn.remote) && !this.mesh)
      this.tell(k, conn.remote);
    const wasVerified = t.verified !== undefined;
    const before = t.instance;
    this.attach(t, conn);
    t.connecting = false;
    if (t.conn !== conn) return; // a duplicate of a connection we keep
    if (before !== t.instance) {
      if (wasVerified) this.unverified(t);
      this.delivered.delete(k);
    }
    // (`authenticated` counts this connection already.)
    if (!this.mesh && t.verified === undefined && this.authenticated > MAX_HELD) {
      // Too many at once: come back later, spread out.
      t.conn = undefined;
      const ms = this.config.retryMinMs + this.config.random() * this.config.scope.size * 0.5;
      this.send(conn, { t: 'retry', ms: Math.round(ms) });
      this.close(conn);
      return;
    }
    this.introduce(conn);
    this.recheck(t);
  }

  protected recheck(t: Target): void {
    if (this.stopped) return;
    const wasVerified = t.verified !== undefined;
    // Without the Service's evidence, a member that connected to us is known to run: its name is asked.
    // (After the release, a name is what tells where to push the release to.)
    const serviceless = this.serviceTooBig || this.serviceFailures > 0;
    const verified = this.check(t, this.released || (serviceless && t.conn !== undefined));
    if (verified && !wasVerified) {
      this.verifiedCount++;
      this.changes++;
      // Its name resolves to the address of its authenticated connection: in a mesh the members take
      // our word for that (they verified us), so they need not each ask for every name.
      this.tell(t.index, t.verified!);
    }
    const room = this.mesh || this.authenticated < MAX_HELD;
    if (!verified && !t.conn && !t.connecting && t.notBefore <= this.now && room) {
      // We lost it (or never had it) but know where it was listed: go and look.
      const address = [...t.evidence].find((a) => this.owner.get(a) === t.index) ?? t.addresses[0];
      if (address !== undefined && !this.probing.has(address)) {
        this.connectTarget(t, address);
      }
    }
    this.rearm(t);
    if (verified && this.released) this.deliver(t);
    this.maybeAdopt();
    this.maybePark(t);
    this.maybeRelease();
    this.schedulePoll();
    this.progress();
  }

  private unverified(t: Target): void {
    this.verifiedCount--;
    this.changes++;
    if (this.done.delete(t.index)) this.doneCount--;
  }

  protected onMessage(conn: Conn, message: ControlMessage): void {
    const k = conn.peer!.peerIndex;
    const t = this.members[k];
    if (!t || t.conn !== conn) return;
    if (message.t === 'done') {
      this.changes++;
      const had = this.done.has(k);
      if (message.d === '') {
        if (had) this.doneCount--;
        this.done.delete(k);
      } else {
        if (!had) this.doneCount++;
        this.done.set(k, message.d);
      }
      this.maybePark(t);
      this.maybeRelease();
      this.progress();
    } else if (message.t === 'ack') {
      this.delivered.add(k);
      // Nothing more to say to it: free the slot (a big star holds at most MAX_HELD).
      this.close(conn, 'released');
      t.conn = undefined;
    } else if (message.t === 'release') {
      // A member released before we restarted offers its roster: it needs nothing more from us.
      this.delivered.add(k);
      const roster = unpackAddresses(message.roster, this.config.scope.size);
      if (roster && !this.released) this.offered.set(k, roster);
      this.recheck(t);
    }
  }

  protected onPeerClosed(conn: Conn): void {
    const t = this.members[conn.peer!.peerIndex];
    if (!t || t.conn !== conn) return;
    if (conn.bye === 'released' || (this.released && this.delivered.has(t.index))) {
      t.conn = undefined;
      return;
    }
    if (t.verified !== undefined) this.unverified(t);
    this.detach(t, conn);
    if (this.released && !this.delivered.has(t.index)) {
      // It may have missed the release: push it to its responder.
      this.holdOff(t);
    }
    this.recheck(t);
  }

  protected onTimer(key: string): void {
    if (key === 'poll') this.pollService();
    else this.onTimerAsk(key);
  }

  /**
   * In a star bigger than we can hold, a member verified and done is parked: we hang up, it keeps its
   * responder open for the release and checks in again later (so a restart shows).
   */
  private maybePark(t: Target): void {
    if (this.mesh || !t.conn || this.released || this.config.scope.size - 1 <= MAX_HELD) return;
    if (t.verified === undefined || this.done.get(t.index) !== this.expected(t.index)) return;
    const ms = Math.max(this.config.retryMaxMs, 2 * this.config.scope.size);
    this.send(t.conn, { t: 'park', ms: Math.round(ms * (0.5 + this.config.random())) });
    this.close(t.conn);
    t.conn = undefined;
  }

  // ---- release ----

  /** The view member `k` must report: what it checks, as we verified it, and itself. */
  private expected(k: number): string {
    const entries: [number, string, string][] = [];
    const self = this.config.index;
    entries.push([self, this.config.instance, '']);
    const me = this.members[k]!;
    entries.push([k, me.instance ?? '', '']);
    if (this.mesh)
      for (const t of this.targets())
        if (t.index !== k) entries.push([t.index, t.instance ?? '', t.verified ?? '']);
    return viewDigest(entries);
  }

  private maybeRelease(): void {
    if (this.released || this.stopped) return;
    const members = this.targets();
    if (this.verifiedCount < members.length || this.doneCount < members.length) return;
    for (const t of members)
      if (t.verified === undefined || this.done.get(t.index) !== this.expected(t.index)) return;
    this.released = true;
    this.timers.clear('poll');
    this.roster = this.members.map((_, k) =>
      k === this.config.index ? this.config.selfAddress : this.members[k]!.verified!,
    );
    this.releaseFrame = '';
    this.out.push({ type: 'progress', ready: members.length, total: members.length, missing: [] });
    this.out.push({ type: 'released', roster: [...this.roster] });
    for (const t of members) this.deliver(t);
  }

  /**
   * We restarted after the job was released: a member we verified has the roster. We take it with our
   * new address, once our name resolves to it (the Service lists it), and deliver it like our own.
   */
  private maybeAdopt(): void {
    if (this.released || !this.named) return;
    for (const [k, roster] of this.offered) {
      if (this.members[k]?.verified !== undefined) {
        this.adopt(roster);
        return;
      }
    }
  }

  private adopt(roster: string[]): void {
    this.released = true;
    this.timers.clear('poll');
    this.roster = roster;
    this.roster[this.config.index] = this.config.selfAddress;
    this.releaseFrame = '';
    this.out.push({ type: 'released', roster: [...this.roster] });
    // Members released before we restarted need nothing; the others get it once verified (by name now:
    // we no longer poll the Service).
    for (const t of this.targets()) {
      if (t.verified === undefined) this.recheck(t);
      else this.deliver(t);
    }
  }

  /** Sends the release to `t`: on its connection, or by connecting to its responder. */
  private deliver(t: Target): void {
    if (this.delivered.has(t.index) || t.verified === undefined) return;
    if (this.roster[t.index] !== t.verified) {
      // A member that restarted after the release: the roster gets its new address.
      this.roster[t.index] = t.verified;
      this.releaseFrame = '';
    }
    if (t.conn) {
      if (this.sentOn.has(t.conn)) return;
      this.releaseFrame ||= JSON.stringify({ t: 'release', roster: packAddresses(this.roster) }) + '\n';
      this.send(t.conn, this.releaseFrame);
      this.sentOn.add(t.conn);
      if (this.config.faults?.has('release-without-ack')) this.delivered.add(t.index);
    } else if (!t.connecting && t.notBefore <= this.now) {
      this.connectTarget(t, t.verified);
    }
  }

  override idle(): boolean {
    // (`delivered` holds members' indices only.)
    return this.released && this.delivered.size === this.others.length;
  }

  // ---- reports ----

  private progress(): void {
    if (this.released || this.stopped || this.countedAt === this.changes) return;
    this.countedAt = this.changes;
    let ready = 0;
    for (const t of this.targets()) if (t.verified !== undefined && this.done.has(t.index)) ready++;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    const total = this.config.scope.size - 1;
    // Counted when a member's state changed, and the list built only when the count did: O(N) per
    // change (a few per member over the run), not per event.
    const missing = this.targets()
      .filter((t) => t.verified === undefined || !this.done.has(t.index))
      .map((t) => t.index);
    this.out.push({ type: 'progress', ready, total, missing });
  }

  protected unseen(t: Target): { reason: MissingPeer['reason']; detail: string } {
    return {
      reason: 'not-seen',
      detail: t.conn
        ? `connected from ${t.conn.remote}, which is not in ${this.config.service} yet`
        : t.evidence.size > 0
          ? `listed in ${this.config.service} at ${[...t.evidence].join(', ')}, but not connected to us`
          : `its address never showed up in ${this.config.service}`,
    };
  }

  hint(): string | undefined {
    if (this.badWhy.size === 0) return undefined;
    const lines = [...this.badWhy].slice(0, 20).map(([a, why]) => `  ${a}: ${why}`);
    return `Addresses in ${this.config.service} that did not prove to be a member:\n${lines.join('\n')}`;
  }

  missing(): MissingPeer[] {
    const list: MissingPeer[] = [];
    for (const t of this.targets()) {
      if (t.verified !== undefined && this.done.get(t.index) === this.expected(t.index)) continue;
      if (t.verified !== undefined) {
        list.push({
          index: t.index,
          fqdn: t.name,
          reason: 'unconfirmed',
          detail: this.mesh
            ? 'verified here, but it has not verified every other member yet (see its own log)'
            : 'verified here, but it has not verified the coordinator yet (see its own log)',
        });
      } else {
        list.push({ index: t.index, fqdn: t.name, ...(t.why ?? this.unseen(t)) });
      }
    }
    return list.sort(byCause);
  }
}
