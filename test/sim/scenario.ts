/**
 * What one simulated run looks like: the job, the cluster's DNS and network, when pods start and which
 * faults hit them. {@link makeScenario} draws every detail from a seed and a fault mix, so `(seed, size,
 * topology, mix, core faults)` names a run exactly; tests may override any part.
 */
import type { Topology } from '../../src/core/wire.js';
import type { CacheOptions } from './dns.js';
import { Rng } from './prng.js';

/** Fault mixes: which kinds of trouble a run gets during its fault window. */
export const MIXES = ['calm', 'dns', 'churn', 'net', 'strangers', 'linger', 'chaos'] as const;
export type Mix = (typeof MIXES)[number];

export interface DnsScenario {
  /** TTL of positive answers at the source (CoreDNS kubernetes plugin `ttl`). */
  ttlMs: number;
  /** Negative TTL (SOA minimum) at the source. */
  negTtlMs: number;
  emptyService: 'nxdomain' | 'nodata';
  /** NodeLocal DNSCache: one cache per node, `podsPerNode` pods share it. */
  nodeCache?: CacheOptions & { podsPerNode: number };
  /** CoreDNS replicas, each with its own cache; a query goes to one at random. */
  replicas?: { count: number; cache: CacheOptions };
  /** Time from a pod's change (Ready, deleted) to the DNS source serving it: [lo, hi] ms. */
  propagationMs: [number, number];
  /** One-way delay of a query and of its answer: [lo, hi] ms. */
  delayMs: [number, number];
  /** During faults: probability that a query is slow (`slowMs` more each way). */
  slowP: number;
  slowMs: number;
  /** During faults: probability that a query gets no answer (the runtime reports a timeout). */
  lossP: number;
  /** During faults: probability of a SERVFAIL. */
  servfailP: number;
  /** Probability that an answer is delivered twice (also after faults: duplicates are harmless). */
  dupP: number;
  /** During faults: rate of answers with an id nobody asked for, per pod per second. */
  strayPerSec: number;
  /** After a lost query, the runtime reports a timeout after this long. */
  resolverTimeoutMs: number;
}

export interface NetScenario {
  /** One-way delay of a segment: [lo, hi] ms. */
  latencyMs: [number, number];
  /** Probability that a delivery takes only part of the bytes waiting (segments split). */
  splitP: number;
  /** Probability that a send waits a little (so that later sends coalesce with it). */
  holdP: number;
  /** A peer whose host vanished without a FIN is reported closed after this long (runtime keepalive). */
  silentCloseMs: number;
  /** Delay before ECONNREFUSED from an address with no listener. */
  refusedMs: [number, number];
}

export type StartPattern = 'burst' | 'burst-shuffled' | 'spread' | 'coordinator-last' | 'trickle';

export interface StartScenario {
  pattern: StartPattern;
  /** For `spread` and `trickle`: Ready times spread over this long. */
  spreadMs: number;
  /** Time from container start to the core's `start` (runtime boot): [lo, hi] ms. */
  bootMs: [number, number];
  /** Ready relative to container start, besides the pattern's offset: [lo, hi] ms. */
  readyJitterMs: [number, number];
  /** Some pods are created late by this much (0: none). */
  lateMs: number;
  lateCount: number;
}

export type StrangerKind =
  /** A pod of an earlier run of the same Job (another run id), listed in the Service and under a member's name. */
  | 'old-run'
  /** Same scope but another secret, listed under a member's name (a pod copying the public values). */
  | 'wrong-secret'
  /** A pod of another job on an address one of ours had (the address was reused). */
  | 'other-job'
  /** Not a kubepeers pod: floods our pods with connections, junk, oversize frames and bogus handshakes. */
  | 'flooder';

export interface FaultScenario {
  /** Faults happen in [0, endMs); after that only recovery. */
  endMs: number;
  /** Process crashes, job-wide, per second. */
  crashPerSec: number;
  /** Probability that a crashed pod is replaced (new pod, new address) rather than restarted in place. */
  replaceP: number;
  /** Probability that a crash is silent (node gone: no FIN, peers notice after `silentCloseMs`). */
  silentP: number;
  /** Probability that a crash hits the coordinator (when there is a crash). */
  coordinatorP: number;
  /** Container restart delay: [lo, hi] ms. */
  restartMs: [number, number];
  /** Probability that a replacement pod reuses an address another of our pods freed. */
  reuseByMemberP: number;
  /** Probability that a freed address goes to another job's pod (a stranger of kind `other-job` or `flooder`). */
  reuseByStrangerP: number;
  /** Partitions per second. */
  partitionPerSec: number;
  partitionMs: [number, number];
  /** Kind of partition: network policy (new connections one way), one-way drop, or both ways. */
  partitionKinds: ('policy' | 'one-way' | 'both')[];
  /** Connection resets per second, job-wide. */
  resetPerSec: number;
  /** Probability that a connection is reset while a frame with `"t":"release"` is on its way. */
  resetOnReleaseP: number;
  /** Probability that a connection is reset while any other frame is on its way (per send). */
  resetOnSendP: number;
  strangers: StrangerKind[];
  /** Spurious ticks (the runtime may call with `tick` any time), per pod per second. */
  spuriousTicksPerSec: number;
  /** Members restarted after the release (they must get the roster from the lingering coordinator). */
  postReleaseRestarts: number;
  /**
   * Whether the coordinator restarts after the release (among the post-release restarts, and as a crash
   * victim of `churn` once someone was released).
   */
  postReleaseCoordinator: boolean;
}

