/**
 * `npm run demo`: an Indexed Job of N pods simulated on this machine without root or a cluster. Each pod
 * is a separate Node process on its own loopback address (127.42.x.y) running the same waitForPeers()
 * code path as in Kubernetes; an embedded DNS server plays cluster DNS and publishes each pod's records
 * at a staggered "Ready" time. Shows live progress, then the released roster and the time from the last
 * pod becoming Ready to the release.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { EmbeddedDns } from './dns-server.js';

interface PodView {
  index: number;
  ip: string;
  readyAt?: number;
  ready: number;
  missing: number[];
  releasedAt?: number;
  failed?: string;
  peers?: { index: number; fqdn: string; ip: string }[];
  exited: Promise<number | null>;
  /** Resolves at the pod's first progress report: its responder listens (the container has started). */
  started: Promise<void>;
  onStarted: () => void;
}

const HELP = `Usage: npm run demo -- [options]

Simulates an Indexed Job on this machine: N pod processes on 127.42.x.y, an embedded DNS server,
records published at staggered Ready times. No root, no cluster.

  --pods N         number of pods (default 8, at most 500)
  --stagger MS     time between two pods becoming Ready (default 300)
  --timeout MS     barrier timeout of each pod (default 60000)
  --job NAME       job name (default demo-job)
  --help           this text
`;

