/**
 * A real knotd, authoritative for cluster.local on 127.0.0.1 at a free port, changed by RFC 2136 dynamic
 * updates (knsupdate) the way EndpointSlice changes reach CoreDNS. Stands in for cluster DNS in tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KnotOptions {
  zone?: string;
  /** Run knotd (and knsupdate) inside this network namespace. Default: the current one. */
  netns?: string;
  /** Listen address. Default: 127.0.0.1. */
  address?: string;
  /** Listen port. Default: a free port chosen by the OS. */
  port?: number;
  /** UDP worker threads, each with its own socket and receive buffer. Default: 1. */
  udpWorkers?: number;
  /** Default TTL of records (CoreDNS: 5). */
  ttl?: number;
  /** SOA minimum, the negative-caching TTL (CoreDNS: 5). */
  soaMinimum?: number;
}

/** A port free for both UDP and TCP on `address`, chosen by the OS. */
export async function freePort(address = '127.0.0.1'): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, address, () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, address, () => u.close(() => resolve(true)));
    });
    if (udpFree) return port;
  }
}

/**
 * The dynamic-update lines (owner names relative to the zone) that publish a Ready pod, or withdraw it:
 * its own A record and its entry in the Service's A set, as EndpointSlices make CoreDNS serve them.
 */
export function podRecords(
  op: 'add' | 'delete',
  pod: string,
  svc: string,
  ns: string,
  ip: string,
  ttl = 5,
): string[] {
  const t = op === 'add' ? ` ${ttl}` : '';
  return [`update ${op} ${pod}.${svc}.${ns}.svc${t} A ${ip}`, `update ${op} ${svc}.${ns}.svc${t} A ${ip}`];
}

/** Query counters of knotd's mod-stats, summed over restarts. */
export interface DnsCounters {
  /** Queries by type (`A`, `AAAA`, `SOA`, ...). */
  byType: Record<string, number>;
  /** Queries by transport (`udp4`, `tcp4`, ...). */
  byProtocol: Record<string, number>;
  /** Replies by rcode (`NOERROR`, `NXDOMAIN`, ...). */
  byRcode: Record<string, number>;
  total: number;
}

export class Knot {
  private proc: ChildProcess | undefined;
  private stderr = '';
  private carried: DnsCounters = emptyCounters();

  private constructor(
    readonly dir: string,
    readonly address: string,
    readonly port: number,
    readonly zone: string,
    readonly netns: string | undefined,
  ) {}

  static async start(options: KnotOptions = {}): Promise<Knot> {
    const zone = options.zone ?? 'cluster.local';
    const dir = await mkdtemp(join(tmpdir(), 'kubepeers-knot-'));
    await mkdir(join(dir, 'db'));
    const address = options.address ?? '127.0.0.1';
    const port = options.port ?? (await freePort(address));
    const knot = new Knot(dir, address, port, zone, options.netns);
    await writeFile(
      join(dir, 'knot.conf'),
      `server:
    rundir: "${dir}"
    listen: ${address}@${port}
    udp-workers: ${options.udpWorkers ?? 1}
    tcp-workers: 1
    background-workers: 1
control:
    listen: "${dir}/knot.sock"
log:
  - target: stderr
    any: warning
database:
    storage: "${dir}/db"
acl:
  - id: local_update
    address: [127.0.0.0/8, ${address}]
    action: update
mod-stats:
  - id: counters
    request-protocol: on
    query-type: on
    response-code: on
template:
  - id: default
    global-module: mod-stats/counters
    storage: "${dir}"
    file: "%s.zone"
    zonefile-sync: -1
    journal-content: changes
    semantic-checks: off
zone:
  - domain: ${zone}
    acl: local_update
`,
    );
    await writeFile(
      join(dir, `${zone}.zone`),
      `$ORIGIN ${zone}.
$TTL ${options.ttl ?? 5}
@ SOA ns.dns.${zone}. hostmaster.${zone}. 1 3600 600 86400 ${options.soaMinimum ?? 5}
@ NS ns.dns.${zone}.
ns.dns A 127.0.0.1
`,
    );
    await knot.run();
    return knot;
  }

