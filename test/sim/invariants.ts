/**
 * What the simulator checks after every step. Safety: what a released roster may contain and when a pod
 * may be released at all (the barrier's promise). Liveness: once the faults stop and every pod is up,
 * everyone is released within a bound. Bounds: what one pod may hold at once. Contract: the core uses the
 * interface of src/core/types.ts as documented. See docs/simulation.md for why these express the promise.
 */
import { maxPending } from '../../src/core/pod.js';
import { MAX_QUEUED_FRAMES } from '../../src/core/wire.js';
import type { Host, Simulation } from './sim.js';

export type ViolationKind = 'safety' | 'liveness' | 'bound' | 'contract';

export interface Violation {
  at: number;
  kind: ViolationKind;
  /** The pod (index/instance serial@address) it concerns, if one. */
  pod?: string;
  what: string;
}

/**
 * DNS queries in flight per pod. The core looks up at most one Service poll plus a bounded number of
 * names at once (docs/protocol.md: at most 64 lookups per pod), whatever the job size.
 */
export const MAX_QUERIES_IN_FLIGHT = 64;

/**
 * Bytes a pod has written that the network has not delivered yet. The core cannot see back-pressure (no
 * input says a write drained), so what it writes at once is what the runtime must buffer: a star
 * coordinator writing a 93 KB roster (10 000 pods) to every member at the same moment would buffer about a
 * gigabyte. 16 MiB is 4 x the runtime's per-connection cap (MAX_UNSENT_BYTES, 4 MiB).
 */
export const MAX_UNSENT_BYTES_PER_POD = 16 * 1024 * 1024;

/** Connects in flight that a pod may hold beyond its peers (handshakes in progress come on top). */
export const CONNECTION_SLACK = 64;

/**
 * A star coordinator's connections at once: under the common limit of 1 024 file descriptors with room for
 * the listener, DNS sockets and the workload (the engine's COORDINATOR_MAX_SOCKETS is 641).
 */
export const MAX_STAR_COORDINATOR_CONNECTIONS = 900;

/** A star member: its connection to the coordinator, the coordinator's pushes, handshakes in progress. */
export const MAX_STAR_MEMBER_CONNECTIONS = 35;

/** Open connections a pod may hold: one or two per peer in a mesh; bounded whatever the size in a star. */
export function maxConnections(topology: 'mesh' | 'star', size: number, coordinator: boolean): number {
  if (topology === 'mesh') return 2 * (size - 1) + CONNECTION_SLACK + maxPending({ size, topology }, false);
  return coordinator ? MAX_STAR_COORDINATOR_CONNECTIONS : MAX_STAR_MEMBER_CONNECTIONS;
}

/**
 * Frames an authenticated connection may queue while nothing consumes them (wire.ts MAX_QUEUED_FRAMES):
 * a peer that keeps sending to a lingering pod must not grow its memory.
 */
export const MAX_BACKLOG = MAX_QUEUED_FRAMES;

/**
 * Timers a pod may have set: one per member it checks (its retry), one per connection in its handshake
 * (the deadline), and a few of its own (the Service poll, a check-in, a fallback).
 */
export function maxTimersOf(topology: 'mesh' | 'star', size: number, coordinator: boolean): number {
  const checked = topology === 'mesh' || coordinator ? size - 1 : 1;
  return checked + maxConnections(topology, size, coordinator) + 8;
}

/** What src/core/machine.ts adds to a Machine for the simulator. */
export interface StatsMachine {
  stats(): { connections: number; queries: number; timers: number; backlog: number };
}

export class Invariants {
  readonly violations: Violation[] = [];
  failed = false;
  /** Who authenticated whom: `${i}@${a}>${j}@${b}` (i authenticated j at b) → first time. */
  private readonly pairs = new Map<string, number>();
  private firstRoster: string[] | undefined;
  private firstAt = 0;
  /** Rosters whose entries passed (see {@link released}). */
  private readonly passedRosters = new Set<string>();
  /** Mesh rosters whose pairs were all verified (checking once is enough: later releases come later). */
  private readonly checkedRosters = new Set<string>();
  /** Extra checks a scenario adds, run after every release. */
  readonly onRelease: ((host: Host, sim: Simulation) => string | undefined)[] = [];

