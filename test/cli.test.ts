import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helpText, optionRows } from '../src/cli/main.js';
import { reply, soa, startFakeDns, type FakeDns } from './helpers/fake-dns.js';
import { freePort } from './helpers/knot.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;
let dns: FakeDns;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kubepeers-cli-'));
  dns = await startFakeDns((q) => [reply(q, { rcode: 3, authorities: [soa('cluster.local', 5, 5)] })]);
});
afterAll(async () => {
  await dns.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the built CLI; `during` may act on the running process (send signals, probe HTTP). */
function cli(
  args: string[],
  env: Record<string, string> = {},
  during?: (pid: number, out: { stdout: string; stderr: string }) => void,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/bin.js', ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, ...out });
    });
    during?.(child.pid!, out);
  });
}

const names = ['--job-name', 'j', '--subdomain', 's', '--namespace', 'n'];

/** A one-pod job: released at once, no network needed. */
const solo = ['--size', '1', '--index', '0', ...names, '--nameservers', '127.0.0.1:9'];

/** Pod 0 of a two-pod job whose peer never appears (DNS says NXDOMAIN). */
async function pair(): Promise<string[]> {
  const port = String(await freePort());
  return [
    '--size',
    '2',
    '--index',
    '0',
    ...names,
    '--nameservers',
    `127.0.0.1:${dns.port}`,
    '--listen-address',
    '127.0.0.1',
    '--port',
    port,
  ];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await sleep(25);
}

