/**
 * A member's role, without I/O. **Discovery**: it asks for the coordinator's name once at start (and
 * again when a negative answer's TTL runs out while nobody contacted it); otherwise it learns addresses
 * from the coordinator (`peers`). **Verification**: in a star it checks the coordinator; in a mesh every
 * other member, asking each name only on the coordinator's evidence. It reports `done` with the digest
 * of what it verified, and is released only by a `release` from the coordinator instance it verified.
 * See docs/protocol.md.
 */
import type { MissingPeer } from '../errors.js';
import { byCause, Pod, viewDigest, type Conn, type PodConfig, type Target } from './pod.js';
import type { DnsResult } from './types.js';
import { packAddresses, unpackAddresses, type ControlMessage } from './wire.js';

/**
 * Queries a second, for the whole job, that mesh members not yet in touch with the coordinator may spend
 * asking for its name (each member asks about every size / this seconds, within the retry delays).
 */
export const MESH_COORDINATOR_QPS = 250;

/** A released mesh member closes its connections with the other members after this long (jittered x0.5-1.5). */
export const HANGUP_DELAY_MS = 1000;

export class Member extends Pod {
  /** Whom this member checks, by index: the coordinator (star), or every other member (mesh). */
  private readonly targets = new Map<number, Target>();
  private readonly coordinator: Target;
  /** Whether the coordinator's name may be asked without evidence (at start, and after a negative TTL). */
  private askCoordinator = true;
  private fallbacks = 0;
  private sentDone = '';
  /** The coordinator told us the Service lists our own address. */
  private seen = false;
  private lastReady = -1;

  private readonly mesh: boolean;

  constructor(config: PodConfig) {
    super(config);
    const mesh = config.scope.topology === 'mesh';
    this.mesh = mesh;
    for (let k = 0; k < config.scope.size; k++)
      if (k !== config.index && (mesh || k === config.coordinator)) this.targets.set(k, this.newTarget(k));
    this.coordinator = this.targets.get(config.coordinator)!;
  }

  start(now: number): void {
    this.now = now;
    this.recheck(this.coordinator);
    this.progress();
  }

  protected targetOf(k: number): Target | undefined {
    return this.targets.get(k);
  }

  protected recheck(t: Target): void {
    if (this.stopped || this.released) return;
    const isCoordinator = t === this.coordinator;
    if (
      isCoordinator &&
      t.verified === undefined &&
      !t.connecting &&
      !t.querying &&
      t.addresses.length === 0 &&
      t.evidence.size === 0 &&
      !this.timers.has('fallback')
    )
      // Nowhere to go, or a coordinator connected that we cannot check (we know no address for its name,
      // and it did not say the Service lists it): ask its name again on the fallback schedule.
      this.timers.set('fallback', this.now + this.fallbackWait());
    const verified = this.check(t, isCoordinator && this.askCoordinator);
    const pending = this.unvouched;
    if (isCoordinator && verified && pending !== undefined) {
      this.unvouched = undefined;
      if (pending.instance === t.instance)
        for (const [k, address] of pending.entries) this.vouched(this.targets.get(k)!, address);
    }
    const early = this.early;
    if (isCoordinator && verified && t.conn && early !== undefined && early.instance === t.instance) {
      this.early = undefined;
      this.onRelease(t.conn, early.roster);
      return;
    }
    if (!verified && !t.conn && !t.connecting && this.mayConnect(t) && t.notBefore <= this.now) {
      const address = t.addresses[0] ?? [...t.evidence][0];
      if (address !== undefined) {
        this.connectTarget(t, address);
      }
    }
    this.rearm(t);
    if (
      isCoordinator &&
      verified &&
      !t.conn &&
      !t.connecting &&
      t.notBefore <= this.now &&
      this.sentDone !== this.digest()
    ) {
      // Parked, or the coordinator's connection dropped while we have news for it: go and tell it.
      this.connectTarget(t, t.verified!);
    }
    this.maybeDone();
    this.progress();
  }

  /**
   * Who opens the connection of a pair: a member connects to the coordinator when it has no connection
   * with it; of two members, the higher index connects to the lower, unless the lower one is not listed
   * in the Service yet (then nobody has told the higher one about it).
   */
  private mayConnect(t: Target): boolean {
    return t === this.coordinator || this.config.index > t.index || !this.seen;
  }

  protected override onAnswer(t: Target, r: DnsResult): void {
    if (t === this.coordinator && this.askCoordinator && r.status !== 'ok' && !t.conn) {
      // Nobody has contacted us yet. A star member (a few queries at most) asks the coordinator's name
      // again when this answer expires. A mesh member asks on a backoff from the retry minimum (x1.5):
      // connected to the coordinator before it is Ready itself, it meets and checks the others first, and
      // only their checks of it are left for when it turns Ready.
      this.askCoordinator = false;
      this.timers.set('fallback', this.now + this.fallbackWait());
    } else if (t === this.coordinator && r.status === 'ok') {
      this.askCoordinator = false;
    }
    this.recheck(t);
  }