export interface CoreTimings {
  pollMs: number;
  retryMinMs: number;
  retryMaxMs: number;
  connectTimeoutMs: number;
}

export interface Scenario {
  seed: number;
  size: number;
  topology: Topology;
  mix: Mix;
  /** Fault-injection switches of the core (src/core/machine.ts `Fault`). */
  coreFaults: string[];
  coordinator: number;
  family: 4 | 6;
  /** The Service publishes pods' names and addresses from creation, not from Ready. */
  publishNotReady: boolean;
  core: CoreTimings;
  dns: DnsScenario;
  net: NetScenario;
  start: StartScenario;
  faults: FaultScenario;
}

export interface ScenarioKey {
  seed: number;
  size: number;
  topology: Topology;
  mix: Mix;
  coreFaults?: readonly string[];
}

const NO_FAULTS: FaultScenario = {
  endMs: 0,
  crashPerSec: 0,
  replaceP: 0,
  silentP: 0,
  coordinatorP: 0,
  restartMs: [100, 1000],
  reuseByMemberP: 0,
  reuseByStrangerP: 0,
  partitionPerSec: 0,
  partitionMs: [100, 1000],
  partitionKinds: ['both'],
  resetPerSec: 0,
  resetOnReleaseP: 0,
  resetOnSendP: 0,
  strangers: [],
  spuriousTicksPerSec: 0,
  postReleaseRestarts: 0,
  postReleaseCoordinator: false,
};

