/**
 * Scale simulation (`npm run bench:scale`): one job of N pods on loopback addresses in a network namespace
 * of its own, many pods per process, against a real knotd that already holds every pod's records (every
 * pod is Ready and starts at the same moment: the thundering herd). Measured per topology and N: time from
 * "go" to the last release, total DNS queries (knotd's counters), TCP connections (the namespace's Tcp
 * ActiveOpens), peak open descriptors of the coordinator's process (run alone under `ulimit -n 1024`
 * when in star) and per pod in the other processes, CPU time. Writes docs/scale.jsonl, docs/scale.md and
 * docs/scale.svg.
 *
 * KPSCALE_RUNS: comma-separated topology:N, topology mesh, star or floor (the star's processes with no check) (default below); KPSCALE_REPS (default 1);
 * KPSCALE_RESUME=1 keeps runs already in docs/scale.jsonl; KPSCALE_REPORT_ONLY=1 only re-renders;
 * KPSCALE_PROF=<dir>: a V8 CPU profile of each worker process in <dir>.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { it } from 'vitest';
import { Knot, podRecords, run } from '../helpers/knot.js';
import { hardNofile } from '../helpers/limits.js';

const ROOT = resolve(import.meta.dirname, '../..');
const RAW = join(ROOT, 'docs/scale.jsonl');
const RUNS = (
  process.env.KPSCALE_RUNS ??
  'mesh:64,star:64,mesh:256,star:256,mesh:512,star:512,mesh:1000,star:1000,star:3000,star:10000'
)
  .split(',')
  .map((s) => {
    const [topology, n] = s.split(':');
    return { topology: topology as Topology, size: Number(n) };
  });
/**
 * `floor`: the star's processes with no check at all: at "go" each pod builds the roster it would be
 * released with (the same per-pod O(N) work as a release) and the worker checks it like the others.
 */
type Topology = 'mesh' | 'star' | 'floor';
const REPS = Number(process.env.KPSCALE_REPS ?? 1);
const PORT = 17293;

interface WorkerSummary {
  pods: number;
  released: number;
  firstRelease: number;
  lastRelease: number;
  errors: string[];
  failed: number;
  cpuMs: number;
  maxRssKb: number;
  curve?: [number, number][];
}

interface ScaleRun {
  topology: Topology;
  size: number;
  rep: number;
  processes: number;
  released: number;
  failed: number;
  errors: string[];
  /** From "go" to the last pod's release. */
  releaseMs: number;
  dnsTotal: number;
  dnsByType: Record<string, number>;
  dnsByRcode: Record<string, number>;
  connections: number;
  /** Peak open descriptors of index 0's process (alone in its process). */
  coordinatorFds: number;
  /** Peak descriptors per pod in the other processes, above what each had before "go". */
  fdsPerPod: number;
  cpuMsPerPod: number;
  coordinatorCpuMs: number;
  coordinatorRssMb: number;
  /** Index 0's progress: [ms since go, peers it counts as ready]. */
  curve?: [number, number][];
}

async function tcpActiveOpens(netns: string): Promise<number> {
  const snmp = await run('ip', ['netns', 'exec', netns, 'cat', '/proc/net/snmp']);
  const lines = snmp.split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf('ActiveOpens')]);
}

interface Proc {
  child: ChildProcess;
  pods: number;
  fdsAtReady: number;
  maxFds: number;
  summary: Promise<WorkerSummary>;
  ready: Promise<void>;
}

async function countFds(pid: number | undefined): Promise<number> {
  try {
    return (await readdir(`/proc/${pid}/fd`)).length;
  } catch {
    return 0;
  }
}

