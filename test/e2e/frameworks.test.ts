/**
 * End-to-end with real framework clients from Debian in pods of the cluster in a box: torch (gloo over
 * env://), Open MPI and MPICH. Each client gets only what `kubepeers wait` gives it (env, hostfile). The
 * packages are installed by scripts/setup-tests.mjs (`npm test`'s pretest), as root.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterInABox, type Pod, type PodSpec, type PreparedPod } from './cluster.js';
import { destroyBoxAfterEach } from './teardown.js';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../..');
/** Debian's interpreter, where python3-torch lives (a python3 earlier on PATH may be another one). */
const PYTHON = '/usr/bin/python3';
const SIZE = 4;
const LAUNCH_TIMEOUT_MS = 60_000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Waits until `cond` holds, for at most 10 s (the caller's assertion then tells what is missing). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await sleep(25);
}

let box: ClusterInABox | undefined;
/** Where the MPI programs are compiled (world-readable, like the image). */
let bin: string;

beforeAll(async () => {
  bin = await mkdtemp(join(tmpdir(), 'kubepeers-mpi-'));
  await chmod(bin, 0o755);
});

destroyBoxAfterEach(() => {
  const b = box;
  box = undefined;
  return b;
});

afterAll(async () => {
  await rm(bin, { recursive: true, force: true });
});

const indices = [...Array(SIZE).keys()];
const kubepeers = (...args: string[]): string[] => [
  process.execPath,
  'node_modules/kubepeers/dist/bin.js',
  ...args,
];
const output = (pod: Pod): string => `pod ${pod.index} stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`;

/** Compiles test/fixtures/mpi-ranks.c with an MPI's compiler wrapper (mpicc.openmpi, mpicc.mpich). */
function compileMpi(mpicc: string): string {
  const out = join(bin, mpicc);
  execFileSync(mpicc, ['-O1', '-o', out, join(ROOT, 'test/fixtures/mpi-ranks.c')], { stdio: 'pipe' });
  return out;
}

/**
 * The rsh agent through which mpirun / mpiexec reach the other pods, as ssh would reach another machine:
 * it runs the command line it is given (as a remote shell would) inside the target pod's network
 * namespace (`ip netns exec` also puts that pod's /etc/hosts and resolv.conf in place), with the pod's
 * hostname (a UTS namespace, as the pod has). The hostname matters: Open MPI's daemons keep their
 * session files under /tmp/ompi.<hostname>.<uid>/, which every pod of one machine would otherwise share:
 * the daemons then wrote the same hwloc.sm at once, and one crashed in hwloc_shmem_topology_write now and
 * then (twice in 12 runs here). Real pods have their own hostname and /tmp. Hosts are the hostfile's names
 * (FQDNs) or short hostnames; ssh-style options before the host (hydra passes `-x`) are skipped. Each
 * launch is logged to `<agent>.log`, so the test can tell which pods it entered.
 */
async function rshAgent(b: ClusterInABox, pods: PreparedPod[]): Promise<string> {
  const path = join(b.dir, 'rsh-agent');
  const cases = pods
    .map((p) => `  ${b.fqdn(p.index)}|${p.hostname}) ns=${p.netns} name=${p.hostname} ;;`)
    .join('\n');
  await writeFile(
    path,
    `#!/bin/sh
while [ "\${1#-}" != "$1" ]; do shift; done
host=$1
shift
case "$host" in
${cases}
  *) echo "rsh-agent: unknown host $host" >&2; exit 255 ;;
esac
echo "$host $ns" >> "$0.log"
exec ip netns exec "$ns" unshare --uts -- sh -c 'echo "$0" > /proc/sys/kernel/hostname && exec sh -c "$1"' "$name" "$*"
`,
    { mode: 0o755 },
  );
  return path;
}

interface RankLine {
  rank: number;
  size: number;
  address: string;
  sum: number;
  saw: string[];
}

/** The lines of test/fixtures/mpi-ranks.c, by rank. */
function rankLines(stdout: string): Map<number, RankLine> {
  const out = new Map<number, RankLine>();
  for (const m of stdout.matchAll(/^rank (\d+) of (\d+) at (\S+) sum (\d+) saw((?: \S+)*)$/gm)) {
    out.set(Number(m[1]), {
      rank: Number(m[1]),
      size: Number(m[2]),
      address: m[3]!,
      sum: Number(m[4]),
      saw: m[5]!.trim().split(' '),
    });
  }
  return out;
}

/**
 * Runs an MPI job across SIZE pods: pod 0 (as root, for the agent's `ip netns exec`) runs
 * `kubepeers wait <hostfile flag> F -- <launcher ...>`; pods 1..SIZE-1 run `kubepeers wait -- sleep`,
 * standing in for the sshd an MPI worker pod runs. Returns pod 0 once it has exited.
 */
async function mpiJob(
  hostfileFlag: string,
  launcher: (hostfile: string, agent: string) => string[],
): Promise<{ b: ClusterInABox; launcherPod: Pod; workers: Pod[]; code: number | null; agentLog: string }> {
  const b = (box = await ClusterInABox.create());
  const env = { KUBEPEERS_SIZE: String(SIZE) };
  const prepared = await b.preparePods(indices);
  const agent = await rshAgent(b, prepared);
  const hostfile = join(b.dir, 'hostfile');
  const [launcherPod] = b.launchPods(prepared.slice(0, 1), {
    command: kubepeers('wait', hostfileFlag, hostfile, '--', ...launcher(hostfile, agent)),
    env,
    root: true,
  });
  const workers = b.launchPods(prepared.slice(1), { command: kubepeers('wait', '--', 'sleep', '120'), env });
  await b.markReady(...indices);
  // A launcher that hangs (a rank that cannot connect back) fails here with its output, not at the timeout.
  const done = await Promise.race([
    launcherPod!.closed.then(() => true),
    sleep(LAUNCH_TIMEOUT_MS).then(() => false),
  ]);
  expect(done, `${LAUNCH_TIMEOUT_MS} ms passed; ${output(launcherPod!)}`).toBe(true);
  const { code } = await launcherPod!.exited;
  // The workers still run (sshd's part): their release line is printed by now, or very soon.
  for (const w of workers) await until(() => w.stderr.includes(`released: pod ${w.index} of ${SIZE}`));
  const agentLog = await readFile(`${agent}.log`, 'utf8').catch(() => '');
  return { b, launcherPod: launcherPod!, workers, code, agentLog };
}

