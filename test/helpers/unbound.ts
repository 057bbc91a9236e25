/**
 * A real unbound, as the caching resolver in front of the authoritative server (what CoreDNS's `cache`
 * plugin or NodeLocal DNSCache is in a cluster): it caches answers for their TTL and NXDOMAIN/NODATA for
 * the SOA minimum (RFC 2308), at most `maxTtl` seconds either way, and refuses names outside the zone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type DnsCounters } from './knot.js';

export interface UnboundOptions {
  /** Run inside this network namespace. */
  netns?: string;
  address: string;
  port: number;
  /** The authoritative server for `zone`, `addr@port`. */
  upstream: string;
  zone?: string;
  /** Longest time anything is cached, positive or negative (CoreDNS's common `cache 30`). Default: 30. */
  maxTtl?: number;
}

/** Counters of the caching resolver: what the pods asked. */
export interface CacheCounters extends DnsCounters {
  cacheHits: number;
  cacheMisses: number;
}

export class Unbound {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly dir: string,
    private readonly netns: string | undefined,
  ) {}

  static async start(o: UnboundOptions): Promise<Unbound> {
    const dir = await mkdtemp(join(tmpdir(), 'kubepeers-unbound-'));
    const zone = o.zone ?? 'cluster.local';
    const conf = join(dir, 'unbound.conf');
    await writeFile(
      conf,
      `server:
  interface: ${o.address}@${o.port}
  do-ip6: no
  access-control: 0.0.0.0/0 allow
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 2
  so-reuseport: yes
  do-not-query-localhost: no
  module-config: "iterator"
  qname-minimisation: no
  minimal-responses: yes
  prefetch: no
  cache-max-ttl: ${o.maxTtl ?? 30}
  cache-max-negative-ttl: ${o.maxTtl ?? 30}
  statistics-cumulative: yes
  extended-statistics: yes
  local-zone: "." refuse
  local-zone: "${zone}." transparent
  domain-insecure: "${zone}."
remote-control:
  control-enable: yes
  control-interface: "${dir}/unbound.ctl"
  control-use-cert: no
stub-zone:
  name: "${zone}."
  stub-addr: ${o.upstream}
`,
    );
    const argv = ['unbound', '-d', '-c', conf];
    const cmd = o.netns ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv;
    const proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const unbound = new Unbound(proc, dir, o.netns);
    for (let i = 0; ; i++) {
      try {
        await unbound.control('status');
        return unbound;
      } catch (err) {
        if (proc.exitCode !== null || i > 100) {
          await unbound.stop();
          throw new Error(`unbound did not start: ${stderr || String(err)}`, { cause: err });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  get pid(): number | undefined {
    return this.proc.exitCode === null ? this.proc.pid : undefined;
  }

  private control(...args: string[]): Promise<string> {
    const argv = ['unbound-control', '-c', join(this.dir, 'unbound.conf'), ...args];
    return this.netns ? run('ip', ['netns', 'exec', this.netns, ...argv]) : run(argv[0]!, argv.slice(1));
  }

  /** Cumulative counters since start. */
  async counters(): Promise<CacheCounters> {
    const text = await this.control('stats_noreset');
    const c: CacheCounters = {
      byType: {},
      byProtocol: {},
      byRcode: {},
      total: 0,
      cacheHits: 0,
      cacheMisses: 0,
    };
    for (const [, key, value] of text.matchAll(/^([\w.]+)=(\d+)$/gm) as Iterable<[string, string, string]>) {
      const n = Number(value);
      if (key === 'total.num.queries') c.total = n;
      else if (key === 'total.num.cachehits') c.cacheHits = n;
      else if (key === 'total.num.cachemiss') c.cacheMisses = n;
      else if (key.startsWith('num.query.type.')) c.byType[key.slice(15)] = n;
      else if (key.startsWith('num.answer.rcode.')) c.byRcode[key.slice(17)] = n;
      else if (key === 'num.query.tcp') c.byProtocol.tcp = n;
    }
    return c;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      await new Promise<void>((resolve) => {
        this.proc.once('exit', () => resolve());
        this.proc.kill('SIGTERM');
      });
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
