/**
 * `npm run bench`: kubepeers side by side with what users do today, in the cluster in a box, as root, under
 * several readiness regimes. Prints markdown tables and writes docs/benchmarks.md (with one SVG plot per
 * regime and DNS mode) and the raw runs, one JSON line each, to docs/benchmarks.jsonl.
 *
 * Methods (KPBENCH_METHODS, default all; every regime runs each of them):
 *  - `bash-ping`: the Kubernetes docs' loop: bash, `ping -c 1 <job>-<i>.<svc>` for each peer in turn,
 *    `sleep 1` after each failure (glibc resolver through the ndots:5 search list);
 *  - `wait-on`: `wait-on tcp:<job>-<i>.<svc>:<port>` for every peer (each pod also listens on that port);
 *    only at 16 pods or fewer (above, its lookups melt the DNS server and it never releases);
 *  - `kubepeers`: `kubepeers wait` in the full mesh, and `kubepeers-star`: with `--topology star`;
 *  - `floor`: each pod's Node.js process told at once (the harness touches a file every pod watches,
 *    right after the last Ready) and then running the same command, with no check at all. Nothing can
 *    release faster on this machine: it is what N pods starting a command at once cost on its 2 cores.
 *
 * Readiness regimes (KPBENCH_REGIMES, default "burst-ordered,burst-shuffled,spread,cold"). "Ready" is the
 * pod's records added to knotd (its A record and its entry in the Service's A set), and a pod's release
 * delay is its release minus the moment the last Ready was answered by knotd. By default each Ready is one
 * transaction on knotd's control socket (a long-lived knotc); KPBENCH_READY=update publishes them by
 * dynamic update instead (knsupdate, as the e2e tests do), which knotd answers 1 s late about once in 200
 * (its zone events are scheduled in whole seconds): a hole in a burst. One publication is in flight at a
 * time; Readies that fall due meanwhile go out together as soon as it is answered (so the schedule falls
 * behind by one publication at most, and keeps its order). The answers' lag behind the schedule is recorded.
 *  - `burst-ordered`: every pod process running (each has printed that it started: KPBENCH_STARTED, or
 *    kubepeers' first progress line) and then idle for KPBENCH_IDLE_MS (default 3000) before any pod is
 *    Ready; then Ready in index order 0..N-1, each 10-20 ms after the previous (uniform, seeded RNG);
 *  - `burst-shuffled`: the same gaps, in a seeded shuffled order;
 *  - `spread`: the same idle time, then Ready spread evenly over KPBENCH_SPREAD_MS (default 3000) in a
 *    shuffled order (the schedule of the earlier sessions; their runs, which have no regime in the jsonl,
 *    count as `spread`, although they idled 500 ms only);
 *  - `cold`: the burst-ordered schedule started the moment the pods are launched, without waiting for them
 *    to print that they started: pods turn Ready while their processes are still starting, and each tool's
 *    own start-up counts.
 * The schedule depends only on (regime, N, repetition): every method of one repetition sees the same one
 * (the burst regimes share their gaps). The pods' namespaces are set up before any pod is launched, and all
 * pods are then spawned in one loop.
 *
 * DNS modes (KPBENCH_DNS, default "direct,cached"): pods ask the authoritative knotd directly, or through a
 * caching resolver (unbound: answers cached up to 30 s, NXDOMAIN for the SOA minimum of 5 s, as CoreDNS
 * `cache 30` / NodeLocal DNSCache do). DNS queries are counted at knotd (and, when cached, at the cache:
 * what the pods asked) from the launch of the pods to the moment the harness saw the last release, per pod.
 *
 * Printed per run: the run's release p50 and max (a slow mode shows); per (regime, DNS mode, N, method):
 * pooled p50 / p95 / max, every repetition's p50 / max, p50 minus the floor's p50 (ms) and p50 divided by
 * the ping loop's p50; per (regime, DNS mode, N) whether the issue's targets hold for mesh and star:
 * p50 <= floor p50 + 20 ms (cold: + 50 ms); max <= floor max + 50 ms; no repetition's p50 above
 * 2 x the median repetition p50 + 20 ms; p50 at least 5x faster than the ping loop. Also: how long the
 * harness's own Ready updates took (knsupdate, per Ready) and how far the schedule slipped; the CLI's cold
 * start.
 *
 * Env:
 *  - KPBENCH_SIZES (default "16,64,128");
 *  - KPBENCH_REPS: repetitions per size, "16:10,64:10,128:5" (the default; a size not listed gets 10 up to
 *    64 pods, 5 above), or one number for every size;
 *  - KPBENCH_REGIMES, KPBENCH_IDLE_MS, KPBENCH_SPREAD_MS, KPBENCH_READY ("control" or "update"): see above;
 *  - KPBENCH_METHODS (default "bash-ping,wait-on,kubepeers,kubepeers-star,floor"), KPBENCH_DNS;
 *  - KPBENCH_RUN_TIMEOUT_MS (default 60000): a pod not released this long after the last Ready counts as
 *    not released;
 *  - KPBENCH_RAW (default docs/benchmarks.jsonl) and KPBENCH_REPORT (default docs/benchmarks.md): where
 *    the raw runs and the page go (relative to the package root); the SVGs go beside the page
 *    (<page>-<regime>[-cached].svg) unless KPBENCH_SVG=0; <page>.notes.md, if present, is appended to it;
 *  - KPBENCH_RESUME=1: keep the runs already in the raw file (key: regime, DNS mode, N, repetition,
 *    method) and run only the missing ones; KPBENCH_REPORT_ONLY=1 (with RESUME): no new runs, just the
 *    tables and plots of what is there;
 *  - KPBENCH_TRACE=1 with KPBENCH_TRACE_DIR=<dir>: every kubepeers pod's core inputs and outputs (wall-clock
 *    ms) and output, per run, in <dir>; KPBENCH_PROF=<dir> (world-writable): a V8 CPU profile of every
 *    kubepeers process in <dir>.
 *
 * Examples: `npm run bench` (everything: hours); one regime, short:
 * `KPBENCH_SIZES=16 KPBENCH_REPS=2 KPBENCH_REGIMES=cold KPBENCH_DNS=direct npm run bench`.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { it } from 'vitest';
import { ClusterInABox, type Pod, type PodSpec } from '../e2e/cluster.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SIZES = (process.env.KPBENCH_SIZES ?? '16,64,128').split(',').map(Number);
const REPS_OF = parseReps(process.env.KPBENCH_REPS);
type Regime = 'burst-ordered' | 'burst-shuffled' | 'spread' | 'cold';
const ALL_REGIMES: Regime[] = ['burst-ordered', 'burst-shuffled', 'spread', 'cold'];
const REGIMES = (process.env.KPBENCH_REGIMES ?? ALL_REGIMES.join(',')).split(',') as Regime[];
for (const r of REGIMES)
  if (!ALL_REGIMES.includes(r)) throw new Error(`KPBENCH_REGIMES: unknown regime ${r}`);
const IDLE_MS = Number(process.env.KPBENCH_IDLE_MS ?? 3000);
const SPREAD_MS = Number(process.env.KPBENCH_SPREAD_MS ?? 3000);
/** Gap between two Readies of a burst: uniform in [GAP_MIN, GAP_MAX) ms. */
const GAP_MIN = 10;
const GAP_MAX = 20;
const ALL_METHODS: Method[] = ['bash-ping', 'wait-on', 'kubepeers', 'kubepeers-star', 'floor'];
const METHODS = (process.env.KPBENCH_METHODS ?? ALL_METHODS.join(',')).split(',') as Method[];
for (const m of METHODS)
  if (!ALL_METHODS.includes(m)) throw new Error(`KPBENCH_METHODS: unknown method ${m}`);
