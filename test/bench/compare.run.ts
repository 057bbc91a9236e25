/**
 * `npm run bench`: kubepeers side by side with what users do today, in the cluster in a box, on the same
 * staggered Ready schedule, as root. Prints a markdown table and writes docs/benchmarks.md and
 * docs/benchmarks.svg.
 *
 *  1. the Kubernetes docs' loop: bash, `ping -c 1 <job>-<i>.<svc>` for each peer in turn, `sleep 1` after
 *     each failure (glibc resolver through the ndots:5 search list);
 *  2. `wait-on tcp:<job>-<i>.<svc>:<port>` for every peer (each pod also listens on that port);
 *  3. `kubepeers wait` in its default full-mesh check, and 4. with `--topology star`;
 *  5. the floor of the box: each pod's Node.js process told at once (the harness touches a file every pod
 *     watches) and then running the same command, with no check at all. Nothing can release faster on
 *     this machine: it is what 64 pods starting a command at once cost on its 2 cores.
 *
 * Each runs twice: pods asking the authoritative knotd directly, and through a caching resolver (unbound:
 * answers cached up to 30 s, NXDOMAIN for the SOA minimum of 5 s, as CoreDNS `cache 30` / NodeLocal
 * DNSCache do) to show how each copes with cached NXDOMAIN. Also measured: the CLI's cold start.
 *
 * Env: KPBENCH_SIZES (default "16,64,128"), KPBENCH_REPS (default 5), KPBENCH_SPREAD_MS (Ready times
 * spread over this long, default 3000), KPBENCH_METHODS (default "bash-ping,wait-on,kubepeers,kubepeers-star,floor"),
 * KPBENCH_DNS (default "direct,cached"),
 * KPBENCH_RUN_TIMEOUT_MS (default 60000), KPBENCH_RESUME=1 (keep the runs already in docs/benchmarks.jsonl),
 * KPBENCH_REPORT_ONLY=1 (with RESUME: no new runs, just the table and plot of what is there).
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { it } from 'vitest';
import { ClusterInABox, type Pod, type PodSpec } from '../e2e/cluster.js';

const ROOT = resolve(import.meta.dirname, '../..');
const SIZES = (process.env.KPBENCH_SIZES ?? '16,64,128').split(',').map(Number);
const REPS = Number(process.env.KPBENCH_REPS ?? 5);
const SPREAD_MS = Number(process.env.KPBENCH_SPREAD_MS ?? 3000);
const METHODS = (process.env.KPBENCH_METHODS ?? 'bash-ping,wait-on,kubepeers,kubepeers-star,floor').split(
  ',',
) as Method[];
/** A method that has not released every pod this long after the last Ready counts as not released. */
const RUN_TIMEOUT_MS = Number(process.env.KPBENCH_RUN_TIMEOUT_MS ?? 60_000);
const DNS_MODES = (process.env.KPBENCH_DNS ?? 'direct,cached').split(',') as DnsMode[];
type DnsMode = 'direct' | 'cached';
/** Raw results, one JSON line per run; with KPBENCH_RESUME=1 runs already in it are not repeated. */
const RAW = join(ROOT, 'docs/benchmarks.jsonl');
const WAIT_ON_PORT = 7070;

type Method = 'bash-ping' | 'wait-on' | 'kubepeers' | 'kubepeers-star' | 'floor';
const LABEL: Record<Method, string> = {
  'bash-ping': 'bash ping loop (k8s docs)',
  'wait-on': 'wait-on tcp:',
  kubepeers: 'kubepeers wait (mesh)',
  'kubepeers-star': 'kubepeers wait --topology star',
  floor: 'floor: pods told at once, no check',
};
/** The rows kubepeers is compared with, and the rows that are kubepeers. */
const BASELINES: Method[] = ['bash-ping', 'wait-on'];
const KUBEPEERS: Method[] = ['kubepeers', 'kubepeers-star'];
/** The file the floor's pods watch, in the box's directory. */
const TRIGGER = 'kpbench-go';

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
    },
  };
}

/** Deterministic shuffle and spread: the same Ready schedule for every method of one (size, rep). */
function schedule(size: number, rep: number): { index: number; at: number }[] {
  let seed = size * 7919 + rep * 104729;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const order = [...Array(size).keys()].sort(() => rand() - 0.5);
  return order.map((index, k) => ({ index, at: size > 1 ? (k * SPREAD_MS) / (size - 1) : 0 }));
}

