/**
 * A deterministic simulation of one Indexed Job running the barrier's protocol core (src/core/) in many
 * simulated pods at once: a virtual clock, a simulated cluster DNS (authority and caches), a simulated TCP
 * network (ordered byte streams cut into arbitrary segments, resets, partitions) and pod life cycles
 * (creation, Ready, crash, restart, replacement, address reuse, strangers). Modelled on FoundationDB's
 * simulation testing and TigerBeetle's VOPR: one seed drives every random choice, so a failing run
 * replays exactly. Invariants (invariants.ts) are checked after every step; see docs/simulation.md.
 */
import { scopeKey } from '../../src/core/handshake.js';
import { createMachine, type Fault, type PodConfig } from '../../src/core/machine.js';
import type { CoreConfig, DnsResult, Input, Machine, Output } from '../../src/core/types.js';
import type { Scope } from '../../src/core/wire.js';
import { Authority, DnsCache } from './dns.js';
import { Invariants, type Violation } from './invariants.js';
import { Rng } from './prng.js';
import { EventQueue } from './queue.js';
import { replayCommand, type Scenario, type StrangerKind } from './scenario.js';
import { createFlooder } from './stranger.js';

/** Builds a pod's core (src/core/machine.ts `createMachine`, or a stand-in). */
export type MachineFactory = (config: PodConfig) => Machine;

/** The real core. */
export const realCore: MachineFactory = (config) => createMachine(config);

export const NAMESPACE = 'default';
export const SUBDOMAIN = 'svc';
export const CLUSTER_DOMAIN = 'cluster.local';
export const JOB = 'job';

export function memberName(job: string, index: number): string {
  return `${job}-${index}.${SUBDOMAIN}.${NAMESPACE}.svc.${CLUSTER_DOMAIN}.`;
}
export const SERVICE = `${SUBDOMAIN}.${NAMESPACE}.svc.${CLUSTER_DOMAIN}.`;

/** A byte stream in one direction of a connection: what was sent and not yet delivered. */
class Stream {
  chunks: Uint8Array[] = [];
  /** Offset into chunks[0] of the first byte not yet delivered. */
  head = 0;
  bytes = 0;
  scheduled = false;
  /** The sender closed: deliver `closed` once the bytes are through. */
  fin = false;
  /** Earliest time of the next delivery (keeps deliveries in order). */
  nextAt = 0;
  /** Consecutive stalls (a dropped path): retransmission backoff. */
  stalls = 0;
  /** Reset the connection instead of the next delivery (a fault armed on a send). */
  resetArmed = false;
}

/** One end of a connection, as one host's core sees it. */
export class Endpoint {
  /** The core's id of this connection (positive: it connected; negative: accepted). */
  id = 0;
  /** The core still has this connection (it did not close it and was not told `closed`). */
  coreOpen = true;
  readonly out = new Stream();
  peer!: Endpoint;
  constructor(
    readonly host: Host,
    readonly conn: Conn,
    readonly role: 'client' | 'server',
  ) {}
}

export class Conn {
  state: 'syn' | 'open' | 'dead' = 'syn';
  /** When the client's core got the server's `welcome` (it has authenticated the server). */
  welcomedAt: number | undefined;
  /** When the server's core got the client's `confirm` (both honest members: the handshake passed). */
  confirmedAt: number | undefined;
  /** The first bytes each side received (enough to see the handshake). */
  c2s = '';
  s2c = '';
  /** Position in {@link Simulation.openConns}. */
  slot = -1;
  readonly client: Endpoint;
  /** Set when the SYN reaches a listener. */
  server!: Endpoint;
  constructor(
    readonly serial: number,
    clientHost: Host,
  ) {
    this.client = new Endpoint(clientHost, this, 'client');
  }

  attach(serverHost: Host): Endpoint {
    this.server = new Endpoint(serverHost, this, 'server');
    this.client.peer = this.server;
    this.server.peer = this.client;
    return this.server;
  }
}

export type HostKind = 'member' | 'stranger';

/** A process: one instance of a member pod's core, or a stranger. */
export class Host {
  machine: Machine | undefined;
  /** The process runs and listens. */
  alive = false;
  readonly conns = new Map<number, Endpoint>();
  /** Connections the runtime told the core are gone (closed, connect-failed): closing one is harmless. */
  readonly gone = new Set<number>();
  nextAccept = -1;
  /** DNS queries in flight: id → name. */
  readonly queries = new Map<number, string>();
  /** Bytes the core wrote that the network has not delivered yet. */
  unsent = 0;
  timerAt: number | undefined;
  timerGen = 0;
  spinAt = -1;
  spins = 0;
  createdAt: number;
  startedAt: number | undefined;
  diedAt: number | undefined;
  releasedAt: number | undefined;
  roster: string[] | undefined;
  /** Member instance: first time an instance of the coordinator authenticated it (handshake). */
  verifiedByCoordinatorAt: number | undefined;
  /** Coordinator instance: first time a member authenticated it. */
  verifiedByMemberAt: number | undefined;
  /** Member instance: first time it authenticated an instance of the coordinator. */
  verifiedCoordinatorAt: number | undefined;
  /** Peak usage, for the report. */
  peak = { conns: 0, unsent: 0, queries: 0, timers: 0, backlog: 0 };
  count = { inputs: 0, queries: 0, connects: 0, sends: 0, bytes: 0 };
  readonly rng: Rng;
  constructor(
    readonly serial: number,
    readonly kind: HostKind,
    readonly index: number,
    readonly instance: string,
    readonly address: string,
    readonly pod: Pod | undefined,
    rng: Rng,
    now: number,
  ) {
    this.rng = rng;
    this.createdAt = now;
  }
  get label(): string {
    return `${this.kind === 'member' ? '' : `${this.kind}:`}${this.index}/${this.serial}@${this.address}`;
  }
}

/** A Kubernetes pod of the job: an address, Ready or not, and its current process. */
export class Pod {
  ready = false;
  deleted = false;
  host: Host | undefined;
  /** The pod's name and address are in DNS (at the source, after propagation). */
  published = false;
  constructor(
    readonly index: number,
    readonly address: string,
    readonly createdAt: number,
  ) {}
}

export interface SimOptions {
  factory: MachineFactory;
  /** Keep a trace of the last events (printed with a failure). */
  trace?: boolean;
  /** Stop at the first violation (default true). */
  stopOnViolation?: boolean;
  /** Extra time after everyone is released, to see that nothing goes wrong while pods linger. */
  tailMs?: number;
}