/** wait-on floods DNS above 16 pods and never releases; it runs at 16 pods or fewer. */
const methodsAt = (size: number): Method[] => METHODS.filter((m) => m !== 'wait-on' || size <= 16);
/** A method that has not released every pod this long after the last Ready counts as not released. */
const RUN_TIMEOUT_MS = Number(process.env.KPBENCH_RUN_TIMEOUT_MS ?? 60_000);
const DNS_MODES = (process.env.KPBENCH_DNS ?? 'direct,cached').split(',') as DnsMode[];
type DnsMode = 'direct' | 'cached';
/** Raw results, one JSON line per run; with KPBENCH_RESUME=1 runs already in it are not repeated. */
const RAW = resolve(ROOT, process.env.KPBENCH_RAW ?? 'docs/benchmarks.jsonl');
const REPORT = resolve(ROOT, process.env.KPBENCH_REPORT ?? 'docs/benchmarks.md');
const REPORT_BASE = REPORT.replace(/\.md$/, '');
/** How the harness publishes a Ready: a knotd control-socket transaction, or a dynamic update (knsupdate). */
const READY_VIA = (process.env.KPBENCH_READY ?? 'control') as 'control' | 'update';
if (READY_VIA !== 'control' && READY_VIA !== 'update') throw new Error(`KPBENCH_READY: control or update`);
const WAIT_ON_PORT = 7070;

type Method = 'bash-ping' | 'wait-on' | 'kubepeers' | 'kubepeers-star' | 'floor';
const LABEL: Record<Method, string> = {
  'bash-ping': 'bash ping loop (k8s docs)',
  'wait-on': 'wait-on tcp:',
  kubepeers: 'kubepeers wait (mesh)',
  'kubepeers-star': 'kubepeers wait --topology star',
  floor: 'floor: pods told at once, no check',
};
const REGIME_TEXT: Record<Regime, string> = {
  'burst-ordered': `every pod's process running (it printed that it started) and idle for ${IDLE_MS} ms, then Ready in index order 0..N-1, ${GAP_MIN}-${GAP_MAX} ms apart (seeded)`,
  'burst-shuffled': `every pod's process running and idle for ${IDLE_MS} ms, then Ready in a seeded shuffled order, ${GAP_MIN}-${GAP_MAX} ms apart (the burst-ordered gaps)`,
  spread: `every pod's process running and idle for ${IDLE_MS} ms, then Ready spread evenly over ${SPREAD_MS} ms in a seeded shuffled order`,
  cold: `Ready on the burst-ordered schedule from the moment the pods are launched, without waiting for them to start (each tool's start-up counts)`,
};
const KUBEPEERS: Method[] = ['kubepeers', 'kubepeers-star'];
/** The file the floor's pods watch, in the box's directory. */
const TRIGGER = 'kpbench-go';

/** "16:10,64:10,128:5" or "7": repetitions for a size. */
function parseReps(text: string | undefined): (size: number) => number {
  const fallback = (size: number): number => (size <= 64 ? 10 : 5);
  if (text === undefined || text === '') return fallback;
  if (/^\d+$/.test(text)) return () => Number(text);
  const bySize = new Map<number, number>();
  for (const part of text.split(',')) {
    const m = /^(\d+):(\d+)$/.exec(part.trim());
    if (!m) throw new Error(`KPBENCH_REPS: expected "N:reps,..." or a number, got ${text}`);
    bySize.set(Number(m[1]), Number(m[2]));
  }
  return (size) => bySize.get(size) ?? fallback(size);
}

/** Per-pod resources, printed by GNU time around the waiting tool itself. */
const TIME = ['/usr/bin/time', '-f', 'KPBENCH_TIME %e %U %S %M'];
const TIME_SH = '/usr/bin/time -f "KPBENCH_TIME %e %U %S %M"';