describe('kubepeers CLI', () => {
  it('--help lists every option with its env variable and default', async () => {
    const { code, stdout } = await cli(['--help']);
    expect(code).toBe(0);
    expect(stdout).toBe(helpText());
    for (const [flag, env] of [
      ['--size', 'KUBEPEERS_SIZE'],
      ['--index', 'JOB_COMPLETION_INDEX'],
      ['--timeout', 'KUBEPEERS_TIMEOUT'],
      ['--serve-status', 'KUBEPEERS_SERVE_STATUS'],
      ['--log-format', 'KUBEPEERS_LOG_FORMAT'],
    ]) {
      expect(stdout).toContain(flag);
      expect(stdout).toContain(`env ${env}`);
    }
    expect(stdout).toContain('env KUBEPEERS_PORT; default: 17293');
  });

  it("docs/cli.md's option table says what --help says, row by row", async () => {
    const page = await readFile(new URL('../docs/cli.md', import.meta.url), 'utf8');
    const lines = page.split('\n');
    const start = lines.findIndex((l) => l.startsWith('| option '));
    const rows: string[][] = [];
    for (let i = start + 2; lines[i]?.startsWith('|'); i++)
      rows.push(
        lines[i]!.slice(1, -1)
          .split(' | ')
          .map((c) => c.trim()),
      );
    expect(rows, 'docs/cli.md is out of date: run npm run docs:cli').toEqual(optionRows());
  });

  it('exits 2 on a configuration error, naming the value and where it came from, before any I/O', async () => {
    const a = await cli(['wait', ...solo, '--timeout', 'soon']);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain(
      'timeout is "soon" (from flag --timeout); expected a duration such as 1500, 90s or 10m',
    );
    const b = await cli(['wait', ...solo], { KUBEPEERS_LOG_FORMAT: 'xml' });
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('log-format is "xml" (from env KUBEPEERS_LOG_FORMAT)');
    const c = await cli(['wait', '--job-name', 'j'], { JOB_COMPLETION_INDEX: '0' });
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('size is missing (from flag --size or env KUBEPEERS_SIZE)');
    const d = await cli(['wait', '--bogus']);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain("Unknown option '--bogus'");
  });

  it('names the flag or env variable a bad value came from, also for values the library checks', async () => {
    const size = await cli(['wait', ...solo.filter((_, i) => i > 1), '--size', '0']);
    expect(size.code).toBe(2);
    expect(size.stderr).toContain('size is 0 (from flag --size); expected an integer from 1 to');
    const timeout = await cli(['wait', ...solo], { KUBEPEERS_TIMEOUT: '-5s' });
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toContain('timeout is "-5s" (from env KUBEPEERS_TIMEOUT); expected a duration');
    const listen = await cli(['wait', ...solo], { KUBEPEERS_LISTEN_ADDRESS: 'not-an-ip' });
    expect(listen.code).toBe(2);
    expect(listen.stderr).toContain('listen-address is "not-an-ip" (from env KUBEPEERS_LISTEN_ADDRESS)');
  });

  it('takes booleans strictly, Go durations, options before the command, short flags and per-command help', async () => {
    const maybe = await cli(['wait', ...solo], { KUBEPEERS_QUIET: 'maybe' });
    expect(maybe.code).toBe(2);
    expect(maybe.stderr).toContain('quiet is "maybe" (from env KUBEPEERS_QUIET); expected true or false');
    const quiet = await cli(['wait', ...solo], { KUBEPEERS_QUIET: 'Yes' });
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
    // Options before the subcommand, short flags, and a Go duration: all accepted.
    const before = await cli([...solo, '-q', '-t', '1m30s', 'wait']);
    expect(before.stderr).toBe('');
    expect(before.code).toBe(0);
    const bad = await cli(['wait', ...solo, '-t', '1m30']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('timeout is "1m30" (from flag --timeout)');
    const help = await cli(['wait', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toBe(helpText('wait'));
    expect(help.stdout).toContain('kubepeers wait [options]');
    expect(help.stdout).not.toContain('kubepeers env [options]');
    const version = await cli(['-V']);
    expect(version.stdout).toMatch(/^kubepeers \d+\.\d+\.\d+ \(wire protocol \d+\)\n$/);
    const none = await cli([...solo]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('command is missing (from argv); expected "wait" or "env"');
  });

  it('refuses an empty or unreadable secret file, an unwritable output path and a probe without its port, before any network I/O', async () => {
    const empty = join(dir, 'empty-secret');
    await writeFile(empty, '\n');
    const e = await cli(['wait', ...solo, '--secret-file', empty]);
    expect(e.code).toBe(2);
    expect(e.stderr).toContain(
      `secret-file is "${empty}" (from flag --secret-file); expected a file holding the secret (it is empty)`,
    );
    const missing = await cli(['wait', ...solo], { KUBEPEERS_SECRET_FILE: join(dir, 'nope') });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('(from env KUBEPEERS_SECRET_FILE); expected a readable file (ENOENT)');
    // A pod of two whose peer never comes: exit 2 now, not after the barrier (its timeout is 10 min; the
    // helper kills the CLI after 20 s).
    const args = await pair();
    const out = await cli(['wait', ...args, '--write-env', join(dir, 'no-such-dir', 'env')]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(`directory ${join(dir, 'no-such-dir')} does not exist`);
    expect(out.stderr).toContain('(from flag --write-env)');
    const probe = await cli(['wait', ...solo, '--probe-http', '/healthz']);
    expect(probe.code).toBe(2);
    expect(probe.stderr).toContain('probe-http-port is missing');
    const same = await cli([
      'wait',
      ...solo,
      '--probe-http',
      '/healthz',
      '--probe-http-port',
      '8080',
      '--serve-status',
      ':8080',
    ]);
    expect(same.code).toBe(2);
    expect(same.stderr).toContain("a port other than --serve-status's 8080");
  });

  it('a command line that does not parse still reports where --termination-log and --log-format say', async () => {
    const log = join(dir, 'termination-log-argv');
    await writeFile(log, ''); // kubelet creates it; kubepeers writes only to a file that exists
    const r = await cli(['wait', '--bogus', '--termination-log', log, '--log-format=json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr.trim())).toMatchObject({ event: 'error', code: 'ERR_KUBEPEERS_CONFIG' });
    expect(await readFile(log, 'utf8')).toMatch(
      /^kubepeers: ERR_KUBEPEERS_CONFIG: arguments is .*Unknown option '--bogus'/,
    );
  });

  it('runs the command with the default env (kubepeers, torch, torchrun) and exits with its code', async () => {
    const r = await cli([
      'wait',
      ...solo,
      '--',
      'sh',
      '-c',
      'echo "$MASTER_ADDR $MASTER_PORT $RANK $WORLD_SIZE $PET_NNODES $KUBEPEERS_SIZE ${JAX_PROCESS_ID-unset} ${TF_CONFIG-unset} ${RAY_ADDRESS-unset}"; exit 7',
    ]);
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('j-0.s.n.svc.cluster.local 29500 0 1 1 1 unset unset unset\n');
    expect(r.stderr).toMatch(
      /^kubepeers: released: pod 0 of 1 \(j-0\.s\.n\.svc\.cluster\.local\) after \d+ ms, topology mesh; coordinator j-0\.s\.n\.svc\.cluster\.local/m,
    );
  });

  it('--format torch exports only torch env; --quiet prints nothing', async () => {
    const r = await cli([
      'wait',
      ...solo,
      '--format',
      'torch',
      '--quiet',
      '--',
      'sh',
      '-c',
      'echo "${MASTER_ADDR:-unset} ${PET_NNODES:-unset}"',
    ]);
    expect(r).toEqual({ code: 0, stdout: 'j-0.s.n.svc.cluster.local unset\n', stderr: '' });
  });

  it('exits 128+n when the command is killed by signal n, and 127 when it does not exist', async () => {
    expect((await cli(['wait', ...solo, '--', 'sh', '-c', 'kill -KILL $$'])).code).toBe(137);
    const missing = await cli(['wait', ...solo, '--', 'no-such-command-kubepeers']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain('cannot run no-such-command-kubepeers: ENOENT');
  });

  it('forwards SIGTERM to the command and returns its exit code', async () => {
    const script =
      "process.on('SIGTERM', () => { console.log('got SIGTERM'); process.exit(42); }); console.log('ready'); setInterval(() => {}, 1000);";
    const r = await cli(['wait', ...solo, '--', process.execPath, '-e', script], {}, (pid, out) => {
      void until(() => out.stdout.includes('ready')).then(() => process.kill(pid, 'SIGTERM'));
    });
    expect(r.code).toBe(42);
    expect(r.stdout).toBe('ready\ngot SIGTERM\n');
  });

  it('exits 143 when stopped by SIGTERM while waiting', async () => {
    const r = await cli(['wait', ...(await pair())], {}, (pid, out) => {
      void until(() => out.stderr.includes('0/1 peers ready')).then(() => process.kill(pid, 'SIGTERM'));
    });
    expect(r.code).toBe(143);
    expect(r.stderr).toContain('ERR_KUBEPEERS_ABORTED: stopped by SIGTERM while waiting for peers');
  });

  it('exits 124 on timeout, names the missing peer, and writes the termination log', async () => {
    const log = join(dir, 'termination-log');
    await writeFile(log, '');
    const r = await cli([
      'wait',
      ...(await pair()),
      '--timeout',
      '1s',
      '--termination-log',
      log,
      '--',
      'sh',
      '-c',
      'echo never',
    ]);
    expect(r.code).toBe(124);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      'ERR_KUBEPEERS_TIMEOUT: barrier timed out after 1000 ms; 1 peer(s) missing:\n  1 (j-1.s.n.svc.cluster.local.)',
    );
    expect(await readFile(log, 'utf8')).toContain('ERR_KUBEPEERS_TIMEOUT: barrier timed out after 1000 ms');
  });

  it('on a TTY, progress is one line updated in place', async () => {
    // util-linux `script` gives the CLI a pseudo-terminal.
    const cmd = [process.execPath, 'dist/bin.js', 'wait', ...(await pair()), '--timeout', '1s'].join(' ');
    const r = await new Promise<string>((resolve) => {
      const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', () => resolve(out));
    });
    // The scope warning once, on a line of its own, then the progress line updated in place.
    expect(r.startsWith('\r\x1b[Kkubepeers: warning: no run id and no secret')).toBe(true);
    expect(r.slice(r.indexOf('\n') + 1).startsWith('\r0/1 peers ready; waiting for 1\x1b[K')).toBe(true);
    expect(r).toContain('\r\x1b[Kkubepeers: ERR_KUBEPEERS_TIMEOUT');
    expect(r).not.toContain('kubepeers: 0/1 peers ready'); // the off-TTY form
  });

  it('--log-format json writes one JSON event per line', async () => {
    const r = await cli(['wait', ...(await pair()), '--timeout', '800ms', '--log-format', 'json']);
    expect(r.code).toBe(124);
    const events = r.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; code?: string; missing?: { index: number }[] });
    expect(events[0]).toMatchObject({ event: 'progress', ready: 0, total: 1, missing: [1] });
    expect(events.at(-1)).toMatchObject({
      event: 'error',
      code: 'ERR_KUBEPEERS_TIMEOUT',
      missing: [{ index: 1 }],
    });
  });

  it('--format selects exactly the formats asked for, in that order; all gives every one; env and flag alike', async () => {
    const names = async (args: string[], env: Record<string, string> = {}): Promise<string[]> => {
      const r = await cli(['env', ...solo, '--quiet', ...args], env);
      expect(r.code, r.stderr).toBe(0);
      return [...r.stdout.matchAll(/^export (\w+)=/gm)].map((m) => m[1]!);
    };
    const kubepeers = [
      'KUBEPEERS_INDEX',
      'KUBEPEERS_SIZE',
      'KUBEPEERS_COORDINATOR',
      'KUBEPEERS_PEERS',
      'KUBEPEERS_HOROVOD_HOSTS',
      'KUBEPEERS_ROSTER',
    ];
    const torch = ['MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK'];
    const torchrun = [
      'PET_NNODES',
      'PET_NODE_RANK',
      'PET_MASTER_ADDR',
      'PET_MASTER_PORT',
      'PET_NPROC_PER_NODE',
    ];
    const jax = ['JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'];
    expect(await names([])).toEqual([...kubepeers, ...torch, ...torchrun]);
    expect(await names(['--format', 'ray'])).toEqual(['RAY_ADDRESS']);
    expect(await names([], { KUBEPEERS_FORMAT: 'jax,tf' })).toEqual([...jax, 'TF_CONFIG']);
    expect(await names(['--format', 'all'])).toEqual([
      ...kubepeers,
      ...torch,
      ...torchrun,
      ...jax,
      'TF_CONFIG',
      'RAY_ADDRESS',
    ]);
  });

  it('kubepeers env prints exports that a shell can eval', async () => {
    const r = await cli(['env', ...solo, '--format', 'torch,tf', '--quiet']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      "export MASTER_ADDR='j-0.s.n.svc.cluster.local'\nexport MASTER_PORT='29500'\nexport WORLD_SIZE='1'\nexport RANK='0'\n" +
        `export TF_CONFIG='{"cluster":{"worker":["j-0.s.n.svc.cluster.local:2222"]},"task":{"type":"worker","index":0}}'\n`,
    );
  });

  it('writes the hostfiles, roster and env file atomically', async () => {
    const files = {
      hostfile: join(dir, 'hostfile'),
      mpich: join(dir, 'machinefile'),
      roster: join(dir, 'roster.json'),
      env: join(dir, 'kubepeers.env'),
    };
    const r = await cli([
      'wait',
      ...solo,
      '--nproc-per-node',
      '4',
      '--write-hostfile',
      files.hostfile,
      '--write-mpich-hostfile',
      files.mpich,
      '--write-roster',
      files.roster,
      '--write-env',
      files.env,
    ]);
    expect(r.code).toBe(0);
    expect(await readFile(files.hostfile, 'utf8')).toBe('j-0.s.n.svc.cluster.local slots=4\n');
    expect(await readFile(files.mpich, 'utf8')).toBe('j-0.s.n.svc.cluster.local:4\n');
    expect(JSON.parse(await readFile(files.roster, 'utf8'))).toMatchObject({
      index: 0,
      size: 1,
      coordinator: { fqdn: 'j-0.s.n.svc.cluster.local' },
    });
    expect(await readFile(files.env, 'utf8')).toContain("export PET_NPROC_PER_NODE='4'\n");
  });

  it('--serve-status answers 503 while waiting and 200 once released, and a sidecar stays up until SIGTERM', async () => {
    const port = await freePort();
    let metrics = '';
    const waiting = await cli(
      ['wait', ...(await pair()), '--timeout', '3s', '--serve-status', `127.0.0.1:${port}`],
      {},
      (_pid, out) => {
        void until(() => out.stderr.includes('peers ready')).then(async () => {
          const res = await fetch(`http://127.0.0.1:${port}/barrier`);
          out.stdout += `${res.status} ${await res.text()}`;
          await sleep(300); // a few Service polls, each answered NXDOMAIN
          const m = await fetch(`http://127.0.0.1:${port}/metrics`);
          metrics = `${m.status} ${m.headers.get('content-type')}\n${await m.text()}`;
        });
      },
    );
    expect(waiting.code).toBe(124);
    expect(waiting.stdout).toBe('503 {"released":false,"ready":0,"total":1,"missing":[1]}\n');
    expect(metrics).toMatch(/^200 text\/plain; version=0\.0\.4/);
    expect(metrics).toContain('\nkubepeers_released 0\n');
    expect(metrics).toContain('\nkubepeers_peers_total 1\n');
    expect(metrics).toContain('# TYPE kubepeers_dns_queries_total counter\n');
    expect(
      Number(/kubepeers_dns_queries_total\{outcome="nxdomain"\} (\d+)/.exec(metrics)?.[1]),
    ).toBeGreaterThan(1);
    expect(metrics).toContain('kubepeers_handshakes_total{outcome="ok"} 0\n');
    expect(metrics).not.toContain('kubepeers_release_seconds');

    const port2 = await freePort();
    const sidecar = await cli(['wait', ...solo, '--serve-status', `127.0.0.1:${port2}`], {}, (pid, out) => {
      void until(() => out.stderr.includes('released')).then(async () => {
        const res = await fetch(`http://127.0.0.1:${port2}/barrier`);
        out.stdout += `${res.status} ${((await res.json()) as { released: boolean }).released}\n`;
        metrics = await (await fetch(`http://127.0.0.1:${port2}/metrics`)).text();
        process.kill(pid, 'SIGTERM');
      });
    });
    expect(sidecar).toMatchObject({ code: 0, stdout: '200 true\n' });
    expect(metrics).toContain('\nkubepeers_released 1\n');
    expect(metrics).toMatch(/\nkubepeers_release_seconds \d+(\.\d+)?\n/);
  });
});