  constructor(private readonly sim: Simulation) {}

  private add(kind: ViolationKind, host: Host | undefined, what: string): void {
    this.failed = true;
    if (this.violations.length < 50)
      this.violations.push({ at: this.sim.now, kind, ...(host ? { pod: host.label } : {}), what });
    this.sim.trace(() => `VIOLATION ${kind} ${host?.label ?? ''}: ${what}`);
  }

  contract(host: Host, what: string): void {
    this.add('contract', host, what);
  }

  bound(host: Host, which: string, what: string): void {
    this.add('bound', host, `${which}: ${what}`);
  }

  safety(host: Host | undefined, what: string): void {
    this.add('safety', host, what);
  }

  /**
   * `viewer`'s core has authenticated `peer` on a connection: as a client when the welcome arrived, as a
   * server when the confirm arrived (`both`: then both sides have authenticated each other). Only between
   * two members of this run, which are honest: their handshake passes once those frames arrive.
   */
  authenticated(viewer: Host, peer: Host, both: boolean): void {
    if (viewer.kind !== 'member' || peer.kind !== 'member') return;
    const now = this.sim.now;
    const note = (v: Host, p: Host): void => {
      const key = `${v.index}@${v.address}>${p.index}@${p.address}`;
      if (!this.pairs.has(key)) this.pairs.set(key, now);
    };
    note(viewer, peer);
    if (both) note(peer, viewer);
    const c = this.sim.scenario.coordinator;
    const mark = (v: Host, p: Host): void => {
      if (v.index === c && p.index !== c) p.verifiedByCoordinatorAt ??= now;
      if (p.index === c && v.index !== c) {
        p.verifiedByMemberAt ??= now;
        v.verifiedCoordinatorAt ??= now;
      }
    };
    mark(viewer, peer);
    if (both) mark(peer, viewer);
  }

  /** Per-step bounds of one pod. */
  bounds(host: Host): void {
    const s = this.sim.scenario;
    const conns = host.conns.size;
    const stats = (host.machine as Partial<StatsMachine> | undefined)?.stats?.();
    if (stats) {
      host.peak.timers = Math.max(host.peak.timers, stats.timers);
      host.peak.backlog = Math.max(host.peak.backlog, stats.backlog);
      const maxTimers = maxTimersOf(s.topology, s.size, host.index === s.coordinator);
      if (stats.timers > maxTimers)
        this.bound(host, 'timers', `${stats.timers} timers set, more than ${maxTimers}`);
      if (stats.backlog > MAX_BACKLOG)
        this.bound(
          host,
          'backlog',
          `${stats.backlog} frames queued that nobody consumes, more than ${MAX_BACKLOG}`,
        );
      if (stats.queries > s.size + 4)
        this.bound(host, 'dns', `${stats.queries} lookups in flight or queued, more than one per member`);
      if (stats.connections > conns)
        this.bound(
          host,
          'connections',
          `the core holds ${stats.connections} connections, the runtime only ${conns} (it kept some it was told were closed)`,
        );
    }
    const queries = host.queries.size;
    host.peak.conns = Math.max(host.peak.conns, conns);
    host.peak.queries = Math.max(host.peak.queries, queries);
    host.peak.unsent = Math.max(host.peak.unsent, host.unsent);
    const maxConns = maxConnections(s.topology, s.size, host.index === s.coordinator);
    if (conns > maxConns) this.bound(host, 'connections', `${conns} open, more than ${maxConns}`);
    if (queries > MAX_QUERIES_IN_FLIGHT)
      this.bound(host, 'dns', `${queries} queries in flight, more than ${MAX_QUERIES_IN_FLIGHT}`);
    if (host.unsent > MAX_UNSENT_BYTES_PER_POD)
      this.bound(
        host,
        'unsent',
        `${host.unsent} bytes written and not delivered, more than ${MAX_UNSENT_BYTES_PER_POD}`,
      );
  }