function spec(method: Method, box: ClusterInABox, size: number): PodSpec {
  const names = [...Array(size).keys()].map((i) => `${box.job}-${i}.${box.svc}`);
  const started = 'echo KPBENCH_STARTED';
  const released = 'echo KPBENCH_RELEASED $(date +%s%3N)';
  if (method === 'bash-ping') {
    // Written from the docs' description: each peer in turn, retry every second until it answers.
    const loop = `for h in ${names.join(' ')}; do until ping -c 1 -W 1 "$h" >/dev/null 2>&1; do sleep 1; done; done`;
    return {
      root: true,
      command: ['sh', '-c', `${started}; ${TIME_SH} bash -c '${loop}'; ${released}`],
    };
  }
  if (method === 'wait-on') {
    const listener = `require('net').createServer((s) => s.destroy()).listen(${WAIT_ON_PORT})`;
    const targets = names.map((h) => `tcp:${h}:${WAIT_ON_PORT}`).join(' ');
    const waitOn = join(ROOT, 'node_modules/.bin/wait-on');
    return {
      root: true,
      command: [
        'sh',
        '-c',
        // The listener stays up after release: a peer that leaves early would strand the others.
        `${process.execPath} -e "${listener}" & ${started}; ${TIME_SH} ${process.execPath} ${waitOn} -t 600000 ${targets}; ${released}; wait`,
      ],
    };
  }
  if (method === 'floor') {
    // Node.js, as kubepeers: start, say so, wait for the trigger file, run the command, exit with it.
    const script = [
      `const { watch, existsSync } = require('fs'); const { spawn } = require('child_process');`,
      `const dir = ${JSON.stringify(box.dir)}; let done = false;`,
      `const go = () => { if (done || !existsSync(dir + '/${TRIGGER}')) return; done = true; w.close();`,
      `  spawn('sh', ['-c', ${JSON.stringify(released)}], { stdio: 'inherit' }).on('exit', (c) => process.exit(c ?? 1)); };`,
      `const w = watch(dir, go); console.log('KPBENCH_STARTED'); go();`,
    ].join('\n');
    return { command: [...TIME, process.execPath, '-e', script] };
  }
  return {
    command: [
      ...TIME,
      process.execPath,
      // KPBENCH_PROF=<dir>: a V8 CPU profile of every kubepeers process, written to <dir> (world-writable).
      ...(process.env.KPBENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.KPBENCH_PROF}`] : []),
      'node_modules/kubepeers/dist/bin.js',
      'wait',
      '--format',
      'none',
      '--',
      'sh',
      '-c',
      released,
    ],
    env: {
      KUBEPEERS_SIZE: String(size),
      KUBEPEERS_TOPOLOGY: method === 'kubepeers-star' ? 'star' : 'mesh',
      // KPBENCH_TRACE=1: the core's inputs and outputs on each pod's stderr (written to KPBENCH_TRACE_DIR).
      ...(process.env.KPBENCH_TRACE ? { NODE_DEBUG: 'kubepeers' } : {}),
    },
  };
}

/** A small seeded PRNG (mulberry32): uniform in [0, 1). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The Ready schedule (offsets in ms from the start of publication), the same for every method of one
 * (regime, size, rep). The burst regimes share their gaps; `spread` is the earlier sessions' schedule.
 */
function schedule(regime: Regime, size: number, rep: number): { index: number; at: number }[] {
  if (regime === 'spread') {
    let seed = size * 7919 + rep * 104729;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const order = [...Array(size).keys()].sort(() => rand() - 0.5);
    return order.map((index, k) => ({ index, at: size > 1 ? (k * SPREAD_MS) / (size - 1) : 0 }));
  }
  const gap = rng(size * 7919 + rep * 104729 + 1);
  const ats: number[] = [];
  for (let k = 0, at = 0; k < size; k++) {
    if (k > 0) at += GAP_MIN + (GAP_MAX - GAP_MIN) * gap();
    ats.push(at);
  }
  const order = [...Array(size).keys()];
  if (regime === 'burst-shuffled') {
    const pick = rng(size * 7919 + rep * 104729 + 2);
    for (let k = size - 1; k > 0; k--) {
      const j = Math.floor(pick() * (k + 1));
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
  }
  return order.map((index, k) => ({ index, at: ats[k]! }));
}

interface RunResult {
  method: Method;
  /** Absent in runs of the earlier sessions: `spread` (with 500 ms of idle time). */
  regime?: Regime;
  /** Pods ask knotd directly, or a caching resolver in front of it. Absent in old runs: direct. */
  dns?: DnsMode;
  /** With the cache: what the pods asked the cache, per pod, by type; dnsPerPod is what reached knotd. */
  askedPerPod?: Record<string, number>;
  /** With the cache: answers the cache served from its cache, per pod. */
  cacheHitsPerPod?: number;
  size: number;
  rep: number;
  /** Release time minus the last Ready, per pod (ms). */
  delays: number[];
  /** Queries at knotd per pod: from the launch to the last release (old runs: to the last exit). */
  dnsPerPod: Record<string, number>;
  tcpOpensPerPod: number;
  cpuMsPerPod: number[];
  rssKbPerPod: number[];
  failed: number;
  /** How long publishing the Ready schedule took, first update sent to last update answered. */
  scheduleMs?: number;
  /** How long it should have taken: the schedule's last offset. */
  scheduledMs?: number;
  /** Idle time between all pods started and the first Ready (0 for cold). */
  idleMs?: number;
  /** How the harness published each Ready: knotd control-socket transaction, or dynamic update. */
  readyVia?: 'control' | 'update';
  /** The harness's own Ready publications, sent to answered, p50 and max over the run's Readies (ms). */
  readyUpdateMs?: { p50: number; max: number };
  /** The latest any Ready was answered after its scheduled time (ms): the schedule slipping. */
  readyLagMaxMs?: number;
  /** Publications (transactions or updates) that carried the N Readies: fewer than N when some went together. */
  readyPublications?: number;
  /** Spawning every pod, in one loop (ms). */
  launchMs?: number;
  /** Launch to every pod having printed that it started (ms); absent if some never did. */
  startupMs?: number;
  /** Pods that had printed that they started when the last Ready was answered (cold: how cold it was). */
  startedAtLastReady?: number;
  /** The machine's 1-minute load average when the run began (other work on the 2 cores). */
  load1?: number;
}

const regimeOf = (r: RunResult): Regime => r.regime ?? 'spread';
const dnsOf = (r: RunResult): DnsMode => r.dns ?? 'direct';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(10);
  return cond();
};

const diffPerPod = (
  after: Record<string, number>,
  before: Record<string, number>,
  size: number,
): Record<string, number> =>
  Object.fromEntries(
    Object.entries(after)
      .map(([t, n]) => [t, (n - (before[t] ?? 0)) / size] as const)
      .filter(([, n]) => n !== 0),
  );

async function runOnce(
  regime: Regime,
  method: Method,
  dnsMode: DnsMode,
  size: number,
  rep: number,
): Promise<RunResult> {
  const load1 = loadavg()[0]!;
  const box = await ClusterInABox.create({ cache: dnsMode === 'cached' });
  try {
    const prepared = await box.preparePods([...Array(size).keys()]);
    const podSpec = spec(method, box, size);
    const dns0 = await box.dnsCounters();
    const asked0 = await box.cacheCounters();
    const launchedAt = Date.now();
    const pods = box.launchPods(prepared, podSpec);
    const launchMs = Date.now() - launchedAt;
    // As in Kubernetes, pods turn Ready only once their containers run: wait until every pod has started
    // (kubepeers prints its first progress line once its responder listens), idle, then follow the
    // schedule. Cold: follow it from the launch.
    const startedOf = (p: Pod): boolean =>
      p.stdout.includes('KPBENCH_STARTED') || p.stderr.includes('peers ready');
    let startupMs: number | undefined;
    let watching = true;
    const allStarted = until(() => !watching || pods.every(startedOf), 120_000).then(() => {
      if (watching && pods.every(startedOf)) startupMs = Date.now() - launchedAt;
    });
    if (regime !== 'cold') {
      await allStarted;
      if (startupMs === undefined)
        console.warn(`${regime} N=${size} ${method}: not every pod printed that it started within 120 s`);
      await sleep(IDLE_MS);
    }
    const plan = schedule(regime, size, rep);
    const t0 = Date.now();
    let lastReady = t0;
    const updates: number[] = [];
    let lagMax = 0;
    // Each Ready is due at its scheduled time and published in schedule order, one publication in flight
    // at a time: Readies that fall due while one is in flight go out together, in one transaction, as soon
    // as it is answered (as the EndpointSlice controller batches its updates). The schedule cannot then
    // fall further behind than one publication; how far each answer fell behind is recorded.
    const publish = (indices: number[]): Promise<void> =>
      READY_VIA === 'control' ? box.markReadyByControl(...indices) : box.markReady(...indices);
    const due: { index: number; at: number }[] = [];
    let inflight: Promise<void> | undefined;
    let failure: unknown;
    let publications = 0;
    const flush = (): void => {
      if (inflight || due.length === 0 || failure !== undefined) return;
      const batch = due.splice(0);
      const sent = performance.now();
      inflight = publish(batch.map((b) => b.index)).then(
        () => {
          const now = Date.now();
          updates.push(performance.now() - sent);
          publications++;
          for (const b of batch) lagMax = Math.max(lagMax, now - (t0 + b.at));
          lastReady = Math.max(lastReady, now);
          inflight = undefined;
          flush();
        },
        (err: unknown) => {
          failure = err;
          inflight = undefined;
        },
      );
    };
    for (const entry of plan) {
      const wait = t0 + entry.at - Date.now();
      if (wait > 0) await sleep(wait);
      due.push(entry);
      flush();
    }
    while (inflight) await inflight;
    if (failure !== undefined) throw failure;
    const startedAtLastReady = pods.filter(startedOf).length;
    if (method === 'floor') await writeFile(join(box.dir, TRIGGER), '');
    const scheduleMs = lastReady - t0;
    const releasedAt = (p: Pod): number | undefined => {
      const m = /KPBENCH_RELEASED (\d+)/.exec(p.stdout);
      return m ? Number(m[1]) : undefined;
    };
    const allReleased = await until(() => pods.every((p) => releasedAt(p) !== undefined), RUN_TIMEOUT_MS);
    // DNS counted from the launch to the last release (as seen by the harness, within ~10 ms).
    const dns1 = await box.dnsCounters();
    const asked1 = await box.cacheCounters();
    await until(() => pods.every((p) => /KPBENCH_TIME/.test(p.stderr)), allReleased ? 10_000 : 0);
    watching = false; // a pod released before it printed that it started (cold) leaves startupMs unset
    await allStarted;
    const snmp = await box.snmp();
    let tcpOpens = 0;
    for (const pod of pods) tcpOpens += snmp.get(pod.netns)?.Tcp?.ActiveOpens ?? 0;
    const cpu: number[] = [];
    const rss: number[] = [];
    for (const pod of pods) {
      const m = /KPBENCH_TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(pod.stderr);
      if (m) {
        cpu.push((Number(m[2]) + Number(m[3])) * 1000);
        rss.push(Number(m[4]));
      }
    }
    if (process.env.KPBENCH_TRACE_DIR) {
      const dir = join(process.env.KPBENCH_TRACE_DIR, `${regime}-${method}-${size}-${rep}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'last-ready'), `${lastReady}\n`);
      for (const p of pods) await writeFile(join(dir, `${p.index}.log`), p.stderr + p.stdout);
    }
    const delays = pods
      .map(releasedAt)
      .filter((x): x is number => x !== undefined)
      .map((x) => x - lastReady);
    return {
      method,
      regime,
      dns: dnsMode,
      ...(asked0 && asked1
        ? {
            askedPerPod: diffPerPod(asked1.byType, asked0.byType, size),
            cacheHitsPerPod: (asked1.cacheHits - asked0.cacheHits) / size,
          }
        : {}),
      size,
      rep,
      delays,
      dnsPerPod: diffPerPod(dns1.byType, dns0.byType, size),
      tcpOpensPerPod: tcpOpens / size,
      cpuMsPerPod: cpu,
      rssKbPerPod: rss,
      failed: pods.filter((p) => releasedAt(p) === undefined).length,
      scheduleMs,
      scheduledMs: Math.round(plan[plan.length - 1]?.at ?? 0),
      idleMs: regime === 'cold' ? 0 : IDLE_MS,
      readyVia: READY_VIA,
      readyUpdateMs: { p50: round1(q(updates, 0.5)), max: round1(Math.max(...updates)) },
      readyLagMaxMs: round1(lagMax),
      readyPublications: publications,
      launchMs,
      ...(startupMs !== undefined ? { startupMs } : {}),
      startedAtLastReady,
      load1: round1(load1),
    };
  } finally {
    await box.destroy();
  }
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : NaN;
};
/** The median, averaging the two middle values of an even count. */
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const fmt = (x: number, d = 0): string =>
  Number.isFinite(x) ? x.toFixed(d) : x === Number.POSITIVE_INFINITY ? `>${RUN_TIMEOUT_MS}` : 'n/a';