  /** Starts knotd (again) and waits until it answers. */
  async run(): Promise<void> {
    this.stderr = '';
    const proc = spawn(...this.command('knotd', '-c', join(this.dir, 'knot.conf')), {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.proc = proc;
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      if (proc.exitCode !== null) throw new Error(`knotd exited ${proc.exitCode}: ${this.stderr}`);
      if (
        await this.control('status').then(
          () => true,
          () => false,
        )
      )
        return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`knotd did not answer within 10 s: ${this.stderr}`);
  }

  /** PID of the running knotd, if any. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** `ip netns exec NS cmd ...` when knotd lives in a namespace. */
  private command(...argv: string[]): [string, string[]] {
    return this.netns ? ['ip', ['netns', 'exec', this.netns, ...argv]] : [argv[0]!, argv.slice(1)];
  }

  /** Runs a knotc command over the control socket (a file, so it works across namespaces). */
  private control(...args: string[]): Promise<string> {
    return run('knotc', ['-s', join(this.dir, 'knot.sock'), ...args]);
  }

  /** Query counters since start, summed over restarts. */
  async counters(): Promise<DnsCounters> {
    const now = this.proc ? parseStats(await this.control('stats')) : emptyCounters();
    return addCounters(this.carried, now);
  }

  /** Stops knotd (SIGTERM) and waits for it to exit. Records and counters survive a restart. */
  async halt(): Promise<void> {
    const proc = this.proc;
    if (proc && proc.exitCode === null) this.carried = await this.counters();
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  }

  /** Applies `update add/delete` lines (relative owner names get the zone appended) in one DNS UPDATE. */
  async update(lines: string[]): Promise<void> {
    const script = [
      `server ${this.address} ${this.port}`,
      `zone ${this.zone}.`,
      `origin ${this.zone}.`,
      ...lines,
      'send',
      '',
    ].join('\n');
    await run(...this.command('knsupdate'), script);
  }

  /** Publishes a Ready pod: its own A record and its entry in the Service's A set. */
  markReady(pod: string, svc: string, ns: string, ip: string, ttl = 5): Promise<void> {
    return this.update(podRecords('add', pod, svc, ns, ip, ttl));
  }

  /** Withdraws a pod's records (it stopped being Ready, or was deleted). */
  markNotReady(pod: string, svc: string, ns: string, ip: string): Promise<void> {
    return this.update(podRecords('delete', pod, svc, ns, ip));
  }

  async stop(): Promise<void> {
    await this.halt();
    await rm(this.dir, { recursive: true, force: true });
  }
}

function emptyCounters(): DnsCounters {
  return { byType: {}, byProtocol: {}, byRcode: {}, total: 0 };
}

function addCounters(a: DnsCounters, b: DnsCounters): DnsCounters {
  const sum = (x: Record<string, number>, y: Record<string, number>): Record<string, number> => {
    const out = { ...x };
    for (const [k, v] of Object.entries(y)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return {
    byType: sum(a.byType, b.byType),
    byProtocol: sum(a.byProtocol, b.byProtocol),
    byRcode: sum(a.byRcode, b.byRcode),
    total: a.total + b.total,
  };
}

/** Parses `mod-stats.query-type[A] = 12` lines of `knotc stats`. */
export function parseStats(text: string): DnsCounters {
  const c = emptyCounters();
  for (const m of text.matchAll(/^mod-stats\.([a-z-]+)\[([^\]]+)\] = (\d+)$/gm)) {
    const [, counter, key, value] = m as unknown as [string, string, string, string];
    const n = Number(value);
    if (counter === 'query-type') {
      c.byType[key] = n;
      c.total += n;
    } else if (counter === 'request-protocol') c.byProtocol[key] = n;
    else if (counter === 'response-code') c.byRcode[key] = n;
  }
  return c;
}

/** Runs a command to completion, feeding `input`; rejects with its stderr on a non-zero exit. */
export function run(cmd: string, args: string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    // `close`, not `exit`: the output may still be in the pipe when the process has exited (under load
    // the caller got an empty string: knotc counters "unreadable", /proc/net/snmp without its Tcp lines).
    p.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`)),
    );
    if (p.stdin) {
      p.stdin.on('error', () => {}); // a command that exits without reading: its exit code tells
      p.stdin.end(input);
    }
  });
}