  /**
   * Our roster once released, packed as on the wire, offered to a coordinator that restarted after the
   * release. Kept packed: one string instead of N (a lingering pod keeps it, and N of them in one
   * process of the scale simulation did: 10 000 pods x 10 000 addresses).
   */
  private roster: string | undefined;

  /** When to ask the coordinator's name again while nobody contacted us. */
  private fallbackWait(): number {
    const { retryMinMs, retryMaxMs, random } = this.config;
    const n = this.fallbacks++;
    const c = this.coordinator;
    if (!this.mesh) return Math.min(Math.max(c.negativeUntil - this.now, this.backoff(n)), retryMaxMs);
    // A backoff from the retry minimum (x1.5) up to a steady pace that holds the job's queries for the
    // coordinator's name to MESH_COORDINATOR_QPS: a member that backed off for long (the coordinator was
    // scheduled late) still meets it, and the others, soon after it turns Ready.
    const cap = Math.min(
      retryMaxMs,
      Math.max(retryMinMs, (this.config.scope.size * 1000) / MESH_COORDINATOR_QPS),
    );
    return Math.min(retryMaxMs, Math.min(retryMinMs * 1.5 ** Math.min(n, 20), cap) * (0.75 + random() / 2));
  }

  protected onPeer(conn: Conn): void {
    if (this.released) {
      if (conn.peer!.peerIndex !== this.coordinator.index || !this.roster) {
        // Nobody else needs anything from a released member (a restarted pod is released on the
        // coordinator's word): free the slot.
        this.close(conn, 'released');
        return;
      }
      // The coordinator that released us is still delivering (our ack was lost): acknowledge again. One
      // that does not know the release (it restarted) may take our roster once it has verified us.
      if (conn.peer!.peerInstance === this.releasedBy) this.send(conn, { t: 'ack' });
      else this.send(conn, { t: 'release', roster: this.roster });
      this.close(conn, 'released');
      return;
    }
    const t = this.targets.get(conn.peer!.peerIndex);
    if (!t) {
      this.close(conn);
      return;
    }
    this.attach(t, conn);
    if (t.conn !== conn) return;
    t.connecting = false;
    if (t === this.coordinator) {
      // A new connection with the coordinator: tell it where we are, whatever it knew.
      this.sentDone = '';
    }
    this.recheck(t);
  }

  protected onMessage(conn: Conn, message: ControlMessage): void {
    const c = this.coordinator;
    if (c.conn !== conn) return; // only the coordinator speaks to members after the handshake
    switch (message.t) {
      case 'peers':
        for (const [k, address] of message.p) {
          if (k === this.config.index) {
            this.seen = true;
            continue;
          }
          const t = this.targets.get(k);
          if (!t) continue;
          if (t === c) {
            // The coordinator says the Service lists it: ask its name (we check it ourselves).
            if (this.addEvidence(t, address)) this.recheck(t);
          } else if (c.verified !== undefined) {
            this.vouched(t, address);
          } else {
            // Taken on the word of the coordinator instance this connection authenticated, once its
            // name resolves to it.
            const instance = c.instance!; // set by the handshake of the connection this came on
            if (this.unvouched?.instance !== instance) this.unvouched = { instance, entries: new Map() };
            this.unvouched.entries.set(k, address);
          }
        }
        break;
      case 'release':
        this.onRelease(conn, message.roster);
        break;
      case 'park':
        // Admitted; the coordinator holds too many connections. It pushes the release to our responder.
        this.close(conn);
        c.conn = undefined;
        this.timers.set('checkin', this.now + message.ms);
        break;
      case 'retry':
        // Turned away before it took anything from us: tell it all again next time.
        this.close(conn);
        c.conn = undefined;
        this.sentDone = '';
        this.holdOff(c, message.ms);
        break;
      default:
        break;
    }
  }

  /** `peers` entries from a coordinator instance not verified yet: taken once it is. */
  private unvouched: { instance: string; entries: Map<number, string> } | undefined;

  /**
   * The coordinator we verified checked that member `t`'s name resolves to `address` (a mesh `peers`
   * entry): it is where `t` is, and an authenticated connection from there verifies it, without a query
   * of our own. A connection from elsewhere (a restart the coordinator has not seen yet) still makes us
   * ask the name ourselves (paced like any stale answer, see Pod.ask).
   */
  private vouched(t: Target, address: string): void {
    this.addEvidence(t, address);
    if (!t.addresses.includes(address)) t.addresses = [address];
    t.negativeUntil = 0;
    this.recheck(t);
  }

  /** The coordinator instance whose release we took. */
  private releasedBy: string | undefined;
  /** A release that came before we had verified its sender: taken once we have. */
  private early: { instance: string; roster: string } | undefined;