export interface RunStats {
  endedAt: number;
  firstReleaseAt: number | undefined;
  lastReleaseAt: number | undefined;
  /** When faults stopped and every pod was up (the liveness clock starts here). */
  settledAt: number;
  livenessBoundMs: number;
  events: number;
  inputs: number;
  queries: number;
  connects: number;
  bytes: number;
  peakConns: { member: number; coordinator: number };
  peakQueries: number;
  peakUnsent: number;
  peakTimers: number;
  peakBacklog: number;
  hosts: number;
  fingerprint: number;
}

export interface RunResult {
  scenario: Scenario;
  violations: Violation[];
  stats: RunStats;
  replay: string;
  trace: string[];
}

const TEXT = new TextEncoder();

/** Largest read the runtime hands the core at once (Node.js reads sockets into 64 KiB buffers). */
export const MAX_READ_BYTES = 64 * 1024;

/** The simulated cluster and job. Tests build one from a {@link Scenario}, may script it, then {@link run}. */
export class Simulation {
  readonly queue = new EventQueue();
  readonly rng: Rng;
  /** Streams of their own for the network, DNS and faults, so that each part draws independently. */
  private readonly netRng: Rng;
  private readonly dnsRng: Rng;
  readonly faultRng: Rng;
  readonly authority: Authority;
  private readonly nodeCaches: DnsCache[] = [];
  private readonly replicaCaches: DnsCache[] = [];
  readonly scope: Scope;
  readonly key: Uint8Array;
  readonly names: string[];
  /** The current pod of each index (undefined between a deletion and its replacement). */
  readonly pods: (Pod | undefined)[];
  /** Every process instance of each index, oldest first. */
  readonly instances: Host[][];
  readonly strangers: Host[] = [];
  /** Who listens at each address (a live process), and which pods/strangers hold an address at all. */
  private readonly listeners = new Map<string, Host>();
  private readonly assigned = new Map<string, Pod | Host>();
  private readonly freed: string[] = [];
  private nextAddress = 1;
  private hostSerial = 0;
  private connSerial = 0;
  /** Open connections (for random resets). */
  readonly openConns: Conn[] = [];
  /** Partitions: `${src}>${dst}` → kind. */
  private readonly drops = new Map<string, number>();
  private readonly policies = new Map<string, number>();
  /** DNS changes reach the source in order. */
  private dnsApplyAt = 0;
  readonly invariants: Invariants;
  private readonly traceLog: string[] | undefined;
  /** Whether a trace is kept (callers test it before building a line). */
  readonly tracing: boolean;
  /** Lines of trace kept (KPSIM_TRACE_LINES, default 4 000). */
  private readonly traceLines = Number(process.env.KPSIM_TRACE_LINES ?? 4000);
  private fingerprint = 0x811c9dc5;
  private events = 0;
  /** Things scheduled by the scenario that must happen before the run may end (restarts, late pods). */
  pending = 0;
  /** Last time something disturbed the job after the faults (a pod started or turned Ready). */
  lastDisturbance = 0;
  firstReleaseAt: number | undefined;
  private stopped = false;
  private postReleaseScheduled = false;
  private lastEncoded: { text: string; bytes: Uint8Array } | undefined;
  readonly livenessBoundMs: number;
  readonly tailMs: number;

  constructor(
    readonly scenario: Scenario,
    readonly options: SimOptions,
  ) {
    this.rng = new Rng(scenario.seed);
    this.netRng = this.rng.fork();
    this.dnsRng = this.rng.fork();
    this.faultRng = this.rng.fork();
    this.scope = {
      namespace: NAMESPACE,
      subdomain: SUBDOMAIN,
      clusterDomain: CLUSTER_DOMAIN,
      jobName: JOB,
      runId: `run-${scenario.seed}`,
      size: scenario.size,
      topology: scenario.topology,
    };
    this.key = scopeKey(this.scope, undefined);
    this.names = Array.from({ length: scenario.size }, (_, i) => memberName(JOB, i));
    this.pods = new Array<Pod | undefined>(scenario.size).fill(undefined);
    this.instances = Array.from({ length: scenario.size }, () => []);
    const { dns } = scenario;
    this.authority = new Authority(
      { ttlMs: dns.ttlMs, negTtlMs: dns.negTtlMs, family: scenario.family, emptyService: dns.emptyService },
      SERVICE,
    );
    if (dns.nodeCache) {
      const nodes = Math.ceil(scenario.size / dns.nodeCache.podsPerNode);
      for (let i = 0; i < nodes; i++) this.nodeCaches.push(new DnsCache(dns.nodeCache));
    }
    if (dns.replicas)
      for (let i = 0; i < dns.replicas.count; i++) this.replicaCaches.push(new DnsCache(dns.replicas.cache));
    this.invariants = new Invariants(this);
    this.traceLog = options.trace ? [] : undefined;
    this.tracing = this.traceLog !== undefined;
    this.livenessBoundMs = livenessBound(scenario);
    this.tailMs = options.tailMs ?? 1000;
  }

  get now(): number {
    return this.queue.now;
  }

  // ---------------------------------------------------------------- tracing

  trace(what: () => string): void {
    if (this.traceLog === undefined) return;
    this.traceLog.push(`${this.now.toFixed(3).padStart(10)} ${what()}`);
    if (this.traceLog.length > this.traceLines) this.traceLog.splice(0, this.traceLines >> 2);
  }

  private mix(x: number): void {
    let h = this.fingerprint ^ (x & 0xffff);
    h = Math.imul(h, 0x01000193);
    h ^= x >>> 16;
    this.fingerprint = Math.imul(h, 0x01000193) >>> 0;
  }

  // ---------------------------------------------------------------- addresses

  private fresh(): string {
    const n = this.nextAddress++;
    if (this.scenario.family === 6) return `fd00:0:0:1::${n.toString(16)}`;
    return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  }

  /** An address for a new pod: a fresh one, or (with `reuse`) one freed earlier. */
  allocate(reuse: boolean): string {
    if (reuse && this.freed.length > 0) {
      const at = this.faultRng.int(0, this.freed.length - 1);
      return this.freed.splice(at, 1)[0]!;
    }
    let a = this.fresh();
    while (this.assigned.has(a)) a = this.fresh();
    return a;
  }

  private release(address: string): void {
    this.assigned.delete(address);
    this.freed.push(address);
  }

  // ---------------------------------------------------------------- pods

  /** Creates pod `index` (a new address) and starts its container after `startIn` ms. */
  createPod(index: number, opts: { reuse?: boolean; startIn?: number; readyIn?: number } = {}): Pod {
    const address = this.allocate(opts.reuse ?? false);
    const pod = new Pod(index, address, this.now);
    this.pods[index] = pod;
    this.assigned.set(address, pod);
    if (this.tracing) this.trace(() => `pod ${index} created at ${address}`);
    if (this.scenario.publishNotReady) this.publish(pod);
    this.pending++;
    this.queue.after(opts.startIn ?? 0, () => {
      this.pending--;
      if (!pod.deleted) this.startContainer(pod, opts.readyIn);
    });
    return pod;
  }