/** A run's release delays, a pod not released in time counting as an infinitely late release. */
const delaysOf = (r: RunResult): number[] => [
  ...r.delays.map((d) => (d > RUN_TIMEOUT_MS ? Number.POSITIVE_INFINITY : d)),
  ...Array<number>(r.failed).fill(Number.POSITIVE_INFINITY),
];

interface Row {
  regime: Regime;
  method: Method;
  dnsMode: DnsMode;
  size: number;
  /** With the cache: queries the pods sent it per pod, and how many it answered from cache. */
  asked: number;
  cacheHits: number;
  runs: number;
  p50: number;
  p95: number;
  max: number;
  /** Each repetition's p50 and max, in repetition order. */
  reps: { rep: number; p50: number; max: number }[];
  dns: Record<string, number>;
  dnsTotal: number;
  /** Runs whose knotd counters were read (the DNS figures are their mean). */
  dnsRuns: number;
  tcp: number;
  cpu: number;
  rssMb: number;
  failed: number;
  /** Harness: knsupdate per Ready p50 (median over runs) and max; schedule slip; start-up; load. */
  update50: number;
  updateMax: number;
  lagMax: number;
  publications: number;
  scheduleMs: number;
  scheduledMs: number;
  startup50: number;
  startedMin: number;
  load: number;
}