  private onRelease(conn: Conn, packed: string): void {
    const c = this.coordinator;
    // Only from the coordinator instance we verified (its name resolved to that connection's address).
    if (c.verified === undefined || conn.peer!.peerInstance !== c.instance) {
      if (conn.peer!.peerInstance === c.instance) this.early = { instance: c.instance, roster: packed };
      return;
    }
    const roster = unpackAddresses(packed, this.config.scope.size);
    if (!roster) return;
    this.releasedBy = c.instance;
    if (roster[c.index] === '') {
      roster[c.index] = c.verified;
      packed = packAddresses(roster);
    }
    this.send(conn, { t: 'ack' });
    const total = this.targets.size;
    this.out.push({ type: 'progress', ready: total, total, missing: [] });
    this.released = true;
    this.roster = packed;
    // Our own timers; the handshake deadlines of connections still in progress stay.
    this.timers.clear('fallback');
    this.timers.clear('checkin');
    for (const t of this.targets.values()) this.timers.clear(`ask:${t.index}`);
    this.dropQueuedConnects();
    this.out.push({ type: 'released', roster });
    // The other members' connections are closed a little later: at the release every pod of a mesh would
    // otherwise close N - 1 connections (and hear N - 1 closes) at the moment all of them start their
    // workload. Nothing is taken from them meanwhile (only the coordinator is listened to).
    this.close(conn, 'released');
    if (this.mesh) this.timers.set('hangup', this.now + HANGUP_DELAY_MS * (0.5 + this.config.random()));
    else this.hangUp();
  }

  /** Closes the connections a released member still holds. */
  private hangUp(): void {
    for (const t of this.targets.values()) if (t.conn) this.close(t.conn, 'released');
  }

  protected onPeerClosed(conn: Conn): void {
    const t = this.targets.get(conn.peer!.peerIndex);
    if (!t || t.conn !== conn) return;
    if (conn.bye === 'released') {
      // It passed: it needs nothing more from us, nor we from it (the coordinator's view has it).
      t.conn = undefined;
    } else {
      this.detach(t, conn);
      if (t === this.coordinator) {
        this.sentDone = '';
        this.holdOff(t);
      }
    }
    this.recheck(t);
  }

  protected onTimer(key: string): void {
    const c = this.coordinator;
    if (key === 'hangup') {
      this.hangUp();
      return;
    }
    if (key === 'fallback') {
      if (c.verified === undefined) {
        this.askCoordinator = true;
        if (this.mesh) c.negativeUntil = this.now;
        this.recheck(c);
      }
      return;
    }
    if (key === 'checkin') {
      if (!c.conn) {
        this.sentDone = '';
        this.recheck(c);
      }
      return;
    }
    this.onTimerAsk(key);
  }

  // ---- reporting to the coordinator ----

  private digest(): string {
    const entries: [number, string, string][] = [[this.config.index, this.config.instance, '']];
    for (const t of this.targets.values()) {
      if (t.verified === undefined) return '';
      entries.push([t.index, t.instance ?? '', t === this.coordinator ? '' : t.verified]);
    }
    return viewDigest(entries);
  }

  private maybeDone(): void {
    const c = this.coordinator;
    const d = this.digest();
    if (d === this.sentDone || !c.conn) return;
    this.send(c.conn, { t: 'done', d });
    this.sentDone = d;
  }

  private progress(): void {
    if (this.released || this.stopped) return;
    let ready = 0;
    for (const t of this.targets.values()) if (t.verified !== undefined) ready++;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    const missing = [...this.targets.values()].filter((t) => t.verified === undefined).map((t) => t.index);
    this.out.push({ type: 'progress', ready, total: this.targets.size, missing });
  }

  protected unseen(t: Target): { reason: MissingPeer['reason']; detail: string } {
    return {
      reason: 'not-seen',
      detail:
        t === this.coordinator
          ? 'the coordinator has not contacted us and its name does not resolve yet'
          : t.evidence.size > 0
            ? `listed in ${this.config.service} at ${[...t.evidence].join(', ')}, but not connected to us yet`
            : 'the coordinator has not seen it in the Service yet',
    };
  }

  hint(): string | undefined {
    if (this.seen || this.coordinator.instance === undefined) return undefined;
    const self = this.config.selfAddress || 'this pod';
    return (
      `Our own address ${self} never appeared in ${this.config.service} as the coordinator sees it: ` +
      'this pod is not Ready, so its name does not resolve and nobody can verify it. If a readiness or ' +
      'startup probe waits for kubepeers, set publishNotReadyAddresses: true on the Service.'
    );
  }

  missing(): MissingPeer[] {
    const list: MissingPeer[] = [];
    for (const t of this.targets.values()) {
      if (t.verified !== undefined) continue;
      list.push({ index: t.index, fqdn: t.name, ...(t.why ?? this.unseen(t)) });
    }
    if (list.length === 0) {
      const c = this.coordinator;
      list.push({
        index: c.index,
        fqdn: c.name,
        reason: 'unconfirmed',
        detail:
          'verified, but the coordinator has not released the job yet (it waits for other members: see its log)',
      });
    }
    return list.sort(byCause);
  }
}