  /** A container (re)start: a new process instance that boots, then starts its core; Ready later. */
  private startContainer(pod: Pod, readyIn?: number): void {
    const { start } = this.scenario;
    const host = new Host(
      this.hostSerial++,
      'member',
      pod.index,
      this.rng.token(12),
      pod.address,
      pod,
      this.rng.fork(),
      this.now,
    );
    pod.host = host;
    this.instances[pod.index]!.push(host);
    this.disturbed();
    const boot = this.rng.real(start.bootMs[0], start.bootMs[1]);
    const ready = readyIn ?? this.rng.real(start.readyJitterMs[0], start.readyJitterMs[1]);
    this.pending += 2;
    this.queue.after(boot, () => {
      this.pending--;
      if (pod.host === host && !pod.deleted) this.startProcess(host);
    });
    this.queue.after(ready, () => {
      this.pending--;
      if (pod.host === host && !pod.deleted) this.setReady(pod, true);
    });
  }

  private startProcess(host: Host): void {
    const s = this.scenario;
    const config: PodConfig = {
      scope: this.scope,
      key: this.key,
      index: host.index,
      instance: host.instance,
      selfAddress: host.address,
      nameOf: (k: number) => this.names[k]!,
      service: SERVICE,
      coordinator: s.coordinator,
      pollMs: s.core.pollMs,
      retryMinMs: s.core.retryMinMs,
      retryMaxMs: s.core.retryMaxMs,
      connectTimeoutMs: s.core.connectTimeoutMs,
      random: () => host.rng.next(),
      nonce: () => host.rng.token(),
    };
    if (s.coreFaults.length > 0) config.faults = new Set(s.coreFaults as Fault[]);
    this.boot(host, this.options.factory(config));
  }

  /** Starts a process's core and makes it listen at its address. */
  boot(host: Host, machine: Machine): void {
    host.machine = machine;
    host.alive = true;
    host.startedAt = this.now;
    this.listeners.set(host.address, host);
    this.disturbed();
    if (this.tracing) this.trace(() => `${host.label} start`);
    this.guard(host, () => machine.start(this.now));
    this.afterStep(host);
  }

  setReady(pod: Pod, ready: boolean): void {
    if (pod.ready === ready) return;
    pod.ready = ready;
    this.disturbed();
    if (this.tracing) this.trace(() => `pod ${pod.index}@${pod.address} ${ready ? 'Ready' : 'not Ready'}`);
    if (this.scenario.publishNotReady) return;
    if (ready) this.publish(pod);
    else this.unpublish(pod);
  }

  /** Publishes the pod's name and its Service entry (after the propagation delay). */
  private publish(pod: Pod): void {
    this.dnsChange(() => {
      if (pod.deleted || (!pod.ready && !this.scenario.publishNotReady)) return;
      pod.published = true;
      this.authority.add(this.now, this.names[pod.index]!, pod.address);
      this.authority.add(this.now, SERVICE, pod.address);
    });
  }

  private unpublish(pod: Pod): void {
    this.dnsChange(() => {
      if (pod.ready && !pod.deleted && !this.scenario.publishNotReady) return;
      pod.published = false;
      this.authority.remove(this.names[pod.index]!, pod.address);
      this.authority.remove(SERVICE, pod.address);
    });
  }

  /** A change of the DNS source, in order, after the EndpointSlice → CoreDNS propagation delay. */
  dnsChange(apply: () => void): void {
    const [lo, hi] = this.scenario.dns.propagationMs;
    this.dnsApplyAt = Math.max(this.dnsApplyAt, this.now + this.dnsRng.real(lo, hi));
    this.pending++;
    this.queue.at(this.dnsApplyAt, () => {
      this.pending--;
      apply();
    });
  }

  /**
   * The process of pod `index` dies. `silent`: its node vanished (peers get no FIN). Then, unless `then` is
   * 'none', the container restarts in place (same address, new instance) or the pod is replaced (new
   * address, maybe one another pod freed).
   */
  crash(
    index: number,
    opts: { silent?: boolean; then?: 'restart' | 'replace' | 'none'; reuse?: boolean; delayMs?: number } = {},
  ): void {
    const pod = this.pods[index];
    const host = pod?.host;
    if (pod === undefined || host === undefined || !host.alive) return;
    this.kill(host, opts.silent ?? false);
    this.setReady(pod, false);
    const then = opts.then ?? 'restart';
    const [lo, hi] = this.scenario.faults.restartMs;
    const delay = opts.delayMs ?? this.faultRng.real(lo, hi);
    if (then === 'restart') {
      this.pending++;
      this.queue.after(delay, () => {
        this.pending--;
        if (this.pods[index] === pod && !pod.deleted) this.startContainer(pod);
      });
    } else if (then === 'replace') {
      this.deletePod(pod);
      this.pending++;
      this.queue.after(delay, () => {
        this.pending--;
        this.createPod(index, { reuse: opts.reuse ?? false, startIn: this.faultRng.real(50, 500) });
      });
    }
  }

  /** Deletes a pod: its records go, its address is freed (maybe taken by a stranger). */
  deletePod(pod: Pod): void {
    if (pod.host?.alive) this.kill(pod.host, false);
    pod.deleted = true;
    pod.ready = false;
    if (this.pods[pod.index] === pod) this.pods[pod.index] = undefined;
    this.unpublish(pod);
    this.release(pod.address);
    this.disturbed();
    if (
      this.now < this.scenario.faults.endMs &&
      this.faultRng.chance(this.scenario.faults.reuseByStrangerP)
    ) {
      const address = pod.address;
      const kind: StrangerKind = this.faultRng.chance(0.5) ? 'other-job' : 'flooder';
      this.queue.after(this.faultRng.real(10, 2000), () => {
        if (this.assigned.has(address)) return;
        this.freed.splice(this.freed.indexOf(address), 1);
        const stranger = this.addStranger(kind, address);
        // A flooder is a fault: it stops with the others (another job's pod stays, listening).
        if (kind === 'flooder') this.queue.at(this.scenario.faults.endMs, () => this.kill(stranger, false));
      });
    }
  }