  /** Addresses a roster may give index `k` at time `t` (see docs/simulation.md, safety). */
  private allowed(k: number, t: number, t0: number): string[] {
    const list = this.sim.instances[k]!;
    const isCoordinator = k === this.sim.scenario.coordinator;
    const verified = (h: Host): number | undefined =>
      isCoordinator ? h.verifiedByMemberAt : h.verifiedByCoordinatorAt;
    const out: string[] = [];
    for (let i = 0; i < list.length; i++) {
      const x = list[i]!;
      const at = verified(x);
      if (at === undefined || at > t) continue;
      let superseded = false;
      for (let j = i + 1; j < list.length; j++) {
        const y = list[j]!;
        const yAt = verified(y);
        if (y.address !== x.address && yAt !== undefined && yAt < t0) {
          superseded = true;
          break;
        }
      }
      if (!superseded && !out.includes(x.address)) out.push(x.address);
    }
    return out;
  }

  /**
   * Index `k` has a later instance that the first release could not include: it was not yet verified by
   * the coordinator (by some member, for the coordinator's own index) at `t0`. A restart after the
   * release, or a replacement whose process came up too late to be verified before it.
   */
  private restartedAfter(k: number, t0: number): boolean {
    const list = this.sim.instances[k]!;
    const last = list[list.length - 1];
    if (list.length < 2 || !last) return false;
    const at = k === this.sim.scenario.coordinator ? last.verifiedByMemberAt : last.verifiedByCoordinatorAt;
    return at === undefined || at > t0;
  }

  /** A member released: check its roster. */
  released(host: Host): void {
    const sim = this.sim;
    const s = sim.scenario;
    const t = sim.now;
    const roster = host.roster!;
    if (roster.length !== s.size) {
      this.safety(host, `released with a roster of ${roster.length} entries, not ${s.size}`);
      return;
    }
    if (!host.machine?.released) this.contract(host, 'said released, but machine.released is false');
    if (this.firstRoster === undefined) {
      this.firstRoster = roster;
      this.firstAt = t;
    }
    const first = this.firstRoster;
    const t0 = this.firstAt;
    if (host.index !== s.coordinator) {
      if (host.verifiedCoordinatorAt === undefined)
        this.safety(host, 'released without ever authenticating the coordinator in a handshake');
      if (roster[host.index] !== host.address)
        this.safety(host, `its own entry is ${roster[host.index]}, not its address ${host.address}`);
    }
    // A roster that passed the entry checks keeps passing later (what was served and verified by then
    // stays so; the first roster does not change): check each distinct roster once.
    const key = roster.join(',');
    if (this.passedRosters.has(key)) {
      if (s.topology === 'mesh') this.meshPairs(host, roster, t);
      for (const check of this.onRelease) {
        const what = check(host, sim);
        if (what !== undefined) this.safety(host, what);
      }
      return;
    }
    const before = this.violations.length;
    for (let k = 0; k < s.size; k++) {
      const a = roster[k]!;
      const name = sim.names[k]!;
      if (typeof a !== 'string' || a === '') {
        this.safety(host, `entry ${k} is empty`);
        continue;
      }
      if (!sim.authority.servedBy(name, a, t)) {
        const owner = sim.strangers.find((x) => x.address === a);
        this.safety(
          host,
          `entry ${k} is ${a}, which DNS never served for ${name} before the release` +
            (owner ? ` (a stranger's address: ${owner.label})` : ''),
        );
        continue;
      }
      const ok = this.allowed(k, t, t0);
      if (!ok.includes(a)) {
        const owner = sim.strangers.find((x) => x.address === a);
        this.safety(
          host,
          `entry ${k} is ${a}, not the address of an instance of index ${k} verified by the coordinator ` +
            `and not superseded before the first release (allowed: ${ok.join(' ') || 'none'})` +
            (owner ? `; ${a} belongs to stranger ${owner.label}` : ''),
        );
        continue;
      }
      if (a !== first[k] && !this.restartedAfter(k, t0))
        this.safety(
          host,
          `entry ${k} is ${a}, but the first roster (released at ${t0.toFixed(1)}) says ${first[k]} ` +
            `and index ${k} did not restart after it`,
        );
    }
    if (this.violations.length === before) this.passedRosters.add(key);
    if (s.topology === 'mesh') this.meshPairs(host, roster, t);
    for (const check of this.onRelease) {
      const what = check(host, sim);
      if (what !== undefined) this.safety(host, what);
    }
  }