function summarize(results: RunResult[]): Row[] {
  const rows: Row[] = [];
  for (const regime of REGIMES) {
    for (const dnsMode of DNS_MODES) {
      for (const size of SIZES) {
        for (const method of methodsAt(size)) {
          const rs = results
            .filter(
              (r) => r.size === size && r.method === method && dnsOf(r) === dnsMode && regimeOf(r) === regime,
            )
            .sort((a, b) => a.rep - b.rep);
          if (rs.length === 0) continue;
          const delays = rs.flatMap(delaysOf);
          const types = [...new Set(rs.flatMap((r) => Object.keys(r.dnsPerPod)))].sort();
          // A run whose knotd counters could not be read (knotc under a heavy load) has none at all: it
          // is left out of the mean rather than counted as zero queries (methods that ask have some).
          const counted = types.length > 0 ? rs.filter((r) => Object.keys(r.dnsPerPod).length > 0) : rs;
          const dns = Object.fromEntries(
            types.map((t) => [t, mean(counted.map((r) => r.dnsPerPod[t] ?? 0))]),
          );
          const sum = (x: Record<string, number> | undefined): number =>
            Object.values(x ?? {}).reduce((a, b) => a + b, 0);
          const has = <T>(xs: (T | undefined)[]): T[] => xs.filter((x): x is T => x !== undefined);
          rows.push({
            regime,
            method,
            dnsMode,
            size,
            asked: mean(rs.map((r) => sum(r.askedPerPod))),
            cacheHits: mean(rs.map((r) => r.cacheHitsPerPod ?? 0)),
            runs: rs.length,
            p50: q(delays, 0.5),
            p95: q(delays, 0.95),
            max: Math.max(...delays),
            reps: rs.map((r) => ({ rep: r.rep, p50: q(delaysOf(r), 0.5), max: Math.max(...delaysOf(r)) })),
            dns,
            dnsTotal: Object.values(dns).reduce((a, b) => a + b, 0),
            dnsRuns: counted.length,
            tcp: mean(rs.map((r) => r.tcpOpensPerPod)),
            cpu: q(
              rs.flatMap((r) => r.cpuMsPerPod),
              0.5,
            ),
            rssMb: Math.max(...rs.flatMap((r) => r.rssKbPerPod)) / 1024,
            failed: rs.reduce((a, r) => a + r.failed, 0),
            update50: median(has(rs.map((r) => r.readyUpdateMs?.p50))),
            updateMax: Math.max(...has(rs.map((r) => r.readyUpdateMs?.max))),
            lagMax: Math.max(...has(rs.map((r) => r.readyLagMaxMs))),
            publications: median(has(rs.map((r) => r.readyPublications))),
            scheduleMs: median(has(rs.map((r) => r.scheduleMs))),
            scheduledMs: median(has(rs.map((r) => r.scheduledMs))),
            startup50: median(has(rs.map((r) => r.startupMs))),
            startedMin: Math.min(...has(rs.map((r) => r.startedAtLastReady))),
            load: mean(has(rs.map((r) => r.load1))),
          });
        }
      }
    }
  }
  return rows;
}

const find = (rows: Row[], r: Row, method: Method): Row | undefined =>
  rows.find(
    (x) => x.regime === r.regime && x.dnsMode === r.dnsMode && x.size === r.size && x.method === method,
  );