interface RunResult {
  method: Method;
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
  dnsPerPod: Record<string, number>;
  tcpOpensPerPod: number;
  cpuMsPerPod: number[];
  rssKbPerPod: number[];
  failed: number;
  /** How long publishing the Ready schedule took (SPREAD_MS when the harness keeps up). */
  scheduleMs?: number;
}

const until = async (cond: () => boolean, ms: number): Promise<boolean> => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

async function runOnce(method: Method, dnsMode: DnsMode, size: number, rep: number): Promise<RunResult> {
  const box = await ClusterInABox.create({ cache: dnsMode === 'cached' });
  try {
    const pods = await box.startPods([...Array(size).keys()], spec(method, box, size));
    // As in Kubernetes, pods turn Ready only once their containers run: wait until every pod has started
    // (kubepeers prints its first progress line once its responder listens), then follow the schedule.
    const startedOf = (p: Pod): boolean =>
      p.stdout.includes('KPBENCH_STARTED') || p.stderr.includes('peers ready');
    await until(() => pods.every(startedOf), 120_000);
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    let lastReady = 0;
    for (const { index, at } of schedule(size, rep)) {
      const wait = t0 + at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await box.markReady(index);
      lastReady = Date.now();
    }
    if (method === 'floor') await writeFile(join(box.dir, TRIGGER), '');
    // The schedule takes SPREAD_MS unless the method's own DNS load slows the harness's updates down.
    const scheduleMs = lastReady - t0;
    const releasedAt = (p: Pod): number | undefined => {
      const m = /KPBENCH_RELEASED (\d+)/.exec(p.stdout);
      return m ? Number(m[1]) : undefined;
    };
    const timedOut = !(await until(
      () => pods.every((p) => releasedAt(p) !== undefined && /KPBENCH_TIME/.test(p.stderr)),
      RUN_TIMEOUT_MS,
    ));
    const dns = await box.dnsCounters();
    const asked = await box.cacheCounters();
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
    const delays = pods
      .map(releasedAt)
      .filter((x): x is number => x !== undefined)
      .map((x) => x - lastReady);
    const perPod = (byType: Record<string, number>): Record<string, number> =>
      Object.fromEntries(Object.entries(byType).map(([t, n]) => [t, n / size]));
    return {
      method,
      dns: dnsMode,
      ...(asked ? { askedPerPod: perPod(asked.byType), cacheHitsPerPod: asked.cacheHits / size } : {}),
      size,
      rep,
      delays,
      dnsPerPod: perPod(dns.byType),
      tcpOpensPerPod: tcpOpens / size,
      cpuMsPerPod: cpu,
      rssKbPerPod: rss,
      failed: timedOut ? pods.filter((p) => releasedAt(p) === undefined).length : 0,
      scheduleMs,
    };
  } finally {
    await box.destroy();
  }
}

const q = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : NaN;
};
const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const fmt = (x: number, d = 0): string =>
  Number.isFinite(x) ? x.toFixed(d) : x === Number.POSITIVE_INFINITY ? `>${RUN_TIMEOUT_MS}` : 'n/a';

interface Row {
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
  dns: Record<string, number>;
  dnsTotal: number;
  tcp: number;
  cpu: number;
  rssMb: number;
  failed: number;
}

function summarize(results: RunResult[]): Row[] {
  const rows: Row[] = [];
  for (const dnsMode of DNS_MODES) {
    for (const size of SIZES) {
      for (const method of METHODS) {
        const rs = results.filter(
          (r) => r.size === size && r.method === method && (r.dns ?? 'direct') === dnsMode,
        );
        if (rs.length === 0) continue;
        // A pod that was not released within the run timeout counts as an infinitely late release.
        const delays = rs.flatMap((r) => [
          // Released after the run timeout (the harness waited for other pods): not released in time.
          ...r.delays.map((d) => (d > RUN_TIMEOUT_MS ? Number.POSITIVE_INFINITY : d)),
          ...Array<number>(r.failed).fill(Number.POSITIVE_INFINITY),
        ]);
        const types = [...new Set(rs.flatMap((r) => Object.keys(r.dnsPerPod)))].sort();
        const dns = Object.fromEntries(types.map((t) => [t, mean(rs.map((r) => r.dnsPerPod[t] ?? 0))]));
        const sum = (x: Record<string, number> | undefined): number =>
          Object.values(x ?? {}).reduce((a, b) => a + b, 0);
        rows.push({
          method,
          dnsMode,
          size,
          asked: mean(rs.map((r) => sum(r.askedPerPod))),
          cacheHits: mean(rs.map((r) => r.cacheHitsPerPod ?? 0)),
          runs: rs.length,
          p50: q(delays, 0.5),
          p95: q(delays, 0.95),
          max: Math.max(...delays),
          dns,
          dnsTotal: Object.values(dns).reduce((a, b) => a + b, 0),
          tcp: mean(rs.map((r) => r.tcpOpensPerPod)),
          cpu: q(
            rs.flatMap((r) => r.cpuMsPerPod),
            0.5,
          ),
          rssMb: Math.max(...rs.flatMap((r) => r.rssKbPerPod)) / 1024,
          failed: rs.reduce((a, r) => a + r.failed, 0),
        });
      }
    }
  }
  return rows;
}