  /**
   * In a mesh, every pair of roster entries must have verified each other before the release; a pod that
   * restarted after the first release is exempt (it is released on the coordinator's word, as in a star).
   */
  private meshPairs(host: Host, roster: string[], t: number): void {
    const key = roster.join(',');
    if (this.checkedRosters.has(key)) return;
    const late = roster.map((_, k) => this.restartedAfter(k, this.firstAt));
    const missing: string[] = [];
    for (let i = 0; i < roster.length && missing.length < 5; i++)
      for (let j = i + 1; j < roster.length && missing.length < 5; j++) {
        if (late[i] || late[j]) continue;
        // Each has authenticated the other (on one connection, or each as the client of its own).
        const ij = this.pairs.get(`${i}@${roster[i]}>${j}@${roster[j]}`);
        const ji = this.pairs.get(`${j}@${roster[j]}>${i}@${roster[i]}`);
        if (ij === undefined || ij > t || ji === undefined || ji > t) missing.push(`${i}-${j}`);
      }
    if (missing.length > 0)
      this.safety(
        host,
        `mesh released before these pairs had authenticated each other at their roster addresses: ` +
          missing.join(' '),
      );
    else this.checkedRosters.add(key);
  }

  /** The liveness deadline passed: everyone current must be released by now. */
  liveness(deadline: number): void {
    const sim = this.sim;
    const stuck: string[] = [];
    for (let i = 0; i < sim.scenario.size; i++) {
      const h = sim.current(i);
      if (h === undefined || !h.alive) stuck.push(`${i} (no process)`);
      else if (h.releasedAt === undefined) stuck.push(String(i));
    }
    if (stuck.length === 0) return;
    const c = sim.current(sim.scenario.coordinator);
    let why = '';
    if (c?.machine && c.releasedAt === undefined) {
      try {
        why = c.machine
          .missing()
          .slice(0, 3)
          .map((m) => `${m.index}: ${m.reason}: ${m.detail}`)
          .join('; ');
      } catch {
        why = '(missing() threw)';
      }
    }
    // What the stuck members themselves wait for (the first few that wait for more than the coordinator).
    const own: string[] = [];
    for (const entry of stuck) {
      if (own.length >= 3) break;
      const h = sim.current(Number.parseInt(entry, 10));
      if (!h?.machine || h === c) continue;
      try {
        const m = h.machine
          .missing()
          .filter((x) => x.reason !== 'unconfirmed' || x.index !== sim.scenario.coordinator);
        if (m.length > 0)
          own.push(
            `pod ${h.index} waits for ${m
              .slice(0, 2)
              .map((x) => `${x.index}: ${x.reason}: ${x.detail}`)
              .join('; ')}`,
          );
      } catch {
        own.push(`pod ${h.index}: missing() threw`);
      }
    }
    this.add(
      'liveness',
      undefined,
      `not released ${(sim.now - sim.settledAt).toFixed(0)} ms after the faults stopped and every pod was up ` +
        `(bound ${sim.livenessBoundMs} ms, deadline ${deadline.toFixed(0)}): ${stuck.length} pod(s): ` +
        `${stuck.slice(0, 12).join(', ')}${stuck.length > 12 ? ', ...' : ''}` +
        (why
          ? `; coordinator's missing(): ${why}`
          : c?.releasedAt !== undefined
            ? '; the coordinator is released'
            : '') +
        (own.length > 0 ? `; ${own.join('; ')}` : ''),
    );
  }

  /** End of the run. */
  final(): void {
    const sim = this.sim;
    for (let i = 0; i < sim.scenario.size; i++) {
      const h = sim.current(i);
      if (h?.alive && h.releasedAt !== undefined && h.machine && !h.machine.released)
        this.contract(h, 'machine.released turned false after the release');
    }
  }
}