  /** Ends a process: its connections close (FIN/RST, or nothing when `silent`), its queries are forgotten. */
  kill(host: Host, silent: boolean): void {
    if (!host.alive) return;
    if (this.tracing) this.trace(() => `${host.label} ${silent ? 'vanishes' : 'crashes'}`);
    host.alive = false;
    host.diedAt = this.now;
    host.machine = undefined;
    host.timerGen++;
    host.queries.clear();
    if (this.listeners.get(host.address) === host) this.listeners.delete(host.address);
    for (const ep of [...host.conns.values()]) {
      ep.coreOpen = false;
      if (ep.conn.state === 'syn') {
        ep.conn.state = 'dead';
      } else if (silent) {
        // No FIN: the peer's runtime notices through keepalive, much later.
        this.dropStreams(ep.conn);
        this.queue.after(this.scenario.net.silentCloseMs, () => this.tellClosed(ep.peer));
      } else if (this.netRng.chance(0.5)) {
        this.finish(ep); // FIN after what was written
      } else {
        this.reset(ep.conn); // RST: what was in flight is lost
      }
    }
    host.conns.clear();
    this.disturbed();
  }

  // ---------------------------------------------------------------- strangers

  /** A stranger appears at `address` (or a fresh one). */
  addStranger(kind: StrangerKind, address?: string): Host {
    const r = this.faultRng;
    const index = r.int(0, this.scenario.size - 1);
    const addr = address ?? this.allocate(false);
    const host = new Host(
      this.hostSerial++,
      'stranger',
      index,
      r.token(12),
      addr,
      undefined,
      r.fork(),
      this.now,
    );
    this.assigned.set(addr, host);
    this.strangers.push(host);
    if (this.tracing) this.trace(() => `stranger ${kind} ${host.label}`);
    const scope: Scope = { ...this.scope };
    let key = this.key;
    let nameOf = (k: number): string => this.names[k]!;
    let service = SERVICE;
    if (kind === 'old-run') {
      scope.runId = `old-${scope.runId}`;
      key = scopeKey(scope, undefined);
    } else if (kind === 'wrong-secret') {
      key = scopeKey(scope, 'not-the-secret');
    } else if (kind === 'flooder') {
      key = scopeKey(scope, 'a flooder knows no secret');
    } else if (kind === 'other-job') {
      scope.jobName = 'other';
      key = scopeKey(scope, undefined);
      nameOf = (k: number): string => memberName('other', k);
      service = `other.${NAMESPACE}.svc.${CLUSTER_DOMAIN}.`;
    }
    const config: CoreConfig = {
      scope,
      key,
      index,
      instance: host.instance,
      selfAddress: addr,
      nameOf,
      service,
      coordinator: this.scenario.coordinator,
      pollMs: this.scenario.core.pollMs,
      retryMinMs: this.scenario.core.retryMinMs,
      retryMaxMs: this.scenario.core.retryMaxMs,
      connectTimeoutMs: this.scenario.core.connectTimeoutMs,
      random: () => host.rng.next(),
      nonce: () => host.rng.token(),
    };
    const machine =
      kind === 'flooder'
        ? createFlooder(
            { ...config, scope: this.scope, nameOf: (k: number) => this.names[k]!, service: SERVICE },
            host.rng,
          )
        : this.options.factory(config);
    this.boot(host, machine);
    if (kind === 'old-run' || kind === 'wrong-secret') {
      // Listed under member `index`'s name and in the Service (it carries the job's labels).
      this.dnsChange(() => {
        if (!host.alive) return;
        this.authority.add(this.now, this.names[index]!, addr);
        this.authority.add(this.now, SERVICE, addr);
      });
    }
    return host;
  }

  /** A stranger leaves: its records go; its address is not reused. */
  removeStranger(host: Host): void {
    if (!host.alive) return;
    this.kill(host, false);
    this.dnsChange(() => {
      this.authority.remove(this.names[host.index]!, host.address);
      this.authority.remove(SERVICE, host.address);
    });
  }

  // ---------------------------------------------------------------- network

  /** Blocks packets from `a` to `b` (`both`: and back) or, with `policy`, new connections from a to b. */
  partition(a: string, b: string, kind: 'policy' | 'one-way' | 'both', ms: number): void {
    if (this.tracing) this.trace(() => `partition ${kind} ${a} -> ${b} for ${ms.toFixed(0)} ms`);
    const add = (m: Map<string, number>, k: string, d: number): void => {
      m.set(k, (m.get(k) ?? 0) + d);
      if (m.get(k) === 0) m.delete(k);
    };
    const apply = (d: number): void => {
      if (kind === 'policy') add(this.policies, `${a}>${b}`, d);
      else {
        add(this.drops, `${a}>${b}`, d);
        if (kind === 'both') add(this.drops, `${b}>${a}`, d);
      }
    };
    apply(1);
    this.queue.after(ms, () => {
      apply(-1);
      if (this.tracing) this.trace(() => `heal ${kind} ${a} -> ${b}`);
    });
  }

  private dropped(src: string, dst: string): boolean {
    return this.drops.size > 0 && this.drops.has(`${src}>${dst}`);
  }

  private latency(): number {
    const [lo, hi] = this.scenario.net.latencyMs;
    return this.netRng.real(lo, hi);
  }

  private onConnect(host: Host, out: Extract<Output, { type: 'connect' }>): void {
    host.gone.delete(out.conn);
    if (out.conn <= 0 || host.conns.has(out.conn)) {
      this.invariants.contract(host, `connect with conn ${out.conn}, which is not a new positive id`);
      return;
    }
    host.count.connects++;
    const conn = new Conn(this.connSerial++, host);
    const ep = conn.client;
    ep.id = out.conn;
    host.conns.set(out.conn, ep);
    const src = host.address;
    const dst = out.address;
    const fail = (detail: string, after: number): void => {
      this.queue.after(after, () => {
        if (!ep.coreOpen || !host.alive) return;
        ep.coreOpen = false;
        host.conns.delete(ep.id);
        host.gone.add(ep.id);
        conn.state = 'dead';
        this.deliver(host, { type: 'connect-failed', conn: ep.id, detail });
      });
    };
    const timeout = this.scenario.core.connectTimeoutMs;
    this.queue.after(this.latency(), () => {
      if (!ep.coreOpen || !host.alive) return;
      const server = this.listeners.get(dst);
      const blocked = this.dropped(src, dst) || this.dropped(dst, src) || this.policies.has(`${src}>${dst}`);
      if (blocked) return fail('ETIMEDOUT', timeout);
      if (server === undefined || !server.alive) {
        if (this.assigned.has(dst)) {
          const [lo, hi] = this.scenario.net.refusedMs;
          return fail('ECONNREFUSED', this.netRng.real(lo, hi));
        }
        return fail('ETIMEDOUT', timeout); // nobody has that address: SYNs go unanswered
      }
      const sep = conn.attach(server);
      sep.id = server.nextAccept--;
      server.gone.delete(sep.id);
      server.conns.set(sep.id, sep);
      conn.state = 'open';
      conn.slot = this.openConns.length;
      this.openConns.push(conn);
      sep.out.nextAt = this.now;
      this.deliver(server, { type: 'accepted', conn: sep.id, remote: src });
      const back = this.latency();
      ep.out.nextAt = Math.max(ep.out.nextAt, this.now + back);
      sep.out.nextAt = Math.max(sep.out.nextAt, this.now + back);
      this.queue.after(back, () => {
        if (!ep.coreOpen || !host.alive) return;
        this.deliver(host, { type: 'connected', conn: ep.id });
        this.kick(ep);
      });
      this.kick(sep);
    });
  }

