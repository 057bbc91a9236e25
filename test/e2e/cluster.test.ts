/**
 * End-to-end: example-workload in pods of the cluster in a box (network namespaces, knotd, kubelet-like
 * files), as root. Each test builds its own box and checks afterwards that nothing is left behind.
 */
import { describe, expect, it } from 'vitest';
import { ClusterInABox, type Pod, type PodSpec } from './cluster.js';
import { destroyBoxAfterEach } from './teardown.js';

let box: ClusterInABox | undefined;

destroyBoxAfterEach(() => {
  const b = box;
  box = undefined;
  return b;
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The example workload as the manifests run it: `kubepeers wait -- node workload.mjs`, or with `library`
 * the workload calling waitForPeers() itself.
 */
function workload(size: number, env: Record<string, string> = {}, library = false): PodSpec {
  const node = process.execPath;
  const program = [node, 'example-workload/workload.mjs'];
  return {
    command: library ? program : [node, 'node_modules/kubepeers/dist/bin.js', 'wait', '--', ...program],
    env: { KUBEPEERS_SIZE: String(size), ...env },
  };
}

/** The peers a pod printed as reached: index -> ip. */
function reached(pod: Pod): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of pod.stdout.matchAll(/^reached (\S+) \(index (\d+)\) at ([\d.]+):\d+$/gm)) {
    out.set(Number(m[2]), m[3]!);
  }
  return out;
}

function expectReleasedWithRoster(b: ClusterInABox, pods: Pod[], size: number, viaCli = true): void {
  const coordinator = b.fqdn(0);
  for (const pod of pods) {
    const peers = reached(pod);
    expect(peers.size, `pod ${pod.index} stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`).toBe(size - 1);
    for (const [index, ip] of peers) expect(ip).toBe(b.pod(index).ip);
    expect(pod.stdout).toContain(`pod ${pod.index} of ${size} released`);
    expect(pod.stdout).toContain(`coordinator ${coordinator}`);
    if (viaCli) {
      expect(pod.stdout).toContain(`torch: MASTER_ADDR=${coordinator} RANK=${pod.index} WORLD_SIZE=${size}`);
      expect(pod.stderr).toContain(`kubepeers: released: pod ${pod.index} of ${size} `);
    }
  }
}