function markdown(rows: Row[], regime: Regime): string {
  const lines: string[] = [];
  for (const dnsMode of DNS_MODES) {
    const mine = rows.filter((x) => x.dnsMode === dnsMode && x.regime === regime);
    if (mine.length === 0) continue;
    const cached = dnsMode === 'cached';
    lines.push(
      '',
      cached
        ? `### ${regime}, through a caching resolver (unbound in front of knotd: positive answers up to 30 s, NXDOMAIN 5 s)`
        : `### ${regime}, pods ask the authoritative knotd directly`,
      '',
      `| N | method | runs | release after last Ready p50 / p95 / max (ms) | each repetition's p50 / max (ms) | p50 − floor p50 (ms) | p50 / ping-loop p50 | ${cached ? 'DNS queries per pod asked of the cache | of which answered from cache | reaching knotd per pod (by type)' : 'DNS queries per pod (by type)'} | TCP connects per pod | CPU per pod p50 (ms) | peak RSS (MB) |`,
      `|---|---|---|---|---|---|---|---|${cached ? '---|---|' : ''}---|---|---|`,
    );
    for (const r of mine) {
      const floor = find(rows, r, 'floor');
      const ping = find(rows, r, 'bash-ping');
      const byType = Object.entries(r.dns)
        .map(([t, n]) => `${t} ${fmt(n, 1)}`)
        .join(', ');
      lines.push(
        `| ${r.size} | ${LABEL[r.method]} | ${r.runs} | ${fmt(r.p50)} / ${fmt(r.p95)} / ${fmt(r.max)}${r.failed ? ` (${r.failed} pod-runs not released within ${RUN_TIMEOUT_MS / 1000} s)` : ''} | ${r.reps
          .map((x) => `${fmt(x.p50)}/${fmt(x.max)}`)
          .join(' · ')} | ${floor && r.method !== 'floor' ? signed(r.p50 - floor.p50) : ''} | ${
          ping && r.method !== 'bash-ping' ? fmt(r.p50 / ping.p50, 2) : ''
        } | ${
          cached
            ? `${fmt(r.asked, 1)} | ${fmt(r.cacheHits, 1)} | ${fmt(r.dnsTotal, 1)} (${byType})`
            : `${fmt(r.dnsTotal, 1)} (${byType})${r.dnsRuns < r.runs ? ` [${r.dnsRuns} of ${r.runs} runs counted]` : ''}`
        } | ${fmt(r.tcp, 1)} | ${fmt(r.cpu)} | ${fmt(r.rssMb, 1)} |`,
      );
    }
  }
  return lines.join('\n');
}

const signed = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${fmt(x)}` : fmt(x));

/** The issue's targets, per (regime, DNS mode, N), for the mesh and the star. */
function targets(rows: Row[]): string {
  const lines = [
    `| regime | DNS | N | kubepeers | p50 ≤ floor p50 + 20 ms (cold: + 50) | max ≤ floor max + 50 ms | no repetition p50 > 2 × median repetition p50 + 20 ms | p50 ≥ 5× faster than the ping loop | all |`,
    `|---|---|---|---|---|---|---|---|---|`,
  ];
  for (const r of rows.filter((x) => KUBEPEERS.includes(x.method))) {
    const floor = find(rows, r, 'floor');
    const ping = find(rows, r, 'bash-ping');
    const slack = r.regime === 'cold' ? 50 : 20;
    const verdicts: (boolean | undefined)[] = [];
    const cell = (ok: boolean | undefined, text: string): string => {
      verdicts.push(ok);
      return ok === undefined ? `n/a (${text})` : `${ok ? 'yes' : '**no**'} (${text})`;
    };
    const repP50 = r.reps.map((x) => x.p50);
    const limit = 2 * median(repP50) + 20;
    const worst = Math.max(...repP50);
    const cells = [
      floor
        ? cell(r.p50 <= floor.p50 + slack, `${fmt(r.p50)} vs ${fmt(floor.p50)} + ${slack}`)
        : cell(undefined, 'no floor run'),
      floor
        ? cell(r.max <= floor.max + 50, `${fmt(r.max)} vs ${fmt(floor.max)} + 50`)
        : cell(undefined, 'no floor run'),
      r.reps.length >= 2
        ? cell(worst <= limit, `worst ${fmt(worst)} vs ${fmt(limit)}`)
        : cell(undefined, 'one repetition'),
      ping
        ? cell(r.p50 * 5 <= ping.p50, `${fmt(ping.p50 / r.p50, 1)}×`)
        : cell(undefined, 'no ping-loop run'),
    ];
    const all = verdicts.includes(false) ? '**no**' : verdicts.includes(undefined) ? 'n/a' : 'yes';
    lines.push(
      `| ${r.regime} | ${r.dnsMode} | ${r.size} | ${r.method === 'kubepeers' ? 'mesh' : 'star'} | ${cells.join(' | ')} | ${all} |`,
    );
  }
  return lines.join('\n');
}

/** What the harness itself did: its Ready updates, the schedule's slip, the pods' start-up, the load. */
function harness(rows: Row[]): string {
  const lines = [
    `| regime | DNS | N | method | Ready publication, sent to answered, p50 / max (ms) | latest answer behind its scheduled time (ms) | publications carrying the N Readies (median) | schedule took / planned (ms, median) | launch to all started (ms, median) | pods started at the last Ready (fewest) | load average (1 min, mean) |`,
    `|---|---|---|---|---|---|---|---|---|---|---|`,
  ];
  for (const r of rows)
    lines.push(
      `| ${r.regime} | ${r.dnsMode} | ${r.size} | ${r.method} | ${fmt(r.update50, 1)} / ${fmt(r.updateMax, 1)} | ${fmt(r.lagMax)} | ${fmt(r.publications)} | ${fmt(r.scheduleMs)} / ${fmt(r.scheduledMs)} | ${fmt(r.startup50)} | ${Number.isFinite(r.startedMin) ? `${r.startedMin} of ${r.size}` : 'n/a'} | ${fmt(r.load, 2)} |`,
    );
  return lines.join('\n');
}

/** Two panels of grouped bars (log scale): release delay p50 and DNS queries per pod, by N and method. */
function svg(rows: Row[], title: string): string {
  const colors: Record<Method, string> = {
    'bash-ping': '#d62728',
    'wait-on': '#ff7f0e',
    kubepeers: '#2ca02c',
    'kubepeers-star': '#1f77b4',
    floor: '#7f7f7f',
  };
  const W = 900;
  const H = 400;
  const panel = (x0: number, title: string, value: (r: Row) => number, unit: string): string => {
    const pw = 400;
    const ph = 260;
    const top = 60;
    const vals = rows.map(value).filter((v) => v > 0 && Number.isFinite(v));
    const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...vals))));
    const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...vals))));
    const y = (v: number): number =>
      top + ph - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
    let out = `<text x="${x0 + pw / 2}" y="30" text-anchor="middle" font-size="16" font-weight="bold">${title}</text>`;
    for (let d = lo; d <= hi; d *= 10) {
      out += `<line x1="${x0}" x2="${x0 + pw}" y1="${y(d)}" y2="${y(d)}" stroke="#ddd"/><text x="${x0 - 6}" y="${y(d) + 4}" text-anchor="end" font-size="11">${d}${unit}</text>`;
    }
    const groupW = pw / SIZES.length;
    SIZES.forEach((size, g) => {
      const barW = (groupW - 20) / METHODS.length;
      METHODS.forEach((m, k) => {
        const r = rows.find((x) => x.size === size && x.method === m);
        if (!r) return;
        const raw = value(r);
        const v = Math.min(raw, hi); // a run that never released is drawn full height, labelled ">"
        const bx = x0 + g * groupW + 10 + k * barW;
        out += `<rect x="${bx}" y="${y(v)}" width="${barW - 2}" height="${top + ph - y(v)}" fill="${colors[m]}"><title>${LABEL[m]} N=${size}: ${fmt(raw, 1)}${unit}</title></rect>`;
        out += `<text x="${bx + (barW - 2) / 2}" y="${y(v) - 3}" text-anchor="middle" font-size="10">${fmt(raw, raw < 10 ? 1 : 0)}</text>`;
      });
      out += `<text x="${x0 + g * groupW + groupW / 2}" y="${top + ph + 16}" text-anchor="middle" font-size="12">N = ${size}</text>`;
    });
    return (
      out +
      `<line x1="${x0}" x2="${x0}" y1="${top}" y2="${top + ph}" stroke="#333"/><line x1="${x0}" x2="${x0 + pw}" y1="${top + ph}" y2="${top + ph}" stroke="#333"/>`
    );
  };
  const legend = METHODS.map(
    (m, k) =>
      `<rect x="${40 + (k % 3) * 290}" y="${H - 42 + Math.floor(k / 3) * 20}" width="14" height="14" fill="${colors[m]}"/><text x="${60 + (k % 3) * 290}" y="${H - 30 + Math.floor(k / 3) * 20}" font-size="13">${LABEL[m]}</text>`,
  ).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/><text x="${W / 2}" y="${H - 56}" text-anchor="middle" font-size="12" fill="#555">${title}</text>${panel(60, 'Release after the last pod is Ready (p50, log)', (r) => r.p50, ' ms')}${panel(500, 'DNS queries per pod (log)', (r) => r.dnsTotal, '')}${legend}</svg>\n`;
}