  private encode(text: string): Uint8Array {
    // The same big frame (a roster) is often written to many connections: encode it once.
    if (text.length < 256) return TEXT.encode(text);
    if (this.lastEncoded?.text === text) return this.lastEncoded.bytes;
    const bytes = TEXT.encode(text);
    this.lastEncoded = { text, bytes };
    return bytes;
  }

  private onSend(host: Host, out: Extract<Output, { type: 'send' }>): void {
    const ep = host.conns.get(out.conn);
    if (ep === undefined) {
      this.invariants.contract(host, `send on conn ${out.conn}, which it does not have`);
      return;
    }
    if (out.data.length === 0) return;
    const bytes = this.encode(out.data);
    host.count.sends++;
    host.count.bytes += bytes.length;
    if (ep.conn.state === 'dead') return; // reset: the runtime would see EPIPE and drop it
    const s = ep.out;
    s.chunks.push(bytes);
    s.bytes += bytes.length;
    host.unsent += bytes.length;
    const f = this.scenario.faults;
    if (this.now < f.endMs && !s.resetArmed) {
      const release = out.data.includes('"t":"release"');
      if (this.faultRng.chance(release ? f.resetOnReleaseP : f.resetOnSendP)) s.resetArmed = true;
    }
    this.kick(ep);
  }

  /** Schedules the next delivery of `ep`'s outgoing stream if it has something to deliver. */
  private kick(ep: Endpoint): void {
    const s = ep.out;
    if (s.scheduled || ep.conn.state !== 'open') return;
    if (s.bytes === 0 && !s.fin) return;
    s.scheduled = true;
    const n = this.scenario.net;
    let at = Math.max(s.nextAt, this.now + this.latency());
    if (this.netRng.chance(n.holdP)) at += this.netRng.real(0, 5);
    this.queue.at(at, () => this.flow(ep));
  }

  /** Delivers some or all of the bytes waiting in `ep`'s outgoing stream, in order. */
  private flow(ep: Endpoint): void {
    const s = ep.out;
    s.scheduled = false;
    const conn = ep.conn;
    if (conn.state !== 'open') return;
    const to = ep.peer;
    if (this.dropped(ep.host.address, to.host.address)) {
      // Retransmitted later: 200 ms, doubling, at most 3.2 s.
      s.stalls++;
      s.nextAt = this.now + Math.min(3200, 200 * 2 ** Math.min(4, s.stalls - 1));
      this.kick(ep);
      return;
    }
    s.stalls = 0;
    if (s.resetArmed && s.bytes > 0) {
      s.resetArmed = false;
      // Part of it may get through before the reset.
      if (this.netRng.chance(0.5)) this.deliverBytes(ep, this.netRng.int(1, s.bytes));
      if (this.tracing) this.trace(() => `reset (armed) ${ep.host.label} -> ${to.host.label}`);
      this.reset(conn);
      return;
    }
    if (s.bytes > 0) {
      const n = this.scenario.net;
      const most = Math.min(s.bytes, MAX_READ_BYTES);
      const take = this.netRng.chance(n.splitP) ? this.netRng.int(1, most) : most;
      this.deliverBytes(ep, take);
      s.nextAt = this.now + this.netRng.real(0, 0.5);
      if (s.bytes > 0 || s.fin) this.kick(ep);
      return;
    }
    if (s.fin) {
      s.fin = false;
      this.tellClosed(to);
      if (!to.coreOpen && !ep.coreOpen) this.retire(conn);
    }
  }

  private deliverBytes(ep: Endpoint, take: number): void {
    const s = ep.out;
    const parts: Uint8Array[] = [];
    let left = take;
    while (left > 0) {
      const chunk = s.chunks[0]!;
      const avail = chunk.length - s.head;
      const n = Math.min(avail, left);
      parts.push(chunk.subarray(s.head, s.head + n));
      left -= n;
      if (n === avail) {
        s.chunks.shift();
        s.head = 0;
      } else s.head += n;
    }
    s.bytes -= take;
    ep.host.unsent -= take;
    const to = ep.peer;
    if (!to.coreOpen || !to.host.alive) return; // nobody reads: dropped (the kernel would answer RST)
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    const conn = ep.conn;
    // Watch the handshake: the welcome reaching the client, the confirm reaching the server.
    if (ep.role === 'client') {
      if (conn.confirmedAt === undefined && conn.c2s.length < 4096) {
        conn.c2s += Buffer.from(bytes.subarray(0, 4096)).toString('latin1');
        if (conn.c2s.includes('\n{"t":"confirm"')) {
          conn.confirmedAt = this.now;
          this.invariants.authenticated(to.host, ep.host, true);
        }
      }
    } else if (conn.welcomedAt === undefined && conn.s2c.length < 4096) {
      conn.s2c += Buffer.from(bytes.subarray(0, 4096)).toString('latin1');
      if (conn.s2c.startsWith('{"t":"welcome"') && conn.s2c.includes('\n')) {
        conn.welcomedAt = this.now;
        this.invariants.authenticated(to.host, ep.host, false);
      }
    }
    this.deliver(to.host, { type: 'data', conn: to.id, bytes });
  }

  /** The core of `ep`'s host learns that the connection is gone (if it still has it). */
  private tellClosed(ep: Endpoint): void {
    if (!ep.coreOpen || !ep.host.alive) return;
    ep.coreOpen = false;
    ep.host.conns.delete(ep.id);
    ep.host.gone.add(ep.id);
    this.deliver(ep.host, { type: 'closed', conn: ep.id });
  }

  /** A graceful close by `ep`'s side: FIN after the bytes in flight. */
  private finish(ep: Endpoint): void {
    ep.out.fin = true;
    if (ep.conn.state === 'open') this.kick(ep);
    else if (ep.conn.state === 'syn') {
      // Closed before the connection opened: the SYN's answer finds nobody.
    }
  }