/** The launcher went through the agent into every worker pod (into its own pod too, for MPICH). */
function expectAgentEntered(agentLog: string, workers: Pod[]): void {
  const entered = new Set(agentLog.split('\n').map((l) => l.split(' ')[1]));
  for (const w of workers) expect(entered, agentLog).toContain(w.netns);
}

/** Every rank ran in its own pod, reported that pod's address, and the ranks exchanged data. */
function expectOneRankPerPod(b: ClusterInABox, launcherPod: Pod, code: number | null): void {
  expect(code, output(launcherPod)).toBe(0);
  const ranks = rankLines(launcherPod.stdout);
  expect([...ranks.keys()].sort(), output(launcherPod)).toEqual(indices);
  const podAddresses = indices.map((i) => b.pod(i).ip);
  const reported = indices.map((r) => ranks.get(r)!.address);
  expect(new Set(reported).size).toBe(SIZE);
  expect(reported).toEqual(podAddresses); // rank i in pod i: hostfile order
  for (const line of ranks.values()) {
    expect(line.size).toBe(SIZE);
    expect(line.sum).toBe((SIZE * (SIZE + 1)) / 2);
    expect(line.saw).toEqual(podAddresses);
  }
}

describe('real framework clients in the cluster in a box', () => {
  it(
    `torch: ${SIZE} pods init_process_group("gloo") from env:// as kubepeers sets it by default, and all_reduce`,
    { timeout: 120_000 },
    async () => {
      box = await ClusterInABox.create();
      // Nothing but what kubepeers exports (default --format): env://, the rank from RANK.
      const program = `
import os, socket, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
t = torch.tensor([rank + 1.0])
dist.all_reduce(t)
hosts = [None] * world
dist.all_gather_object(hosts, socket.gethostname())
print(f"rank {rank} world {world} sum {int(t.item())} hosts {','.join(hosts)} others {[k for k in ('RAY_ADDRESS', 'TF_CONFIG', 'JAX_COORDINATOR_ADDRESS') if k in os.environ]}", flush=True)
dist.destroy_process_group()
`;
      const spec: PodSpec = {
        command: kubepeers('wait', '--', PYTHON, '-c', program),
        env: { KUBEPEERS_SIZE: String(SIZE) },
      };
      const pods = await box.startPods(indices, spec);
      await box.markReady(...indices);
      const exits = await Promise.all(pods.map((p) => p.exited));
      await Promise.all(pods.map((p) => p.closed)); // all their output read
      const hosts = indices.map((i) => `${box!.job}-${i}`).join(',');
      for (const [k, pod] of pods.entries()) {
        expect(exits[k]!.code, output(pod)).toBe(0);
        expect(pod.stdout, output(pod)).toBe(
          `rank ${pod.index} world ${SIZE} sum ${(SIZE * (SIZE + 1)) / 2} hosts ${hosts} others []\n`,
        );
      }
    },
  );

  it(
    `Open MPI: pod 0 runs mpirun on the hostfile kubepeers wrote; one rank starts in each of ${SIZE} pods`,
    { timeout: 90_000 },
    async () => {
      const program = compileMpi('mpicc.openmpi');
      const { b, launcherPod, workers, code, agentLog } = await mpiJob(
        '--write-hostfile',
        (hostfile, agent) => [
          'mpirun.openmpi',
          '--allow-run-as-root',
          '--hostfile',
          hostfile,
          '--mca',
          'plm_rsh_agent',
          agent,
          '--mca',
          'pml',
          'ob1',
          '--mca',
          'btl',
          'tcp,self',
          '--mca',
          'btl_tcp_if_include',
          'eth0',
          '--mca',
          'oob_tcp_if_include',
          'eth0',
          program,
        ],
      );
      expectOneRankPerPod(b, launcherPod, code);
      expectAgentEntered(agentLog, workers);
      for (const w of workers) expect(w.stderr, output(w)).toContain(`released: pod ${w.index} of ${SIZE}`);
    },
  );

  it(
    `MPICH: pod 0 runs mpiexec -f on the MPICH hostfile kubepeers wrote; one rank starts in each of ${SIZE} pods`,
    { timeout: 90_000 },
    async () => {
      const program = compileMpi('mpicc.mpich');
      const { b, launcherPod, workers, code, agentLog } = await mpiJob(
        '--write-mpich-hostfile',
        // hydra's proxies call back to the launcher by its short hostname (`example-job-0`), which
        // the pods' search list cannot resolve (as in Kubernetes): -localhost names it by its FQDN.
        (hostfile, agent) => [
          'sh',
          '-c',
          'exec mpiexec.mpich -localhost "$(hostname -f)" -f "$0" -launcher-exec "$1" "$2"',
          hostfile,
          agent,
          program,
        ],
      );
      expectOneRankPerPod(b, launcherPod, code);
      expectAgentEntered(agentLog, workers);
      for (const w of workers) expect(w.stderr, output(w)).toContain(`released: pod ${w.index} of ${SIZE}`);
    },
  );
});