describe('cluster in a box', () => {
  it('16 pods with staggered Ready times are all released with the full, correct roster and exit 0', async () => {
    box = await ClusterInABox.create();
    const size = 16;
    const pods = await box.startPods([...Array(size).keys()], workload(size));
    for (let i = 0; i < size; i++) {
      await box.markReady(i);
      await sleep(120);
    }
    const exits = await Promise.all(pods.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual(pods.map(() => 0));
    expectReleasedWithRoster(box, pods, size);
    const kernel = await box.kernelCounters();
    expect(kernel.offenders).toEqual([]);
  });

  it('star topology behind a negative-caching resolver: cached NXDOMAIN delays, never strands, the release', async () => {
    box = await ClusterInABox.create({ cache: true });
    const size = 8;
    const pods = await box.startPods([...Array(size).keys()], workload(size, { KUBEPEERS_TOPOLOGY: 'star' }));
    await sleep(1500); // every pod has asked for names that do not exist yet: the resolver caches NXDOMAIN
    await box.markReady(...[...Array(size).keys()]);
    const exits = await Promise.all(pods.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual(pods.map(() => 0));
    expectReleasedWithRoster(box, pods, size);
    for (const pod of pods) expect(pod.stderr).toContain('topology star');
    const asked = (await box.cacheCounters())!;
    const authoritative = await box.dnsCounters();
    expect(asked.byRcode.NXDOMAIN).toBeGreaterThan(0);
    expect(asked.cacheHits).toBeGreaterThan(0);
    expect(authoritative.total).toBeLessThan(asked.total);
  });

  it('a pod killed and replaced at a new address before the barrier completes: everyone gets the new address', async () => {
    box = await ClusterInABox.create();
    const size = 8;
    const pods = await box.startPods([...Array(size).keys()], workload(size));
    await box.markReady(0, 1, 2, 3, 4, 5, 6);
    await sleep(1500); // 0..6 have found one another; 7 is not Ready
    const old = box.pod(3).ip;
    const replacement = await box.replace(3, workload(size));
    expect(replacement.ip).not.toBe(old);
    await box.markReady(3);
    await sleep(300);
    await box.markReady(7);
    const live = pods.filter((p) => p.index !== 3).concat(replacement);
    const exits = await Promise.all(live.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual(live.map(() => 0));
    expectReleasedWithRoster(box, live, size);
    for (const p of live) expect(reached(p).get(3) ?? replacement.ip).toBe(replacement.ip);
    for (const p of live) expect(p.stdout).not.toContain(old);
  });

  it('waits through several seconds of DNS outage and succeeds after the server returns', async () => {
    box = await ClusterInABox.create();
    const size = 8;
    const pods = await box.startPods([...Array(size).keys()], workload(size));
    await box.markReady(0, 1, 2, 3);
    await sleep(800);
    await box.dnsDown();
    await sleep(4000);
    await box.dnsUp();
    await box.markReady(4, 5, 6, 7);
    const exits = await Promise.all(pods.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual(pods.map(() => 0));
    expectReleasedWithRoster(box, pods, size);
  });

  it('one pod never becomes Ready: every other pod fails with the timeout naming it, and exits non-zero', async () => {
    box = await ClusterInABox.create();
    const size = 8;
    const timeoutMs = 6000;
    const started = performance.now();
    const pods = await box.startPods(
      [...Array(size).keys()],
      workload(size, { KUBEPEERS_TIMEOUT: `${timeoutMs}ms` }),
    );
    await box.markReady(0, 1, 2, 3, 4, 6, 7);
    const exits = await Promise.all(pods.map((p) => p.exited));
    for (const [k, pod] of pods.entries()) {
      expect(exits[k]!.code, pod.stderr).toBe(124);
      expect(exits[k]!.at - started).toBeLessThan(timeoutMs + 5000);
      expect(pod.stderr).toContain('ERR_KUBEPEERS_TIMEOUT');
    }
    const five = `${box.job}-5.${box.svc}.${box.namespace}.svc.cluster.local.`;
    // Listed first, as the cause: index 5, running but never listed in the Service. The coordinator holds
    // its connection; the others know it from the coordinator. If 5 gave up first, that follows.
    const ip5 = box.pod(5).ip.replace(/\./g, '\\.');
    const svc = `${box.svc}.${box.namespace}.svc.cluster.local.`.replace(/\./g, '\\.');
    const cause = new RegExp(
      `^  5 \\(${five.replace(/\./g, '\\.')}\\): not-seen: ` +
        `(connected from ${ip5}, which is not in ${svc} yet|the coordinator has not seen it in the Service yet)` +
        `(; then it stopped waiting \\(timeout\\) and disconnected from ${ip5})?$`,
    );
    for (const pod of pods.filter((p) => p.index !== 5)) {
      const first = /missing:\n(.*)\n/.exec(pod.stderr)?.[1] ?? '';
      expect(first, pod.stderr).toMatch(cause);
    }
    expect(box.pod(5).stderr).toContain(`own address ${box.pod(5).ip} never appeared`);
  });

  it('holds 64 pods without dropped packets (neighbour table, flooding, IPv6 noise)', async () => {
    box = await ClusterInABox.create();
    const size = 64;
    const pods = await box.startPods([...Array(size).keys()], workload(size, {}, true));
    for (let i = 0; i < size; i += 8) {
      await box.markReady(...[...Array(8).keys()].map((k) => i + k));
      await sleep(100);
    }
    const exits = await Promise.all(pods.map((p) => p.exited));
    expect(exits.map((e) => e.code)).toEqual(pods.map(() => 0));
    expectReleasedWithRoster(box, pods, size, false);
    const kernel = await box.kernelCounters();
    expect(kernel).toEqual({ UdpSndbufErrors: 0, IpOutDiscards: 0, UdpRcvbufErrors: 0, offenders: [] });
    const dns = await box.dnsCounters();
    expect(dns.byType.AAAA ?? 0).toBe(0); // IPv4 pods ask for A only
    expect(dns.total).toBeGreaterThan(size);
  });
});