function parse(): { pods: number; stagger: number; timeout: number; job: string } {
  const { values } = parseArgs({
    options: {
      pods: { type: 'string', default: '8' },
      stagger: { type: 'string', default: '300' },
      timeout: { type: 'string', default: '60000' },
      job: { type: 'string', default: 'demo-job' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      process.stderr.write(
        `demo: --${name} is ${JSON.stringify(v)}; expected an integer from ${min} to ${max}\n`,
      );
      process.exit(2);
    }
    return n;
  };
  return {
    pods: int('pods', values.pods, 1, 500),
    stagger: int('stagger', values.stagger, 0, 60_000),
    timeout: int('timeout', values.timeout, 1000, 3_600_000),
    job: values.job,
  };
}

async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, address, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const ms = (x: number): string => `${Math.round(x)} ms`;
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  const opts = parse();
  const { pods: size, job } = opts;
  const svc = 'demo-svc';
  const ns = 'default';
  const domain = 'cluster.local';
  const tty = process.stderr.isTTY === true;
  const ipOf = (i: number): string => `127.42.${Math.floor(i / 250)}.${1 + (i % 250)}`;

  const dns = new EmbeddedDns({ address: '127.42.255.254', zone: domain });
  await dns.start();
  const port = await freePort('127.42.0.1');
  const dir = await mkdtemp(join(tmpdir(), 'kubepeers-demo-'));
  const podScript = join(dirname(fileURLToPath(import.meta.url)), 'pod.js');
  const started = performance.timeOrigin + performance.now();
  const views: PodView[] = [];

  process.stderr.write(
    `kubepeers demo: ${size} pods of Indexed Job "${job}", Service ${svc}.${ns}.svc.${domain}, ` +
      `DNS ${dns.address}:${dns.port}, responder port ${port}; a pod becomes Ready every ${opts.stagger} ms\n`,
  );

  let lastRender = 0;
  let lastLines = 0;
  const render = (force: boolean): void => {
    const now = performance.timeOrigin + performance.now();
    if (!force && now - lastRender < (tty ? 50 : 1000)) return;
    lastRender = now;
    const readyCount = views.filter((v) => v.readyAt !== undefined).length;
    const released = views.filter((v) => v.releasedAt !== undefined).length;
    const head = `t=${ms(now - started).padStart(8)}  Ready in DNS: ${readyCount}/${size}  released: ${released}/${size}  DNS queries: ${dns.counters.total}`;
    if (!tty) {
      const waiting = views.filter((v) => v.releasedAt === undefined && v.failed === undefined);
      const example = waiting[0];
      process.stderr.write(
        `${head}${example ? `  (pod ${example.index} sees ${example.ready}/${size - 1}; missing ${example.missing.slice(0, 8).join(', ')}${example.missing.length > 8 ? ', ...' : ''})` : ''}\n`,
      );
      return;
    }
    const rows = views.slice(0, 24).map((v) => {
      const width = 20;
      const filled = size > 1 ? Math.round((v.ready / (size - 1)) * width) : width;
      const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
      const state = v.failed
        ? `FAILED ${v.failed.split('\n')[0]}`
        : v.releasedAt !== undefined
          ? `released (+${ms(v.releasedAt - started)})`
          : `${v.readyAt === undefined ? 'not Ready; ' : ''}missing ${v.missing.slice(0, 10).join(', ')}${v.missing.length > 10 ? ', ...' : ''}`;
      return `  ${`${job}-${v.index}`.padEnd(job.length + 5)} ${v.ip.padEnd(14)} [${bar}] ${String(v.ready).padStart(3)}/${size - 1}  ${state}`;
    });
    if (views.length > 24) rows.push(`  ... and ${views.length - 24} more pods`);
    const text = [head, ...rows].map((l) => l.slice(0, process.stderr.columns || 200)).join('\n');
    process.stderr.write(`${lastLines > 0 ? `\x1b[${lastLines}F\x1b[J` : ''}${text}\n`);
    lastLines = rows.length + 1;
  };

  for (let i = 0; i < size; i++) {
    const ip = ipOf(i);
    const hostname = `${job}-${i}`;
    const podDir = join(dir, hostname);
    await mkdir(podDir);
    await writeFile(
      join(podDir, 'hosts'),
      `127.0.0.1\tlocalhost\n${ip}\t${hostname}.${svc}.${ns}.svc.${domain}\t${hostname}\n`,
    );
    await writeFile(
      join(podDir, 'resolv.conf'),
      `search ${ns}.svc.${domain} svc.${domain} ${domain}\nnameserver ${dns.address}\noptions ndots:5\n`,
    );
    const options = {
      hostname,
      hostsPath: join(podDir, 'hosts'),
      resolvConfPath: join(podDir, 'resolv.conf'),
      nameservers: [`${dns.address}:${dns.port}`], // resolv.conf cannot carry a port
      port,
      timeoutMs: opts.timeout,
      lingerMs: 0,
    };
    const child = spawn(process.execPath, [podScript, JSON.stringify(options)], {
      env: { ...process.env, JOB_COMPLETION_INDEX: String(i), KUBEPEERS_SIZE: String(size) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let onStarted = (): void => {};
    const view: PodView = {
      index: i,
      ip,
      ready: 0,
      missing: [],
      exited: new Promise((r) => child.on('exit', (code) => r(code))),
      started: new Promise<void>((r) => (onStarted = r)),
      onStarted: () => onStarted(),
    };
    void view.exited.then(view.onStarted);
    views.push(view);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let e: {
        t: string;
        at: number;
        ready?: number;
        missing?: number[];
        code?: string;
        message?: string;
        peers?: PodView['peers'];
      };
      try {
        e = JSON.parse(line) as typeof e;
      } catch {
        return;
      }
      if (e.t === 'progress') {
        view.onStarted();
        view.ready = e.ready ?? 0;
        view.missing = e.missing ?? [];
      } else if (e.t === 'released') {
        view.releasedAt = e.at;
        view.ready = size - 1;
        view.missing = [];
        if (e.peers) view.peers = e.peers;
      } else if (e.t === 'failed') {
        view.failed = `${e.code}: ${e.message}`;
      }
      render(false);
    });
  }

  // Publish the records at staggered times, in a shuffled order (pods do not start in index order).
  const order = views.map((v) => v.index).sort(() => Math.random() - 0.5);
  const ticker = setInterval(() => render(true), tty ? 100 : 1000);

  for (const [k, i] of order.entries()) {
    if (k > 0) await new Promise((r) => setTimeout(r, opts.stagger));
    const v = views[i]!;
    await v.started; // as in Kubernetes, a pod is Ready only once its container runs
    dns.add(`${job}-${i}.${svc}.${ns}.svc.${domain}`, 'A', v.ip);
    dns.add(`${svc}.${ns}.svc.${domain}`, 'A', v.ip);
    v.readyAt = performance.timeOrigin + performance.now();
    render(false);
  }
  const codes = await Promise.all(views.map((v) => v.exited));
  clearInterval(ticker);
  render(true);
  await dns.stop();
  await rm(dir, { recursive: true, force: true });

  const failed = views.filter((v) => v.failed !== undefined || v.releasedAt === undefined);
  if (failed.length > 0) {
    for (const v of failed)
      process.stderr.write(`\npod ${v.index}: ${v.failed ?? `exited ${codes[v.index]}`}\n`);
    process.exitCode = 1;
    return;
  }
  const lastReady = Math.max(...views.map((v) => v.readyAt!));
  const after = views.map((v) => v.releasedAt! - lastReady);
  const roster = views[0]!.peers ?? [];
  const out = process.stdout;
  out.write(
    `\nReleased roster (identical in all ${size} pods: ${views.every((v) => JSON.stringify(v.peers) === JSON.stringify(roster)) ? 'yes' : 'NO'}):\n`,
  );
  for (const p of roster.slice(0, 32))
    out.write(`  ${String(p.index).padStart(4)}  ${p.fqdn.padEnd(50)} ${p.ip}\n`);
  if (roster.length > 32) out.write(`  ... and ${roster.length - 32} more\n`);
  out.write(
    `\nFrom the last pod becoming Ready to release: first ${ms(Math.min(...after))}, p50 ${ms(quantile(after, 0.5))}, ` +
      `p95 ${ms(quantile(after, 0.95))}, last ${ms(Math.max(...after))}\n` +
      `DNS queries: ${dns.counters.total} in all (${(dns.counters.total / size).toFixed(1)} per pod; ` +
      `${Object.entries(dns.counters.byType)
        .map(([t, n]) => `${t} ${n}`)
        .join(', ')}; TCP ${dns.counters.tcp}).\n`,
  );
}

await main();