/** Hand-written reading of the figures, kept across regenerations (<page>.notes.md). */
let NOTES = '';

/** Process start to the first DNS query: kubepeers' CLI, and bare Node sending one datagram. */
async function measureColdStart(runs = 15): Promise<{ label: string; ms: number[] }[]> {
  const out: { label: string; ms: number[] }[] = [];
  const variants: [string, (port: number) => string[]][] = [
    [
      'kubepeers wait (CLI)',
      (port) => [
        'dist/bin.js',
        'wait',
        '--size=2',
        '--index=1',
        '--job-name=cold',
        '--subdomain=svc',
        '--namespace=ns',
        `--nameservers=127.0.0.1:${port}`,
        '--listen-address=127.0.0.1',
        `--port=${port}`,
        '--timeout=5s',
        '--format=none',
      ],
    ],
    [
      'node -e (one UDP datagram)',
      (port) => [
        '-e',
        `require('dgram').createSocket('udp4').send(Buffer.alloc(12), ${port}, '127.0.0.1', () => process.exit(0))`,
      ],
    ],
  ];
  for (const [label, argv] of variants) {
    const ms: number[] = [];
    for (let k = 0; k < runs; k++) {
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      const port = sock.address().port;
      const first = new Promise<number>((r) => sock.once('message', () => r(performance.now())));
      const t0 = performance.now();
      const child = spawn(process.execPath, argv(port), { cwd: ROOT, stdio: 'ignore' });
      // Listened for at once: `node -e` may exit by itself before the datagram is even read.
      const exited = new Promise((r) => child.once('exit', r));
      const at = await Promise.race([first, new Promise<number>((r) => setTimeout(() => r(NaN), 10_000))]);
      child.kill('SIGKILL');
      await exited;
      sock.close();
      if (Number.isFinite(at)) ms.push(at - t0);
    }
    out.push({ label, ms });
  }
  return out;
}