  private dropStreams(conn: Conn): void {
    for (const ep of conn.server ? [conn.client, conn.server] : [conn.client]) {
      ep.host.unsent -= ep.out.bytes;
      ep.out.chunks = [];
      ep.out.head = 0;
      ep.out.bytes = 0;
      ep.out.fin = false;
    }
  }

  /** A reset: bytes in flight both ways are lost, both sides are told `closed` shortly. */
  reset(conn: Conn): void {
    if (conn.state === 'dead') return;
    this.dropStreams(conn);
    const wasOpen = conn.state === 'open';
    conn.state = 'dead';
    this.retire(conn);
    if (!wasOpen) return;
    for (const ep of [conn.client, conn.server]) {
      if (!ep.coreOpen) continue;
      this.queue.after(this.latency(), () => this.tellClosed(ep));
    }
  }

  private retire(conn: Conn): void {
    if (conn.state !== 'syn') this.dropStreams(conn);
    if (conn.slot < 0) return;
    const last = this.openConns.pop()!;
    if (last !== conn) {
      this.openConns[conn.slot] = last;
      last.slot = conn.slot;
    }
    conn.slot = -1;
    if (conn.state === 'open') conn.state = 'dead';
  }

  private onClose(host: Host, out: Extract<Output, { type: 'close' }>): void {
    const ep = host.conns.get(out.conn);
    if (ep === undefined) {
      if (!host.gone.delete(out.conn))
        this.invariants.contract(host, `close of conn ${out.conn}, which it does not have`);
      return;
    }
    ep.coreOpen = false;
    host.conns.delete(out.conn);
    const conn = ep.conn;
    if (conn.state === 'syn') {
      conn.state = 'dead';
      return;
    }
    if (out.destroy) {
      // RST: our unsent bytes are dropped, the peer learns after a trip.
      host.unsent -= ep.out.bytes;
      ep.out.chunks = [];
      ep.out.head = 0;
      ep.out.bytes = 0;
      const peer = ep.peer;
      this.dropStreams(conn);
      conn.state = 'dead';
      this.retire(conn);
      this.queue.after(this.latency(), () => this.tellClosed(peer));
      return;
    }
    this.finish(ep);
  }

  // ---------------------------------------------------------------- DNS

  private nodeCacheOf(host: Host): DnsCache | undefined {
    if (this.nodeCaches.length === 0) return undefined;
    const per = this.scenario.dns.nodeCache!.podsPerNode;
    return this.nodeCaches[Math.floor(host.index / per) % this.nodeCaches.length];
  }

  /** What the DNS path of `host` answers for `name` at this moment. */
  resolve(host: Host, name: string): DnsResult {
    const shuffle = (l: string[]): string[] => this.dnsRng.shuffle(l);
    const source = (): DnsResult => this.authority.answer(name, shuffle);
    const replica = (): DnsResult => {
      if (this.replicaCaches.length === 0) return source();
      return this.dnsRng.pick(this.replicaCaches).lookup(this.now, name, source);
    };
    const node = this.nodeCacheOf(host);
    return node ? node.lookup(this.now, name, replica) : replica();
  }

  private onQuery(host: Host, out: Extract<Output, { type: 'query' }>): void {
    if (host.queries.has(out.id)) {
      this.invariants.contract(host, `query id ${out.id} reused while in flight`);
      return;
    }
    host.queries.set(out.id, out.name);
    host.count.queries++;
    const d = this.scenario.dns;
    const r = this.dnsRng;
    const faulty = this.now < this.scenario.faults.endMs;
    if (faulty && r.chance(d.lossP)) {
      this.queue.after(d.resolverTimeoutMs, () =>
        this.answer(host, out.id, { status: 'error', detail: 'timeout' }, false),
      );
      return;
    }
    const slow = faulty && r.chance(d.slowP) ? d.slowMs : 0;
    this.queue.after(r.real(d.delayMs[0], d.delayMs[1]) + slow, () => {
      if (!host.alive) return;
      const result: DnsResult =
        faulty && r.chance(d.servfailP)
          ? { status: 'error', detail: 'SERVFAIL' }
          : this.resolve(host, out.name);
      const back = r.real(d.delayMs[0], d.delayMs[1]) + slow;
      this.queue.after(back, () => this.answer(host, out.id, result, false));
      if (r.chance(d.dupP))
        this.queue.after(back + r.real(0, 50), () => this.answer(host, out.id, result, true));
    });
  }

  private answer(host: Host, id: number, result: DnsResult, duplicate: boolean): void {
    if (!host.alive) return;
    if (duplicate) {
      // A second answer to a query already answered (never to a newer query that reuses the id).
      if (host.queries.has(id)) return;
    } else if (!host.queries.delete(id)) return;
    this.deliver(host, { type: 'dns', id, result });
  }

  // ---------------------------------------------------------------- driving the cores

  /** Hands `input` to `host`'s core, then carries out what it asked for. */
  deliver(host: Host, input: Input): void {
    const machine = host.machine;
    if (!host.alive || machine === undefined) return;
    host.count.inputs++;
    this.events++;
    this.mix(host.serial);
    this.mix(Math.floor(this.now * 1000));
    if (this.tracing) this.trace(() => `${host.label} <- ${describeInput(input)}`);
    this.guard(host, () => machine.handle(this.now, input));
    this.afterStep(host);
  }