/** Draws a whole scenario from its key. The same key always gives the same scenario. */
export function makeScenario(key: ScenarioKey): Scenario {
  const { seed, size, topology, mix } = key;
  // A stream of its own, so that the scenario does not depend on what the simulation draws later.
  const r = new Rng(seed ^ 0x2545f491);
  const big = size > 256;
  const family: 4 | 6 = r.chance(0.15) ? 6 : 4;
  const coordinator = r.chance(0.85) ? 0 : r.int(0, size - 1);
  const core: CoreTimings = {
    // As the library would choose them: poll interval from the size, retries 250 ms to 10 s.
    pollMs: Math.max(50, Math.min(5000, size * r.pick([1, 2, 10]))),
    retryMinMs: r.pick([100, 250]),
    retryMaxMs: r.pick([2000, 5000, 10_000]),
    connectTimeoutMs: r.pick([1000, 3000]),
  };
  const cached = r.chance(mix === 'dns' || mix === 'chaos' ? 0.8 : 0.4);
  const cache = (): CacheOptions => ({
    positiveCapMs: r.pick([5000, 30_000]),
    negativeCapMs: r.pick([5000, 5000, 30_000]),
    minTtlMs: r.pick([0, 5000]),
  });
  const dns: DnsScenario = {
    ttlMs: r.pick([1000, 5000, 30_000]),
    negTtlMs: r.pick([1000, 5000, 5000]),
    emptyService: r.pick(['nxdomain', 'nodata'] as const),
    propagationMs: [r.int(0, 50), r.int(100, 800)],
    delayMs: [0.1, r.pick([0.5, 2, 10])],
    slowP: 0,
    slowMs: 0,
    lossP: 0,
    servfailP: 0,
    dupP: r.chance(0.3) ? 0.05 : 0,
    strayPerSec: 0,
    resolverTimeoutMs: r.pick([1000, 2000, 5000]),
  };
  if (cached) {
    if (r.chance(0.6)) dns.nodeCache = { ...cache(), podsPerNode: r.pick([1, 4, 8, 32]) };
    if (!dns.nodeCache || r.chance(0.5)) dns.replicas = { count: r.int(1, 3), cache: cache() };
  }
  const net: NetScenario = {
    latencyMs: [0.05, r.pick([0.5, 2, 20])],
    splitP: r.pick([0, 0.2, 0.6]),
    holdP: r.pick([0, 0.3]),
    silentCloseMs: r.pick([5000, 15_000]),
    refusedMs: [0.1, 2],
  };
  const pattern = r.pick<StartPattern>(['burst', 'burst-shuffled', 'spread', 'coordinator-last', 'trickle']);
  const start: StartScenario = {
    pattern,
    spreadMs: r.pick([1000, 3000, 10_000]),
    bootMs: [r.int(10, 100), r.int(150, 1500)],
    readyJitterMs: [0, r.pick([0, 50, 500])],
    lateMs: r.chance(0.2) ? r.int(2000, 20_000) : 0,
    lateCount: r.int(1, Math.max(1, Math.floor(size / 8))),
  };
  const faults: FaultScenario = {
    ...NO_FAULTS,
    strangers: [],
    partitionKinds: ['both'],
    restartMs: [r.int(50, 300), r.int(500, 3000)],
  };
  const window = r.int(1000, big ? 20_000 : 10_000);
  const perSec = (x: number): number => x * (big ? 4 : 1);
  const on = (m: Mix): boolean => mix === m || (mix === 'chaos' && r.chance(0.6));
  if (on('dns')) {
    faults.endMs = Math.max(faults.endMs, window);
    dns.slowP = r.pick([0, 0.05, 0.2]);
    dns.slowMs = r.int(50, 1000);
    dns.lossP = r.pick([0.01, 0.05, 0.2]);
    dns.servfailP = r.pick([0, 0.02, 0.1]);
    dns.dupP = r.pick([0.05, 0.2]);
    dns.strayPerSec = r.pick([0, 0.5]);
  }
  if (on('churn')) {
    faults.endMs = Math.max(faults.endMs, window);
    faults.crashPerSec = perSec(r.real(0.2, 2));
    faults.replaceP = r.pick([0, 0.3, 0.7]);
    faults.silentP = r.pick([0, 0.2]);
    faults.coordinatorP = r.pick([0.05, 0.2, 0.5]);
    faults.reuseByMemberP = r.pick([0, 0.3]);
    faults.reuseByStrangerP = r.pick([0, 0.3, 0.8]);
    faults.postReleaseCoordinator = r.chance(0.2);
  }
  if (on('net')) {
    faults.endMs = Math.max(faults.endMs, window);
    faults.partitionPerSec = perSec(r.real(0.2, 3));
    faults.partitionMs = [r.int(50, 500), r.int(1000, 5000)];
    faults.partitionKinds = r
      .shuffle<FaultScenario['partitionKinds'][number]>(['policy', 'one-way', 'both'])
      .slice(0, r.int(1, 3));
    faults.resetPerSec = perSec(r.real(0.2, 5));
    faults.resetOnReleaseP = r.pick([0, 0.3, 0.7]);
    faults.resetOnSendP = r.pick([0, 0.005, 0.02]);
    net.latencyMs = [0.05, r.pick([2, 20, 100])];
  }
  if (on('strangers')) {
    faults.endMs = Math.max(faults.endMs, window);
    const kinds: StrangerKind[] = ['old-run', 'wrong-secret', 'other-job', 'flooder'];
    const count = r.int(1, 4);
    for (let i = 0; i < count; i++) faults.strangers.push(r.pick(kinds));
    faults.reuseByStrangerP = Math.max(faults.reuseByStrangerP, 0.5);
  }
  if (on('linger')) {
    faults.postReleaseRestarts = r.int(1, Math.min(8, Math.max(1, size - 1)));
    faults.postReleaseCoordinator = r.chance(0.3);
    faults.replaceP = Math.max(faults.replaceP, r.pick([0, 0.5]));
  }
  if (mix !== 'calm' && faults.endMs > 0) faults.spuriousTicksPerSec = r.pick([0, 0.5]);
  return {
    seed,
    size,
    topology,
    mix,
    coreFaults: [...(key.coreFaults ?? [])],
    coordinator,
    family,
    publishNotReady: r.chance(0.3),
    core,
    dns,
    net,
    start,
    faults,
  };
}

/** The command line that replays a run. */
export function replayCommand(key: ScenarioKey, file = 'test/sim/sweep.test.ts'): string {
  const faults = key.coreFaults?.length ? ` KPSIM_CORE_FAULTS=${key.coreFaults.join(',')}` : '';
  return (
    `KPSIM_SEED=${key.seed} KPSIM_SIZE=${key.size} KPSIM_TOPOLOGY=${key.topology} KPSIM_MIX=${key.mix}` +
    `${faults} npx vitest run ${file}`
  );
}