it(
  'benchmark: bash ping loop vs wait-on vs kubepeers in the cluster in a box, per readiness regime',
  async () => {
    const results: RunResult[] = [];
    await mkdir(dirname(RAW), { recursive: true });
    if (process.env.KPBENCH_RESUME === '1') {
      const old = await readFile(RAW, 'utf8').catch(() => '');
      for (const line of old.split('\n').filter(Boolean)) results.push(JSON.parse(line) as RunResult);
    } else {
      await writeFile(RAW, '');
    }
    NOTES = await readFile(`${REPORT_BASE}.notes.md`, 'utf8').catch(() => '');
    const coldLoad = loadavg()[0]!;
    const coldStart = await measureColdStart();
    // Regimes interleaved within a repetition: the machine's other load falls on all of them alike.
    for (const dnsMode of DNS_MODES) {
      for (const size of SIZES) {
        const reps = REPS_OF(size);
        for (let rep = 0; rep < reps; rep++) {
          for (const regime of REGIMES) {
            for (const method of methodsAt(size)) {
              const same = (r: RunResult): boolean =>
                r.size === size &&
                r.rep === rep &&
                r.method === method &&
                dnsOf(r) === dnsMode &&
                regimeOf(r) === regime;
              if (results.some(same)) continue;
              if (process.env.KPBENCH_REPORT_ONLY === '1') continue;
              const r = await runOnce(regime, method, dnsMode, size, rep);
              results.push(r);
              await appendFile(RAW, `${JSON.stringify(r)}\n`);
              const d = delaysOf(r);
              console.log(
                `${regime} ${dnsMode} N=${size} rep ${rep + 1}/${reps} ${method}: p50 ${fmt(q(d, 0.5))} max ${fmt(Math.max(...d))} ms after last Ready, ${fmt(
                  Object.values(r.askedPerPod ?? r.dnsPerPod).reduce((a, b) => a + b, 0),
                  1,
                )} DNS queries/pod${r.failed ? `, ${r.failed} not released` : ''}; ${r.readyPublications} publications, sent-to-answered p50/max ${fmt(r.readyUpdateMs!.p50, 1)}/${fmt(
                  r.readyUpdateMs!.max,
                  1,
                )} ms, schedule ${r.scheduleMs}/${r.scheduledMs} ms, started ${r.startupMs ?? 'n/a'} ms after launch (${r.startedAtLastReady}/${size} at last Ready), load ${r.load1}`,
              );
            }
          }
        }
      }
    }
    const rows = summarize(results.filter((r) => r.rep < REPS_OF(r.size)));
    const tables = REGIMES.map((regime) => ({ regime, table: markdown(rows, regime) })).filter(
      (t) => t.table,
    );
    const goals = targets(rows);
    const own = harness(rows);
    const cold =
      `| process | runs | start to first DNS query p50 / p95 / max (ms) |\n|---|---|---|\n` +
      coldStart
        .map(
          (c) =>
            `| ${c.label} | ${c.ms.length} | ${fmt(q(c.ms, 0.5))} / ${fmt(q(c.ms, 0.95))} / ${fmt(Math.max(...c.ms))} |`,
        )
        .join('\n');
    console.log(
      `\n${tables.map((t) => t.table).join('\n')}\n\n## Targets\n\n${goals}\n\n## Harness\n\n${own}\n\n${cold}\n`,
    );
    await mkdir(dirname(REPORT), { recursive: true });
    const plots: string[] = [];
    if (process.env.KPBENCH_SVG !== '0') {
      for (const { regime } of tables) {
        for (const dnsMode of DNS_MODES) {
          const mine = rows.filter((r) => r.regime === regime && r.dnsMode === dnsMode);
          if (mine.length === 0) continue;
          const file = `${REPORT_BASE}-${regime}${dnsMode === 'cached' ? '-cached' : ''}.svg`;
          await writeFile(
            file,
            svg(
              dnsMode === 'cached' ? mine.map((r) => ({ ...r, dnsTotal: r.asked })) : mine,
              `${regime}: ${dnsMode === 'cached' ? 'through a caching resolver (DNS panel: queries the pods asked of it)' : 'pods ask the authoritative knotd directly'}`,
            ),
          );
          plots.push(`![${regime}, ${dnsMode}](${file.slice(dirname(REPORT).length + 1)})`);
        }
      }
    }
    const repsText = SIZES.map((n) => `${REPS_OF(n)} at ${n}`).join(', ');
    await writeFile(
      REPORT,
      `# Benchmarks\n\nMeasured by \`npm run bench\` (test/bench/compare.run.ts) on ${new Date().toISOString().slice(0, 10)}, ` +
        `Node ${process.version}, ${SIZES.join('/')} pods, up to ${repsText} repetitions (see the runs column), ` +
        `in the cluster in a box (network namespaces on one 2-core machine: all pods share its CPUs).\n\n` +
        `Readiness regimes (a pod is Ready when knotd has answered the harness's ${READY_VIA === 'control' ? 'control-socket transaction adding its records' : 'dynamic update adding its records (knsupdate)'}; one publication in flight at a time, Readies falling due meanwhile go out together as soon as it is answered):\n\n` +
        tables.map(({ regime }) => `- **${regime}**: ${REGIME_TEXT[regime]};\n`).join('') +
        `\nEach regime runs every method on the same schedule per (N, repetition); wait-on only at 16 pods or fewer.\n\n` +
        `- release: time from the last pod's Ready to each pod's release (pooled over repetitions; each repetition's p50 / max beside it);\n` +
        `- p50 − floor p50: what the method adds to the floor (pods told at once after the last Ready, no check); p50 / ping-loop p50: below 0.2 is 5× faster than the docs' loop;\n` +
        `- DNS queries: knotd's own counters from the pods' launch to the last release, divided by N; TCP connects: each pod namespace's Tcp ActiveOpens;\n` +
        `- CPU and peak RSS: GNU time around the waiting tool (bash with its ping children; wait-on; kubepeers wait);\n` +
        `- with the caching resolver: the queries the pods asked of it (its counters), how many it answered from its cache, and the rest that reached knotd.\n` +
        tables.map(({ regime, table }) => `\n## ${regime}\n${table}\n`).join('') +
        `\n## Targets\n\nPer regime, DNS mode and N, for the mesh and the star, against the floor and the ping loop of the same runs.\n\n${goals}\n\n` +
        `## Harness\n\nThe harness's own share: how long each Ready took from sent to answered, and how far the answers fell behind the schedule ` +
        `(the schedule stretches when they do). "Pods started at the last Ready" shows how cold the cold regime was.\n\n${own}\n\n` +
        (plots.length ? `${plots.join('\n\n')}\n\n` : '') +
        `## Cold start\n\nFrom spawning the process to the first DNS query arriving at a UDP socket of the harness (Node ${process.version}, ` +
        `measured when this page was generated, at a 1-minute load average of ${fmt(coldLoad, 1)} on the 2 cores). \`node -e\` sending one datagram is the floor any Node.js tool pays.\n\n${cold}\n` +
        (NOTES ? `\n${NOTES}` : ''),
    );
  },
  24 * 3600_000,
);