  private guard(host: Host, run: () => void): void {
    try {
      run();
    } catch (error) {
      this.invariants.contract(
        host,
        `threw ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      );
    }
  }

  /** Takes the core's outputs, schedules its timer, checks the invariants that concern it. */
  private afterStep(host: Host): void {
    const machine = host.machine;
    if (machine === undefined) return;
    let outputs: Output[] = [];
    this.guard(host, () => {
      outputs = machine.poll();
    });
    for (const out of outputs) {
      if (this.tracing) this.trace(() => `${host.label} -> ${describeOutput(out)}`);
      switch (out.type) {
        case 'query':
          this.onQuery(host, out);
          break;
        case 'connect':
          this.onConnect(host, out);
          break;
        case 'send':
          this.onSend(host, out);
          break;
        case 'close':
          this.onClose(host, out);
          break;
        case 'released':
          if (host.kind === 'member') this.onReleased(host, out.roster);
          break;
        case 'progress':
          break;
      }
      if (!host.alive) return;
    }
    this.scheduleTimer(host);
    if (host.kind === 'member') this.invariants.bounds(host);
    if (this.invariants.failed && this.options.stopOnViolation !== false) this.stopped = true;
  }

  private onReleased(host: Host, roster: string[]): void {
    if (host.releasedAt !== undefined) {
      this.invariants.contract(host, 'released twice');
      return;
    }
    host.releasedAt = this.now;
    host.roster = [...roster];
    if (this.firstReleaseAt === undefined) this.firstReleaseAt = this.now;
    this.invariants.released(host);
    if (!this.postReleaseScheduled) {
      this.postReleaseScheduled = true;
      this.schedulePostRelease();
    }
  }

  private scheduleTimer(host: Host): void {
    const machine = host.machine!;
    let at: number | undefined;
    this.guard(host, () => {
      at = machine.nextTimer();
    });
    if (at === undefined) return;
    if (!Number.isFinite(at)) {
      this.invariants.contract(host, `nextTimer() is ${at}`);
      return;
    }
    if (at <= this.now) {
      if (this.spinCheck(host)) return;
    }
    if (host.timerAt !== undefined && host.timerAt <= at && host.timerAt >= this.now) return;
    host.timerAt = at;
    const gen = ++host.timerGen;
    this.queue.at(at, () => {
      if (host.timerGen !== gen || !host.alive) return;
      host.timerAt = undefined;
      let due: number | undefined;
      this.guard(host, () => {
        due = host.machine!.nextTimer();
      });
      if (due !== undefined && due <= this.now) this.deliver(host, { type: 'tick' });
      else this.scheduleTimer(host);
    });
  }

  /** A timer due at once, again and again at the same moment, is a busy loop. */
  private spinCheck(host: Host): boolean {
    if (host.spinAt !== this.now) {
      host.spinAt = this.now;
      host.spins = 0;
    }
    if (++host.spins > 1000) {
      this.invariants.bound(host, 'timer', `nextTimer() stays due at ${this.now}: a busy loop`);
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- the run

  disturbed(): void {
    if (this.now > this.lastDisturbance) this.lastDisturbance = this.now;
  }

  /** When the liveness clock started: faults over and the last pod up. */
  get settledAt(): number {
    return Math.max(this.scenario.faults.endMs, this.lastDisturbance);
  }

  /** Schedules `run` at absolute simulated time `ms` (for test scripts). */
  at(ms: number, run: () => void): void {
    this.pending++;
    this.queue.at(ms, () => {
      this.pending--;
      this.disturbed();
      run();
    });
  }

  /** The current process of pod `index` (if any). */
  current(index: number): Host | undefined {
    return this.pods[index]?.host;
  }

  /** Every index has a live, released process. */
  allReleased(): boolean {
    for (let i = 0; i < this.scenario.size; i++) {
      const h = this.current(i);
      if (h === undefined || !h.alive || h.releasedAt === undefined) return false;
    }
    return true;
  }

  private initialPods(): void {
    const s = this.scenario;
    const r = this.rng;
    const n = s.size;
    const order = Array.from({ length: n }, (_, i) => i);
    const readyAt = new Array<number>(n).fill(0);
    switch (s.start.pattern) {
      case 'burst':
        for (let i = 0, t = 0; i < n; i++, t += r.real(10, 20)) readyAt[order[i]!] = t;
        break;
      case 'burst-shuffled':
        r.shuffle(order);
        for (let i = 0, t = 0; i < n; i++, t += r.real(10, 20)) readyAt[order[i]!] = t;
        break;
      case 'spread':
        for (let i = 0; i < n; i++) readyAt[i] = r.real(0, s.start.spreadMs);
        break;
      case 'coordinator-last':
        for (let i = 0; i < n; i++) readyAt[i] = r.real(0, s.start.spreadMs / 4);
        readyAt[s.coordinator] = s.start.spreadMs;
        break;
      case 'trickle':
        // Bursts of a few pods, seconds apart.
        r.shuffle(order);
        for (let i = 0, t = 0; i < n; i++) {
          if (r.chance(0.1)) t += r.real(200, s.start.spreadMs / 4);
          readyAt[order[i]!] = t + r.real(0, 20);
        }
        break;
    }
    if (s.start.lateMs > 0)
      for (let i = 0; i < s.start.lateCount; i++) readyAt[r.int(0, n - 1)]! += s.start.lateMs;
    for (let i = 0; i < n; i++) {
      // Created a little before its Ready time; its container starts then, its core boots after bootMs.
      const created = Math.max(0, readyAt[i]! - r.real(0, 300));
      this.pending++;
      this.queue.at(created, () => {
        this.pending--;
        this.createPod(i, { startIn: 0, readyIn: readyAt[i]! - created });
      });
    }
  }

  private faultProcesses(): void {
    const f = this.scenario.faults;
    const r = this.faultRng;
    const end = f.endMs;
    const poisson = (rate: number, act: () => void): void => {
      if (rate <= 0) return;
      const next = (): void => {
        const t = this.now + r.exp(1000 / rate);
        if (t >= end) return;
        this.queue.at(t, () => {
          act();
          next();
        });
      };
      next();
    };
    const size = this.scenario.size;
    const randomIndex = (): number => r.int(0, size - 1);
    poisson(f.crashPerSec, () => {
      const index = r.chance(f.coordinatorP) ? this.scenario.coordinator : randomIndex();
      // A coordinator that restarts after the release is a scenario of its own (postReleaseCoordinator).
      if (
        index === this.scenario.coordinator &&
        this.firstReleaseAt !== undefined &&
        !f.postReleaseCoordinator
      )
        return;
      this.crash(index, {
        silent: r.chance(f.silentP),
        then: r.chance(f.replaceP) ? 'replace' : 'restart',
        reuse: r.chance(f.reuseByMemberP),
      });
    });
    poisson(f.partitionPerSec, () => {
      const a = this.current(randomIndex());
      const b = this.current(r.chance(0.3) ? this.scenario.coordinator : randomIndex());
      if (!a || !b || a === b) return;
      const [lo, hi] = f.partitionMs;
      const ms = Math.min(r.real(lo, hi), end - this.now);
      this.partition(a.address, b.address, r.pick(f.partitionKinds), ms);
    });
    poisson(f.resetPerSec, () => {
      if (this.openConns.length === 0) return;
      const conn = this.openConns[r.int(0, this.openConns.length - 1)]!;
      if (this.tracing) this.trace(() => `reset ${conn.client.host.label} -> ${conn.server.host.label}`);
      this.reset(conn);
    });
    const live = (): Host[] => {
      const hosts: Host[] = [];
      for (const p of this.pods) if (p?.host?.alive) hosts.push(p.host);
      return hosts;
    };
    poisson(f.spuriousTicksPerSec * size, () => {
      const hosts = live();
      if (hosts.length > 0) this.deliver(r.pick(hosts), { type: 'tick' });
    });
    for (const kind of f.strangers) {
      this.queue.at(r.real(0, end / 2), () => {
        const s = this.addStranger(kind);
        this.queue.at(end, () => this.removeStranger(s));
      });
    }
    if (this.scenario.dns.strayPerSec > 0) {
      poisson(this.scenario.dns.strayPerSec * size, () => {
        const hosts = live();
        if (hosts.length === 0) return;
        const h = r.pick(hosts);
        const id = r.int(0, 0xffff);
        if (h.queries.has(id)) return;
        this.deliver(h, {
          type: 'dns',
          id,
          result: { status: 'ok', addresses: [this.allocate(false)], ttlMs: 1000 },
        });
      });
    }
  }

  private schedulePostRelease(): void {
    const f = this.scenario.faults;
    const r = this.faultRng;
    const restarts: number[] = [];
    const c = this.scenario.coordinator;
    const size = this.scenario.size;
    // Members only: the coordinator restarts after the release only when the scenario says so.
    if (size > 1)
      for (let i = 0; i < f.postReleaseRestarts; i++) restarts.push((c + r.int(1, size - 1)) % size);
    if (f.postReleaseCoordinator) restarts.push(this.scenario.coordinator);
    for (const index of restarts) {
      this.at(this.now + r.real(0, 3000), () =>
        this.crash(index, { then: r.chance(f.replaceP) ? 'replace' : 'restart' }),
      );
    }
  }

  /** Runs the simulation to its end: everyone released and settled, a violation, or the liveness deadline. */
  run(): RunResult {
    this.initialPods();
    this.faultProcesses();
    const stop = this.options.stopOnViolation !== false;
    const watchdog = (): void => {
      if (this.stopped) return;
      const deadline = this.settledAt + this.livenessBoundMs;
      if (this.now > deadline) {
        this.invariants.liveness(deadline);
        this.stopped = true;
        return;
      }
      if (this.pending === 0 && this.now >= this.scenario.faults.endMs && this.allReleased()) {
        const tailEnd = this.now + this.tailMs;
        this.queue.at(tailEnd, () => {
          if (this.pending === 0 && this.allReleased()) this.stopped = true;
        });
      }
      this.queue.after(250, watchdog);
    };
    this.queue.at(0, watchdog);
    while (!this.stopped && this.queue.step()) {
      if (stop && this.invariants.failed) break;
    }
    this.invariants.final();
    return this.result();
  }

  result(): RunResult {
    const stats: RunStats = {
      endedAt: this.now,
      firstReleaseAt: this.firstReleaseAt,
      lastReleaseAt: undefined,
      settledAt: this.settledAt,
      livenessBoundMs: this.livenessBoundMs,
      events: this.events,
      inputs: 0,
      queries: 0,
      connects: 0,
      bytes: 0,
      peakConns: { member: 0, coordinator: 0 },
      peakQueries: 0,
      peakUnsent: 0,
      peakTimers: 0,
      peakBacklog: 0,
      hosts: this.hostSerial,
      fingerprint: this.fingerprint,
    };
    for (const list of this.instances)
      for (const h of list) {
        stats.inputs += h.count.inputs;
        stats.queries += h.count.queries;
        stats.connects += h.count.connects;
        stats.bytes += h.count.bytes;
        const role = h.index === this.scenario.coordinator ? 'coordinator' : 'member';
        stats.peakConns[role] = Math.max(stats.peakConns[role], h.peak.conns);
        stats.peakQueries = Math.max(stats.peakQueries, h.peak.queries);
        stats.peakUnsent = Math.max(stats.peakUnsent, h.peak.unsent);
        stats.peakTimers = Math.max(stats.peakTimers, h.peak.timers);
        stats.peakBacklog = Math.max(stats.peakBacklog, h.peak.backlog);
        if (h.releasedAt !== undefined)
          stats.lastReleaseAt = Math.max(stats.lastReleaseAt ?? 0, h.releasedAt);
      }
    const s = this.scenario;
    return {
      scenario: s,
      violations: this.invariants.violations,
      stats,
      replay: replayCommand(s),
      trace: this.traceLog ?? [],
    };
  }
}

/**
 * How long after the faults stop and the last pod is up every pod must be released: a few seconds of
 * protocol (connect, handshake, a poll, the release round trip), plus what the cluster can make a correct
 * core wait: a cached NXDOMAIN (negative TTL) or a stale positive answer, a retry backoff grown to its cap
 * during the faults, a connect timeout, a lost DNS query's timeout, TCP retransmission after a partition,
 * and the keepalive that reveals a vanished node.
 */
export function livenessBound(s: Scenario): number {
  const d = s.dns;
  const caches = [d.nodeCache, d.replicas?.cache].filter((c) => c !== undefined);
  const neg = Math.max(d.negTtlMs, ...caches.map((c) => Math.max(c.negativeCapMs, c.minTtlMs)));
  const pos = Math.max(
    d.ttlMs,
    ...caches.map((c) => Math.max(Math.min(c.positiveCapMs, Math.max(d.ttlMs, c.minTtlMs)), c.minTtlMs)),
  );
  return (
    5000 +
    neg +
    pos +
    2 * s.core.retryMaxMs +
    2 * s.core.connectTimeoutMs +
    d.resolverTimeoutMs +
    3 * s.core.pollMs +
    3200 +
    s.net.silentCloseMs +
    // Per pod: the coordinator's work grows with the job (a name check and a release each).
    s.size * 2
  );
}

function describeInput(input: Input): string {
  switch (input.type) {
    case 'dns':
      return `dns #${input.id} ${JSON.stringify(input.result)}`;
    case 'data':
      return `data c${input.conn} ${JSON.stringify(Buffer.from(input.bytes).toString('utf8').slice(0, 200))}`;
    case 'accepted':
      return `accepted c${input.conn} from ${input.remote}`;
    case 'connect-failed':
      return `connect-failed c${input.conn} ${input.detail}`;
    case 'connected':
    case 'closed':
      return `${input.type} c${input.conn}`;
    case 'tick':
      return 'tick';
  }
}

function describeOutput(out: Output): string {
  switch (out.type) {
    case 'query':
      return `query #${out.id} ${out.name}`;
    case 'connect':
      return `connect c${out.conn} ${out.address}${out.fromSelf ? ' (from self)' : ''}`;
    case 'send':
      return `send c${out.conn} ${JSON.stringify(out.data.slice(0, 200))}`;
    case 'close':
      return `close c${out.conn}${out.destroy ? ' (destroy)' : ''}`;
    case 'released':
      return `released ${out.roster.length > 8 ? `${out.roster.slice(0, 8).join(',')},...` : out.roster.join(',')}`;
    case 'progress':
      return `progress ${out.ready}/${out.total}`;
  }
}
