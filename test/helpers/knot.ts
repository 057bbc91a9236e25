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
import { StubResolver } from '../../src/resolver.js';

export interface KnotOptions {
  zone?: string;
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

export class Knot {
  readonly address = '127.0.0.1';
  private proc: ChildProcess | undefined;
  private stderr = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
    readonly zone: string,
  ) {}

  static async start(options: KnotOptions = {}): Promise<Knot> {
    const zone = options.zone ?? 'cluster.local';
    const dir = await mkdtemp(join(tmpdir(), 'kubepeers-knot-'));
    await mkdir(join(dir, 'db'));
    const port = await freePort();
    const knot = new Knot(dir, port, zone);
    await writeFile(
      join(dir, 'knot.conf'),
      `server:
    rundir: "${dir}"
    listen: 127.0.0.1@${port}
    udp-workers: 1
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
    address: 127.0.0.0/8
    action: update
template:
  - id: default
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
    const proc = spawn('knotd', ['-c', join(this.dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    const resolver = new StubResolver({
      nameservers: [{ address: this.address, port: this.port }],
      timeoutMs: 100,
      attempts: 1,
    });
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      if (proc.exitCode !== null) throw new Error(`knotd exited ${proc.exitCode}: ${this.stderr}`);
      try {
        await resolver.query(`ns.dns.${this.zone}`, 'A');
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`knotd did not answer within 10 s: ${this.stderr}`);
  }

  /** Stops knotd (SIGTERM) and waits for it to exit. The zone's in-memory changes are lost with it. */
  async halt(): Promise<void> {
    const proc = this.proc;
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
    await new Promise<void>((resolve, reject) => {
      const p = spawn('knsupdate', [], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', reject);
      p.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`knsupdate exited ${code}: ${err}`)),
      );
      p.stdin.end(script);
    });
  }

  /** Publishes a Ready pod: its own A record and its entry in the Service's A set. */
  markReady(pod: string, svc: string, ns: string, ip: string, ttl = 5): Promise<void> {
    return this.update([
      `update add ${pod}.${svc}.${ns}.svc ${ttl} A ${ip}`,
      `update add ${svc}.${ns}.svc ${ttl} A ${ip}`,
    ]);
  }

  /** Withdraws a pod's records (it stopped being Ready, or was deleted). */
  markNotReady(pod: string, svc: string, ns: string, ip: string): Promise<void> {
    return this.update([
      `update delete ${pod}.${svc}.${ns}.svc A ${ip}`,
      `update delete ${svc}.${ns}.svc A ${ip}`,
    ]);
  }

  async stop(): Promise<void> {
    await this.halt();
    await rm(this.dir, { recursive: true, force: true });
  }
}
