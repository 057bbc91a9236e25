import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError, TimeoutError, waitForPeers, type PeersResult, type Progress } from '../src/index.js';
import { Knot, freePort } from './helpers/knot.js';
import { podOptions, tempDir, type JobSpec } from './helpers/pods.js';

let knot: Knot;
let dir: string;
let cleanup: () => Promise<void>;
let jobCounter = 0;

beforeAll(async () => {
  knot = await Knot.start({ soaMinimum: 2, ttl: 5 });
  ({ dir, cleanup } = await tempDir());
});
afterAll(async () => {
  await knot?.stop();
  await cleanup?.();
});

/** A fresh job (own names, own 127.0.x.0/24 block, own port) for each test so tests cannot see each other. */
async function newJob(size: number): Promise<JobSpec> {
  jobCounter++;
  return {
    job: `job${jobCounter}`,
    svc: `svc${jobCounter}`,
    ns: 'ns1',
    size,
    ip: (i) => `127.0.${jobCounter}.${10 + i}`,
    port: await freePort(),
    dns: { address: knot.address, port: knot.port },
  };
}

const ready = (spec: JobSpec, i: number): Promise<void> => knot.markReady(`${spec.job}-${i}`, spec.svc, spec.ns, spec.ip(i));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function expectRoster(result: PeersResult, spec: JobSpec, i: number): void {
  expect(result.index).toBe(i);
  expect(result.size).toBe(spec.size);
  expect(result.jobName).toBe(spec.job);
  expect(result.subdomain).toBe(spec.svc);
  expect(result.namespace).toBe(spec.ns);
  expect(result.peers.map((p) => p.index)).toEqual([...Array(spec.size).keys()]);
  for (const p of result.peers) {
    expect(p).toEqual({
      index: p.index,
      hostname: `${spec.job}-${p.index}`,
      fqdn: `${spec.job}-${p.index}.${spec.svc}.${spec.ns}.svc.cluster.local`,
      ip: spec.ip(p.index),
      port: spec.port,
    });
  }
  expect(result.coordinator).toEqual(result.peers[0]);
  expect(result.self).toEqual(result.peers[i]);
}

describe('waitForPeers against knotd', () => {
  const pending: Promise<unknown>[] = [];
  afterEach(async () => {
    await Promise.allSettled(pending.splice(0));
  });

  it('releases 12 pods with the full roster when their records appear at staggered times', async () => {
    const spec = await newJob(12);
    const progress: Progress[][] = Array.from({ length: spec.size }, () => []);
    const options = await Promise.all(
      [...Array(spec.size).keys()].map((i) =>
        podOptions(dir, spec, i, { timeoutMs: 20_000, onProgress: (p) => progress[i]!.push(p) }),
      ),
    );
    const waits = options.map((o) => waitForPeers(o));
    pending.push(...waits);
    for (let i = 0; i < spec.size; i++) {
      await ready(spec, i);
      await sleep(60);
    }
    const results = await Promise.all(waits);
    results.forEach((r, i) => expectRoster(r, spec, i));
    for (const p of progress) {
      expect(p.at(-1)).toMatchObject({ ready: spec.size - 1, total: spec.size - 1, missing: [] });
    }
  });
});
