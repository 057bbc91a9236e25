/**
 * End-to-end: the Kubernetes job family around Indexed Jobs in the cluster in a box. A JobSet-shaped run
 * (two replicated jobs of two child Jobs each) whose pods learn everything from their hostname,
 * /etc/hosts, the downward API labels file and one option (the replicated jobs' sizes), with the Service
 * publishing records at Ready, and with publishNotReadyAddresses (records at pod creation), as JobSet
 * creates it.
 */
import { describe, expect, it } from 'vitest';
import { ClusterInABox, type BoxJobSet, type Pod, type PodSpec } from './cluster.js';
import { destroyBoxAfterEach } from './teardown.js';

let box: ClusterInABox | undefined;

destroyBoxAfterEach(() => {
  const b = box;
  box = undefined;
  return b;
});

/** Every pod's exit, once its output has been read to the end too ('exit' can come before the pipes end). */
async function finished(pods: Pod[]): Promise<Awaited<Pod['exited']>[]> {
  const exits = await Promise.all(pods.map((p) => p.exited));
  await Promise.all(pods.map((p) => p.closed));
  return exits;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until every pod has printed a progress line on stderr (it runs and is waiting at the barrier). */
async function waiting(pods: Pod[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const progress = /^kubepeers: \d+\/\d+ peers ready/m;
  while (!pods.every((p) => progress.test(p.stderr))) {
    const idle = pods.filter((p) => !progress.test(p.stderr));
    if (Date.now() > deadline)
      throw new Error(
        `no progress line within ${timeoutMs} ms from ${idle.map((p) => `${p.hostname} (stderr: ${p.stderr})`).join(', ')}`,
      );
    await sleep(50);
  }
}

/** No pod has been released: none printed a release line, none exited. */
function expectNoneReleased(pods: Pod[]): void {
  for (const p of pods) {
    expect(p.process.exitCode, `${p.hostname}: ${p.stderr}`).toBeNull();
    expect(p.stdout, `${p.hostname} stdout`).not.toMatch(/released/);
    expect(p.stderr, `${p.hostname} stderr`).not.toMatch(/kubepeers: released/);
  }
}

/** driver: 2 child Jobs of 2 pods, workers: 2 child Jobs of 3 pods (10 pods). */
const LAYOUT = 'driver:2x2,workers:2x3';
const jobSet = (extra: Partial<BoxJobSet> = {}): BoxJobSet => ({
  name: 'train',
  replicatedJobs: [
    { name: 'driver', replicas: 2, podsPerJob: 2 },
    { name: 'workers', replicas: 2, podsPerJob: 3 },
  ],
  ...extra,
});
const SIZE = 10;

/** `kubepeers wait -- node workload.mjs` with the one option Kubernetes cannot give, nothing else. */
function workload(env: Record<string, string> = {}): PodSpec {
  const node = process.execPath;
  return {
    command: [
      node,
      'node_modules/kubepeers/dist/bin.js',
      'wait',
      '--',
      node,
      'example-workload/workload.mjs',
    ],
    env: { KUBEPEERS_REPLICATED_JOBS: LAYOUT, ...env },
  };
}

/** What a pod printed: its rank, the coordinator, and each peer reached (fqdn -> ip by rank). */
function report(pod: Pod): { rank: number; coordinator: string; reached: Map<number, [string, string]> } {
  const released = /^pod (\d+) of (\d+) released after \d+ ms; coordinator (\S+)$/m.exec(pod.stdout);
  expect(released, `pod ${pod.hostname} stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`).not.toBeNull();
  expect(Number(released![2])).toBe(SIZE);
  const reached = new Map<number, [string, string]>();
  for (const m of pod.stdout.matchAll(/^reached (\S+) \(index (\d+)\) at ([\d.]+):\d+$/gm))
    reached.set(Number(m[2]), [m[1]!, m[3]!]);
  return { rank: Number(released![1]), coordinator: released![3]!, reached };
}

/**
 * Every pod released with the whole JobSet: ranks 0..SIZE-1 each once, every peer reached at the address
 * of the pod with that name, the same coordinator everywhere, and torch's env agreeing with it.
 */
function expectJobSetReleased(b: ClusterInABox, pods: Pod[], coordinatorHost: string): Map<string, number> {
  const byHost = new Map(pods.map((p) => [p.hostname, p]));
  const rankOf = new Map<string, number>();
  const fqdn = (host: string): string => `${host}.${b.svc}.${b.namespace}.svc.cluster.local`;
  for (const pod of pods) {
    const r = report(pod);
    rankOf.set(pod.hostname, r.rank);
    expect(r.coordinator).toBe(fqdn(coordinatorHost));
    expect(r.reached.size).toBe(SIZE - 1);
    for (const [, [name, ip]] of r.reached) {
      const host = name.split('.')[0]!;
      expect(name).toBe(fqdn(host));
      expect(ip, `${pod.hostname} reached ${name}`).toBe(byHost.get(host)!.ip);
    }
    expect(pod.stdout).toContain(
      `torch: MASTER_ADDR=${fqdn(coordinatorHost)} RANK=${r.rank} WORLD_SIZE=${SIZE}`,
    );
  }
  expect([...rankOf.values()].sort((x, y) => x - y)).toEqual([...Array(SIZE).keys()]);
  // Every pod agrees on who is who.
  for (const pod of pods)
    for (const [rank, [name]] of report(pod).reached) expect(rankOf.get(name.split('.')[0]!)).toBe(rank);
  expect(rankOf.get(coordinatorHost)).toBe(0);
  return rankOf;
}

describe('JobSet in the box', () => {
  it('two replicated jobs of two child Jobs each, records at Ready: ranks in spec order, all released', async () => {
    box = await ClusterInABox.create({ jobSet: jobSet() });
    expect(box.svc).toBe('train'); // JobSet's default subdomain: its name
    const pods = await box.startPods([...Array(SIZE).keys()], workload());
    expect(pods.map((p) => p.hostname)).toEqual([
      'train-driver-0-0',
      'train-driver-0-1',
      'train-driver-1-0',
      'train-driver-1-1',
      'train-workers-0-0',
      'train-workers-0-1',
      'train-workers-0-2',
      'train-workers-1-0',
      'train-workers-1-1',
      'train-workers-1-2',
    ]);
    // Ready in reverse order, the coordinator last: nobody is released before it.
    for (let i = SIZE - 1; i >= 1; i--) {
      await box.markReady(i);
      await sleep(100);
    }
    await waiting(pods);
    await sleep(1000);
    expectNoneReleased(pods);
    await box.markReady(0);
    const exits = await finished(pods);
    expect(exits.map((e) => e.code)).toEqual(pods.map(() => 0));
    const rankOf = expectJobSetReleased(box, pods, 'train-driver-0-0');
    // No coordinator in the spec: rank = place in spec order, job index, pod index.
    for (const p of pods) expect(rankOf.get(p.hostname)).toBe(p.index);
    for (const p of pods)
      expect(p.stderr).toContain(`kubepeers: released: pod ${rankOf.get(p.hostname)} of ${SIZE} `);
  });

  it('publishNotReadyAddresses: names resolve before programs run; only the handshake releases; spec.coordinator is rank 0', async () => {
    box = await ClusterInABox.create({
      jobSet: jobSet({
        subdomain: 'mesh',
        coordinator: { replicatedJob: 'workers', jobIndex: 1, podIndex: 0 },
      }),
      publishNotReadyAddresses: true,
    });
    const prepared = await box.preparePods([...Array(SIZE).keys()]);
    // Every name and the Service's whole set resolve already, though no program runs anywhere.
    const late = prepared.find((p) => p.hostname === 'train-workers-1-2')!;
    const answer = await box.dig(prepared[0]!.netns, `${late.hostname}.mesh.default.svc.cluster.local`);
    expect(answer).toEqual([late.ip]);
    const service = await box.dig(prepared[0]!.netns, 'mesh.default.svc.cluster.local');
    expect(service.sort()).toEqual(prepared.map((p) => p.ip).sort());

    // All but two pods start; the two (one of them the coordinator) come 2 s later.
    const coordinator = prepared.find((p) => p.hostname === 'train-workers-1-0')!;
    const first = box.launchPods(
      prepared.filter((p) => p !== coordinator && p !== late),
      workload(),
    );
    // Each runs and waits (its first progress line), and 2 s on none is released.
    await waiting(first);
    await sleep(2000);
    expectNoneReleased(first);
    const rest = box.launchPods([coordinator, late], workload());
    const pods = [...first, ...rest];
    const exits = await finished(pods);
    expect(exits.map((e) => e.code)).toEqual(pods.map(() => 0));
    const rankOf = expectJobSetReleased(box, pods, 'train-workers-1-0');
    // The coordinator moved to the front; the others kept their order.
    expect(rankOf.get('train-driver-0-0')).toBe(1);
    expect(rankOf.get('train-workers-0-2')).toBe(7);
    expect(rankOf.get('train-workers-1-1')).toBe(8);
  });

  it('publishNotReadyAddresses, star: a killed pod stays listed, its replacement at a new address is the one released', async () => {
    box = await ClusterInABox.create({ jobSet: jobSet(), publishNotReadyAddresses: true });
    // A star: the coordinator finds members through the Service, which lists the dead address too.
    const star = workload({ KUBEPEERS_TOPOLOGY: 'star' });
    const pods = await box.startPods(
      [...Array(SIZE).keys()].filter((i) => i !== 6),
      star,
    );
    // Pod 6 (train-workers-0-2) starts and is killed at once: a terminating pod still listed.
    await box.startPods([6], { command: ['sleep', '30'] });
    const old = box.pod(6).ip;
    await box.kill(6);
    await sleep(1000);
    // The Service still lists the killed pod's address (the pod object is there until it is replaced).
    const listed = await box.dig(pods[0]!.netns, `${box.svc}.${box.namespace}.svc.cluster.local`);
    expect(listed).toContain(old);
    expectNoneReleased(pods);
    const replacement = await box.replace(6, star);
    expect(replacement.ip).not.toBe(old);
    const all = [...pods, replacement];
    const exits = await finished(all);
    expect(exits.map((e) => e.code)).toEqual(all.map(() => 0));
    expectJobSetReleased(box, all, 'train-driver-0-0');
  });
});

/** `kubepeers wait -- node workload.mjs` with no kubepeers setting at all. */
function bare(env: Record<string, string> = {}): PodSpec {
  const spec = workload(env);
  delete spec.env!.KUBEPEERS_REPLICATED_JOBS;
  return spec;
}

describe('LeaderWorkerSet in the box', () => {
  it('two groups behind one shared Service (not-ready addresses published): each group is its own barrier, from the LWS env alone', async () => {
    const size = 3;
    // Group g: leader vllm-g (worker 0), workers vllm-g-1, vllm-g-2 (box pod index 3g + w).
    const hostname = (i: number): string => {
      const g = Math.floor(i / size);
      const w = i % size;
      return w === 0 ? `vllm-${g}` : `vllm-${g}-${w}`;
    };
    box = await ClusterInABox.create({
      job: 'vllm',
      svc: 'vllm',
      publishNotReadyAddresses: true,
      indexedJob: false,
      hostname,
      podEnv: (i) => ({
        LWS_LEADER_ADDRESS: `vllm-${Math.floor(i / size)}.vllm.default`,
        LWS_GROUP_SIZE: String(size),
        LWS_WORKER_INDEX: String(i % size),
      }),
    });
    // Group 0 as a mesh; group 1 as a star, whose leader polls a Service that lists group 0's pods too.
    // Group 0's workers start first and wait for their leader: live kubepeers, in the shared Service, that
    // answer the handshake with the same worker indices as group 1's and must not pass as its members.
    const workers0 = await box.startPods([1, 2], bare());
    await waiting(workers0);
    const group1 = await box.startPods([3, 4, 5], bare({ KUBEPEERS_TOPOLOGY: 'star' }));
    const exits1 = await finished(group1);
    // Group 1 is released although group 0 is not whole: a group is the barrier.
    expect(exits1.map((e) => e.code)).toEqual([0, 0, 0]);
    expectNoneReleased(workers0);
    const group0 = [...(await box.startPods([0], bare())), ...workers0];
    group0.sort((a, b) => a.index - b.index);
    const exits0 = await finished(group0);
    expect(exits0.map((e) => e.code)).toEqual([0, 0, 0]);
    // Each roster (the peers reached) holds only the pods of its own group, below.
    for (const [g, pods] of [group0, group1].entries()) {
      const leader = `vllm-${g}.vllm.default.svc.cluster.local`;
      for (const pod of pods) {
        const worker = pod.index % size;
        expect(pod.stdout, pod.stderr).toMatch(
          new RegExp(
            `^pod ${worker} of ${size} released after \\d+ ms; coordinator ${leader.replace(/\./g, '\\.')}$`,
            'm',
          ),
        );
        const reached = [...pod.stdout.matchAll(/^reached (\S+) \(index (\d+)\) at ([\d.]+):\d+$/gm)];
        expect(reached).toHaveLength(size - 1);
        for (const m of reached) {
          const peer = box.pod(g * size + Number(m[2]));
          expect(m[1]).toBe(`${peer.hostname}.vllm.default.svc.cluster.local`);
          expect(m[3]).toBe(peer.ip);
        }
      }
    }
  });
});

describe('Kubeflow Trainer v2 TrainJob in the box', () => {
  it('PET_NNODES, PET_NODE_RANK and PET_MASTER_ADDR and the JobSet labels are all kubepeers needs', async () => {
    const nodes = 4;
    box = await ClusterInABox.create({
      jobSet: { name: 'llama', replicatedJobs: [{ name: 'node', replicas: 1, podsPerJob: nodes }] },
      // What the Trainer's torch runtime sets on each node.
      podEnv: (i) => ({
        PET_NNODES: String(nodes),
        PET_NODE_RANK: String(i),
        PET_MASTER_ADDR: 'llama-node-0-0.llama',
        PET_MASTER_PORT: '29500',
        PET_NPROC_PER_NODE: '2',
      }),
    });
    // The command prints the Trainer's PET_MASTER_PORT and PET_NPROC_PER_NODE as it gets them.
    const spec = bare();
    const node = spec.command[spec.command.indexOf('--') + 1]!;
    spec.command = [
      ...spec.command.slice(0, spec.command.indexOf('--') + 1),
      'sh',
      '-c',
      'echo "pet: PET_MASTER_PORT=$PET_MASTER_PORT PET_NPROC_PER_NODE=$PET_NPROC_PER_NODE"; exec "$0" example-workload/workload.mjs',
      node,
    ];
    const pods = await box.startPods([...Array(nodes).keys()], spec);
    await box.markReady(...[...Array(nodes).keys()].reverse());
    const exits = await finished(pods);
    expect(exits.map((e) => e.code)).toEqual(pods.map(() => 0));
    for (const pod of pods) {
      expect(pod.hostname).toBe(`llama-node-0-${pod.index}`);
      // They reach the command unchanged.
      expect(pod.stdout, pod.stderr).toMatch(/^pet: PET_MASTER_PORT=29500 PET_NPROC_PER_NODE=2$/m);
      expect(pod.stdout, pod.stderr).toContain(
        `torch: MASTER_ADDR=llama-node-0-0.llama.default.svc.cluster.local RANK=${pod.index} WORLD_SIZE=${nodes}`,
      );
      const reached = [...pod.stdout.matchAll(/^reached (\S+) \(index (\d+)\) at ([\d.]+):\d+$/gm)];
      expect(reached.map((m) => [m[1], m[3]])).toEqual(
        pods.filter((p) => p !== pod).map((p) => [`${p.hostname}.llama.default.svc.cluster.local`, p.ip]),
      );
    }
  });

  it('a pod whose PET_NODE_RANK contradicts its place exits 2 naming both values, before any network I/O', async () => {
    box = await ClusterInABox.create({
      jobSet: { name: 'llama', replicatedJobs: [{ name: 'node', replicas: 1, podsPerJob: 2 }] },
      podEnv: (i) => ({
        PET_NNODES: '2',
        PET_NODE_RANK: String(1 - i),
        PET_MASTER_ADDR: 'llama-node-0-0.llama',
      }),
    });
    const [pod] = await box.startPods([0], bare());
    const [exit] = await finished([pod!]);
    expect(exit!.code).toBe(2);
    expect(pod!.stderr).toContain("expected 1, this node's rank in env PET_NODE_RANK (Kubeflow Trainer)");
    expect(pod!.stderr).toContain('index is 0');
  });
});