function markdown(rows: Row[]): string {
  const lines: string[] = [];
  for (const dnsMode of DNS_MODES) {
    const cached = dnsMode === 'cached';
    lines.push(
      '',
      cached
        ? '### Through a caching resolver (unbound in front of knotd: positive answers up to 30 s, NXDOMAIN 5 s)'
        : '### Pods ask the authoritative knotd directly',
      '',
      `| N | method | runs | release after last Ready p50 / p95 / max (ms) | ${cached ? 'DNS queries per pod asked of the cache | of which answered from cache | reaching knotd per pod (by type)' : 'DNS queries per pod (by type)'} | TCP connects per pod | CPU per pod p50 (ms) | peak RSS (MB) | kubepeers (mesh; star) against it: release p50, DNS queries |`,
      `|---|---|---|---|---|${cached ? '---|---|' : ''}---|---|---|---|`,
    );
    for (const r of rows.filter((x) => x.dnsMode === dnsMode)) {
      const load = (x: Row): number => (cached ? x.asked : x.dnsTotal);
      const kps = KUBEPEERS.flatMap((m) => {
        const kp = rows.find((x) => x.size === r.size && x.dnsMode === dnsMode && x.method === m);
        return kp ? [{ name: m === 'kubepeers' ? 'mesh' : 'star', kp }] : [];
      });
      let ratio = '';
      if (BASELINES.includes(r.method)) {
        ratio = kps
          .map(({ name, kp }) => {
            const speed = !Number.isFinite(r.p50)
              ? 'it never released most pods'
              : r.p50 >= kp.p50
                ? `${fmt(r.p50 / kp.p50, 1)}× faster`
                : `${fmt(kp.p50 / r.p50, 1)}× slower`;
            const fewer = load(r) / load(kp);
            const dns = fewer >= 1 ? `${fmt(fewer, 1)}× fewer queries` : `${fmt(1 / fewer, 1)}× more queries`;
            return `${name}: ${speed}, ${dns}`;
          })
          .join('; ');
      } else if (r.method === 'floor') {
        ratio = kps.map(({ name, kp }) => `${name}: +${fmt(kp.p50 - r.p50)} ms over the floor`).join('; ');
      }
      const byType = Object.entries(r.dns)
        .map(([t, n]) => `${t} ${fmt(n, 1)}`)
        .join(', ');
      lines.push(
        `| ${r.size} | ${LABEL[r.method]} | ${r.runs} | ${fmt(r.p50)} / ${fmt(r.p95)} / ${fmt(r.max)}${r.failed ? ` (${r.failed} pod-runs not released within ${RUN_TIMEOUT_MS / 1000} s)` : ''} | ${
          cached
            ? `${fmt(r.asked, 1)} | ${fmt(r.cacheHits, 1)} | ${fmt(r.dnsTotal, 1)} (${byType})`
            : `${fmt(r.dnsTotal, 1)} (${byType})`
        } | ${fmt(r.tcp, 1)} | ${fmt(r.cpu)} | ${fmt(r.rssMb, 1)} | ${ratio} |`,
      );
    }
  }
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

/** Hand-written reading of the figures, kept across regenerations (docs/benchmarks.notes.md). */
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
  'benchmark: bash ping loop vs wait-on vs kubepeers in the cluster in a box',
  async () => {
    const results: RunResult[] = [];
    if (process.env.KPBENCH_RESUME === '1') {
      const old = await readFile(RAW, 'utf8').catch(() => '');
      for (const line of old.split('\n').filter(Boolean)) results.push(JSON.parse(line) as RunResult);
    } else {
      await writeFile(RAW, '');
    }
    NOTES = await readFile(join(ROOT, 'docs/benchmarks.notes.md'), 'utf8').catch(() => '');
    const coldStart = await measureColdStart();
    for (const dnsMode of DNS_MODES) {
      for (const size of SIZES) {
        for (let rep = 0; rep < REPS; rep++) {
          for (const method of METHODS) {
            const same = (r: RunResult): boolean =>
              r.size === size && r.rep === rep && r.method === method && (r.dns ?? 'direct') === dnsMode;
            if (results.some(same)) continue;
            if (process.env.KPBENCH_REPORT_ONLY === '1') continue;
            const r = await runOnce(method, dnsMode, size, rep);
            results.push(r);
            await appendFile(RAW, `${JSON.stringify(r)}\n`);
            console.log(
              `${dnsMode} N=${size} rep ${rep + 1}/${REPS} ${method}: last release ${fmt(Math.max(...r.delays))} ms after last Ready, ${fmt(
                Object.values(r.askedPerPod ?? r.dnsPerPod).reduce((a, b) => a + b, 0),
                1,
              )} DNS queries/pod${r.failed ? `, ${r.failed} not released` : ''}`,
            );
          }
        }
      }
    }
    const rows = summarize(
      results.filter((r) => SIZES.includes(r.size) && METHODS.includes(r.method) && r.rep < REPS),
    );
    const table = markdown(rows);
    const cold =
      `| process | runs | start to first DNS query p50 / p95 / max (ms) |\n|---|---|---|\n` +
      coldStart
        .map(
          (c) =>
            `| ${c.label} | ${c.ms.length} | ${fmt(q(c.ms, 0.5))} / ${fmt(q(c.ms, 0.95))} / ${fmt(Math.max(...c.ms))} |`,
        )
        .join('\n');
    console.log(`\n${table}\n\n${cold}\n`);
    await mkdir(join(ROOT, 'docs'), { recursive: true });
    await writeFile(
      join(ROOT, 'docs/benchmarks.svg'),
      svg(
        rows.filter((r) => r.dnsMode === 'direct'),
        'pods ask the authoritative knotd directly',
      ),
    );
    if (DNS_MODES.includes('cached'))
      await writeFile(
        join(ROOT, 'docs/benchmarks-cached.svg'),
        svg(
          rows.filter((r) => r.dnsMode === 'cached').map((r) => ({ ...r, dnsTotal: r.asked })),
          'through a caching resolver (DNS panel: queries the pods asked of it)',
        ),
      );
    await writeFile(
      join(ROOT, 'docs/benchmarks.md'),
      `# Benchmarks\n\nMeasured by \`npm run bench\` (test/bench/compare.run.ts) on ${new Date().toISOString().slice(0, 10)}, ` +
        `Node ${process.version}, ${SIZES.join('/')} pods, up to ${REPS} repetitions (see the runs column), Ready times spread over ${SPREAD_MS} ms in a shuffled order, ` +
        `in the cluster in a box (network namespaces on one 2-core machine: all pods share its CPUs).\n\n` +
        `- release: time from the last pod's Ready (its records added to DNS) to each pod's release (pooled over repetitions);\n` +
        `- DNS queries: knotd's own counters, divided by N; TCP connects: each pod namespace's Tcp ActiveOpens;\n` +
        `- CPU and peak RSS: GNU time around the waiting tool (bash with its ping children; wait-on; kubepeers wait);\n` +
        `- with the caching resolver: the queries the pods asked of it (its counters), how many it answered from its cache, and the rest that reached knotd.\n` +
        `${table}\n\n![benchmark plot, direct](benchmarks.svg)\n\n` +
        (DNS_MODES.includes('cached') ? `![benchmark plot, cached](benchmarks-cached.svg)\n\n` : '') +
        `## Cold start\n\nFrom spawning the process to the first DNS query arriving at a UDP socket of the harness (Node ${process.version}, ` +
        `idle machine, measured when this page was generated). \`node -e\` sending one datagram is the floor any Node.js tool pays.\n\n${cold}\n` +
        (NOTES ? `\n${NOTES}` : ''),
    );
  },
  24 * 3600_000,
);