function startWorker(netns: string, specFile: string, nofile: number, pods: number): Proc {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns,
      'prlimit',
      `--nofile=${nofile}`,
      process.execPath,
      // KPSCALE_PROF=<dir>: a V8 CPU profile of every worker process, written to <dir>.
      ...(process.env.KPSCALE_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.KPSCALE_PROF}`] : []),
      join(ROOT, 'test/bench/sim-worker.mjs'),
      specFile,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout! });
  let onReady!: () => void;
  let onFail!: (err: Error) => void;
  const ready = new Promise<void>((r, f) => {
    onReady = r;
    onFail = f;
  });
  const summary = new Promise<WorkerSummary>((resolveSummary, reject) => {
    lines.on('line', (line) => {
      if (line === 'ready') onReady();
      else if (line.startsWith('{')) resolveSummary(JSON.parse(line) as WorkerSummary);
    });
    child.on('close', (code) => {
      const err = new Error(`worker exited ${code} without a summary`);
      onFail(err);
      reject(err);
    });
  });
  return { child, pods, fdsAtReady: 0, maxFds: 0, summary, ready };
}

async function runOnce(topology: Topology, size: number, rep: number): Promise<ScaleRun> {
  const netns = `kpsim${process.pid}`;
  await run('ip', ['netns', 'add', netns]);
  const dir = await mkdtemp(join(tmpdir(), 'kpscale-'));
  let knot: Knot | undefined;
  const procs: Proc[] = [];
  try {
    await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    knot = await Knot.start({ netns, address: '127.0.0.53', port: 53, udpWorkers: 2 });
    const spec = { job: 'sim', svc: 'workers', ns: 'ml', octet: 20 };
    const ip = (i: number): string => `127.${spec.octet}.${Math.floor(i / 250)}.${1 + (i % 250)}`;
    const lines: string[] = [];
    for (let i = 0; i < size; i++) {
      lines.push(...podRecords('add', `${spec.job}-${i}`, spec.svc, spec.ns, ip(i)));
    }
    for (let k = 0; k < lines.length; k += 1000) await knot.update(lines.slice(k, k + 1000));
    const dnsBefore = await knot.counters();
    const opensBefore = await tcpActiveOpens(netns);

    // Index 0 alone (the coordinator in a star, limited to the default 1024 descriptors), the others
    // split over at least two processes (the machine has two cores), more when a mesh would need more
    // descriptors than one process may have: about 2(N - 1) per pod.
    const limit = await hardNofile();
    const perPod = topology === 'mesh' ? 2 * size + 16 : 8;
    const rest = size - 1;
    const workers = Math.max(2, Math.ceil((rest * perPod) / (0.8 * (limit - 100))));
    const per = Math.ceil(rest / workers);
    const slices: [number, number][] = [[0, 1]];
    for (let from = 1; from < size; from += per) slices.push([from, Math.min(size, from + per)]);
    for (const [k, [from, to]] of slices.entries()) {
      const file = join(dir, `spec-${k}.json`);
      await writeFile(
        file,
        JSON.stringify({
          ...spec,
          size,
          from,
          to,
          topology,
          port: PORT,
          dns: '127.0.0.53:53',
          timeoutMs: 300_000,
        }),
      );
      const nofile = k === 0 && topology !== 'mesh' ? 1024 : limit;
      procs.push(startWorker(netns, file, nofile, to - from));
    }
    await Promise.all(procs.map((p) => p.ready));
    for (const p of procs) p.fdsAtReady = await countFds(p.child.pid);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const p of procs) p.maxFds = Math.max(p.maxFds, await countFds(p.child.pid));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const go = Date.now();
    for (const p of procs) p.child.stdin!.write('go\n');
    const summaries = await Promise.all(procs.map((p) => p.summary));
    for (const p of procs) p.child.stdin!.end();
    sampling = false;
    await sampler;
    const dnsAfter = await knot.counters();
    const opensAfter = await tcpActiveOpens(netns);
    const diff = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
      Object.fromEntries(
        Object.entries(a)
          .map(([k, v]) => [k, v - (b[k] ?? 0)] as const)
          .filter(([, v]) => v > 0),
      );
    const members = procs.slice(1);
    const memberPods = members.reduce((a, p) => a + p.pods, 0);
    return {
      topology,
      size,
      rep,
      processes: procs.length,
      released: summaries.reduce((a, s) => a + s.released, 0),
      failed: summaries.reduce((a, s) => a + s.failed, 0),
      errors: summaries.flatMap((s) => s.errors).slice(0, 3),
      releaseMs: Math.max(...summaries.map((s) => s.lastRelease)) - go,
      dnsTotal: dnsAfter.total - dnsBefore.total,
      dnsByType: diff(dnsAfter.byType, dnsBefore.byType),
      dnsByRcode: diff(dnsAfter.byRcode, dnsBefore.byRcode),
      connections: opensAfter - opensBefore,
      coordinatorFds: procs[0]!.maxFds,
      fdsPerPod: Math.max(...members.map((p) => (p.maxFds - p.fdsAtReady) / p.pods)),
      cpuMsPerPod: members.reduce((a, _p, k) => a + summaries[k + 1]!.cpuMs, 0) / memberPods,
      coordinatorCpuMs: summaries[0]!.cpuMs,
      coordinatorRssMb: summaries[0]!.maxRssKb / 1024,
      curve: summaries[0]!.curve ?? [],
    };
  } finally {
    for (const p of procs) p.child.kill('SIGKILL');
    await knot?.stop();
    await run('ip', ['netns', 'del', netns]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

const fmt = (x: number, d = 0): string =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
    : '-';

/** When index 0 counted every other pod as passed, from its progress curve. */
function allVerified(r: ScaleRun): string {
  const at = r.curve?.find(([, ready]) => ready === r.size - 1)?.[0];
  return at === undefined ? '-' : `${fmt(at)} ms`;
}

function markdown(runs: ScaleRun[]): string {
  const head =
    '| topology | N | processes | released | time to release | index 0 verified all | DNS queries (total) | per pod | TCP connections (total) | per pod | coordinator fds (peak) | fds per other pod (peak) | CPU per pod | coordinator CPU / RSS |\n' +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  return (
    head +
    runs
      .map(
        (r) =>
          `| ${r.topology} | ${fmt(r.size)} | ${r.processes} | ${fmt(r.released)}/${fmt(r.size)} | ${r.failed ? `not all (${r.failed} timed out)` : `${fmt(r.releaseMs)} ms`} | ${allVerified(r)} | ${fmt(r.dnsTotal)} | ${fmt(r.dnsTotal / r.size, 1)} | ${fmt(r.connections)} | ${fmt(r.connections / r.size, 1)} | ${fmt(r.coordinatorFds)} | ${fmt(r.fdsPerPod, 1)} | ${fmt(r.cpuMsPerPod, 1)} ms | ${fmt(r.coordinatorCpuMs)} ms / ${fmt(r.coordinatorRssMb)} MB |`,
      )
      .join('\n')
  );
}

/** Four log-log panels: growth with N of DNS queries, connections, time to release and fds per pod. */
function svg(runs: ScaleRun[]): string {
  const colors = { mesh: '#d62728', star: '#1f77b4' };
  const panels: [string, (r: ScaleRun) => number][] = [
    ['DNS queries, whole job', (r) => r.dnsTotal],
    ['TCP connections, whole job', (r) => r.connections],
    ['Time to release (ms)', (r) => r.releaseMs],
    ['Peak open fds: coordinator process', (r) => r.coordinatorFds],
  ];
  const pw = 360;
  const ph = 220;
  const sizes = runs.map((r) => r.size);
  const nlo = Math.pow(10, Math.floor(Math.log10(Math.min(...sizes))));
  const nhi = Math.pow(10, Math.ceil(Math.log10(Math.max(...sizes))));
  const x = (x0: number, n: number): number =>
    x0 + ((Math.log10(n) - Math.log10(nlo)) / (Math.log10(nhi) - Math.log10(nlo))) * pw;
  let out = '';
  panels.forEach(([title, value], k) => {
    const x0 = 80 + (k % 2) * (pw + 110);
    const top = 50 + Math.floor(k / 2) * (ph + 90);
    const vals = runs.map(value).filter((v) => v > 0);
    const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...vals))));
    const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...vals))));
    const y = (v: number): number =>
      top + ph - ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
    out += `<text x="${x0 + pw / 2}" y="${top - 12}" text-anchor="middle" font-size="15" font-weight="bold">${title}</text>`;
    for (let d = lo; d <= hi; d *= 10)
      out += `<line x1="${x0}" x2="${x0 + pw}" y1="${y(d)}" y2="${y(d)}" stroke="#ddd"/><text x="${x0 - 6}" y="${y(d) + 4}" text-anchor="end" font-size="11">${fmt(d)}</text>`;
    for (let n = nlo; n <= nhi; n *= 10)
      out += `<line x1="${x(x0, n)}" x2="${x(x0, n)}" y1="${top}" y2="${top + ph}" stroke="#eee"/><text x="${x(x0, n)}" y="${top + ph + 16}" text-anchor="middle" font-size="11">N=${fmt(n)}</text>`;
    for (const topology of ['mesh', 'star'] as const) {
      const pts = runs
        .filter((r) => r.topology === topology && r.failed === 0)
        .sort((a, b) => a.size - b.size)
        .map((r) => [x(x0, r.size), y(value(r)), value(r), r.size] as const);
      if (pts.length === 0) continue;
      out += `<polyline fill="none" stroke="${colors[topology]}" stroke-width="2" points="${pts.map(([px, py]) => `${px},${py}`).join(' ')}"/>`;
      for (const [px, py, v, n] of pts)
        out += `<circle cx="${px}" cy="${py}" r="3.5" fill="${colors[topology]}"><title>${topology} N=${n}: ${fmt(v)}</title></circle>`;
    }
    out += `<line x1="${x0}" x2="${x0}" y1="${top}" y2="${top + ph}" stroke="#333"/><line x1="${x0}" x2="${x0 + pw}" y1="${top + ph}" y2="${top + ph}" stroke="#333"/>`;
  });
  const H = 50 + 2 * (ph + 90);
  const legend = (['mesh', 'star'] as const)
    .map(
      (t, k) =>
        `<rect x="${80 + k * 200}" y="${H - 26}" width="14" height="14" fill="${colors[t]}"/><text x="${100 + k * 200}" y="${H - 14}" font-size="13">${t === 'mesh' ? 'mesh (every pair verified)' : 'star (through index 0)'}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * pw + 200}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${out}${legend}</svg>\n`;
}

it(
  'scale simulation: mesh and star from 64 to 10 000 pods on loopback',
  async () => {
    const runs: ScaleRun[] = [];
    if (process.env.KPSCALE_RESUME === '1' || process.env.KPSCALE_REPORT_ONLY === '1') {
      const old = await readFile(RAW, 'utf8').catch(() => '');
      for (const line of old.split('\n').filter(Boolean)) runs.push(JSON.parse(line) as ScaleRun);
    } else {
      await writeFile(RAW, '');
    }
    if (process.env.KPSCALE_REPORT_ONLY !== '1') {
      for (let rep = 0; rep < REPS; rep++) {
        for (const { topology, size } of RUNS) {
          if (runs.some((r) => r.topology === topology && r.size === size && r.rep === rep)) continue;
          const r = await runOnce(topology, size, rep);
          runs.push(r);
          await appendFile(RAW, `${JSON.stringify(r)}\n`);
          console.log(
            `${topology} N=${size}: ${r.released}/${size} released in ${r.releaseMs} ms, ${r.dnsTotal} DNS queries, ${r.connections} connections, coordinator fds ${r.coordinatorFds}${r.failed ? `; ${r.failed} failed: ${r.errors.join(' | ')}` : ''}`,
          );
        }
      }
    }
    // Hand-written reading of the figures, kept across regenerations.
    const notes = await readFile(join(ROOT, 'docs/scale.notes.md'), 'utf8').catch(() => '');
    runs.sort((a, b) => a.size - b.size || a.topology.localeCompare(b.topology) || a.rep - b.rep);
    const table = markdown(runs);
    console.log(`\n${table}\n`);
    await writeFile(join(ROOT, 'docs/scale.svg'), svg(runs));
    await writeFile(
      join(ROOT, 'docs/scale.md'),
      `# Scale simulation\n\nMeasured by \`npm run bench:scale\` (test/bench/scale.run.ts) on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ` +
        `one 2-core machine. One job of N pods on loopback addresses in a network namespace of its own: index 0 alone in one process ` +
        `(in a star, the coordinator, limited to \`ulimit -n 1024\`), the other pods split over two processes, or more when a mesh needs more ` +
        `descriptors than one process may have (\`ulimit -Hn\` ${await hardNofile()} here; see the processes column). A real knotd (two UDP workers) ` +
        `already holds every pod's records: every pod is Ready and starts at the same moment (the worst case for the coordinator). ` +
        `Defaults otherwise (retry 250 ms to 10 s, jittered). One run per row.\n\n` +
        `- time to release: from "go" to the last pod's release;\n` +
        `- DNS queries: knotd's own counters; TCP connections: the namespace's Tcp ActiveOpens (every connect attempt, including refused ones);\n` +
        `- fds: peak open descriptors, sampled every 50 ms: of index 0's process, and per pod in the other processes above their level before "go";\n` +
        `- CPU per pod: user + system time of the member processes divided by their pods.\n\n` +
        `${table}\n\n![scale plot](scale.svg)\n` +
        (notes ? `\n${notes}` : ''),
    );
  },
  24 * 3600_000,
);
