import { afterEach, describe, expect, it } from 'vitest';
import {
  AbortedError,
  createMetrics,
  TimeoutError,
  waitForPeers,
  type PeersResult,
  type Progress,
} from '../src/index.js';
import { knotJobs } from './helpers/knot-jobs.js';
import { podOptions, type JobSpec } from './helpers/pods.js';

// Each job gets its own 127.0.<n>.0/24 block.
const jobs = knotJobs('job', (n, i) => `127.0.${n}.${10 + i}`);

const ready = (spec: JobSpec, i: number): Promise<void> =>
  jobs.knot.markReady(`${spec.job}-${i}`, spec.svc, spec.ns, spec.ip(i));
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

/**
 * The timeout names `index` first with `reason`; any other entry is a pod of the same test whose own
 * timeout fired a moment earlier (it gave up and left), never another cause.
 */
function expectCause(err: unknown, index: number, reason: string, detail: string): void {
  expect(err).toBeInstanceOf(TimeoutError);
  const { missing } = err as TimeoutError;
  expect(missing[0]).toMatchObject({ index, reason, detail: expect.stringContaining(detail) });
  for (const m of missing.slice(1)) expect(['gave-up', 'unconfirmed']).toContain(m.reason);
}

describe('waitForPeers against knotd', () => {
  const pending: Promise<unknown>[] = [];
  afterEach(async () => {
    await Promise.allSettled(pending.splice(0));
  });

  it('releases 12 pods with the full roster when their records appear at staggered times', async () => {
    const spec = await jobs.newJob(12);
    const progress: Progress[][] = Array.from({ length: spec.size }, () => []);
    const metrics = [...Array(spec.size).keys()].map(() => createMetrics());
    const options = await Promise.all(
      [...Array(spec.size).keys()].map((i) =>
        podOptions(jobs.dir, spec, i, {
          timeoutMs: 20_000,
          onProgress: (p) => progress[i]!.push(p),
          metrics: metrics[i]!,
        }),
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
    // Each pod counted what it did: the coordinator its Service polls (NXDOMAIN until the first Ready) and
    // every name check; a mesh pod a handshake with each of its 11 peers (either side may have opened it).
    metrics.forEach((m, i) => {
      expect(m.releaseMs).toBeGreaterThan(0);
      expect(m.releaseMs).toBeLessThanOrEqual(results[i]!.elapsedMs + 1);
      expect(m.dnsQueries.ok).toBeGreaterThan(0);
      expect(m.handshakes.ok).toBeGreaterThanOrEqual(spec.size - 1);
    });
    expect(metrics[0]!.dnsQueries.ok).toBeGreaterThanOrEqual(spec.size - 1);
    for (const p of progress) {
      expect(p.at(-1)).toMatchObject({ ready: spec.size - 1, total: spec.size - 1, missing: [] });
      // No run id and no secret: said once, on the first report.
      expect(p[0]!.warning).toMatch(/^no run id and no secret: any pod that knows/);
      expect(p.slice(1).filter((e) => e.warning !== undefined)).toEqual([]);
    }
  });

  it('says nothing about scope when the run has a run id', async () => {
    const spec = await jobs.newJob(2);
    const progress: Progress[] = [];
    const options = await Promise.all(
      [0, 1].map((i) =>
        podOptions(jobs.dir, spec, i, { runId: 'uid-7', onProgress: (p) => progress.push(p) }),
      ),
    );
    for (const i of [0, 1]) await ready(spec, i);
    await Promise.all(options.map((o) => waitForPeers(o)));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.filter((p) => p.warning !== undefined)).toEqual([]);
  });
});

describe('waitForPeers failures and faults', () => {
  const pending: Promise<unknown>[] = [];
  afterEach(async () => {
    await Promise.allSettled(pending.splice(0));
  });

  it('times out naming the peer that never appeared in the Service', async () => {
    const spec = await jobs.newJob(6);
    const options = await Promise.all(
      [0, 1, 2, 3, 4].map((i) => podOptions(jobs.dir, spec, i, { timeoutMs: 2500, retryMaxDelayMs: 400 })),
    );
    const started = performance.now();
    const waits = options.map((o) => waitForPeers(o));
    pending.push(...waits);
    for (let i = 0; i < 5; i++) await ready(spec, i);
    const errors = await Promise.all(
      waits.map((w) =>
        w.then(
          () => undefined,
          (e: unknown) => e,
        ),
      ),
    );
    expect(performance.now() - started).toBeGreaterThanOrEqual(2400);
    for (const err of errors) {
      expect(err).toBeInstanceOf(TimeoutError);
      const t = err as TimeoutError;
      expect(t.code).toBe('ERR_KUBEPEERS_TIMEOUT');
      // The cause comes first; pods whose own timeout fired a moment earlier are listed after it.
      // Its name is never asked for: nothing ever said it exists (a cache would keep the NXDOMAIN).
      expect(t.missing[0]).toEqual({
        index: 5,
        fqdn: `${spec.job}-5.${spec.svc}.ns1.svc.cluster.local.`,
        reason: 'not-seen',
        detail: expect.stringMatching(/never showed up in svc\d+\.ns1|coordinator has not seen it/),
      });
      // The coordinator lists the members that were waiting on it after the cause.
      expect(
        t.missing.slice(1).every((m) => ['gave-up', 'unconfirmed'].includes(m.reason) && m.index < 5),
      ).toBe(true);
      expect(t.message).toContain(`${spec.job}-5.${spec.svc}.ns1.svc.cluster.local.`);
      expect(t.message).toContain('2500 ms');
    }
  });

  it('a running pod that never becomes Ready: the others miss it, it learns it is not in DNS itself', async () => {
    const spec = await jobs.newJob(4);
    // Index 3 gives up first, so what it reports is not disturbed by the others leaving.
    const options = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        podOptions(jobs.dir, spec, i, { timeoutMs: i === 3 ? 1500 : 2500, retryMaxDelayMs: 400 }),
      ),
    );
    const waits = options.map((o) => waitForPeers(o));
    pending.push(...waits);
    for (let i = 0; i < 3; i++) await ready(spec, i);
    const errors = (await Promise.all(
      waits.map((w) =>
        w.then(
          () => undefined,
          (e: unknown) => e,
        ),
      ),
    )) as TimeoutError[];
    // The coordinator holds its connection but never saw its address in the Service; the others hear of
    // it from the coordinator only.
    expectCause(errors[0], 3, 'not-seen', `connected from ${spec.ip(3)}, which is not in svc`);
    for (const err of errors.slice(1, 3)) expectCause(err, 3, 'not-seen', 'coordinator has not seen it');
    expect(errors[3]!.missing.map((m) => [m.index, m.reason])).toEqual([[0, 'unconfirmed']]);
    expect(errors[3]!.message).toContain(`own address ${spec.ip(3)} never appeared`);
    expect(errors[3]!.message).toContain('publishNotReadyAddresses');
  });

  it('rejects promptly with AbortedError when the signal aborts', async () => {
    const spec = await jobs.newJob(3);
    const ac = new AbortController();
    const wait = waitForPeers(await podOptions(jobs.dir, spec, 0, { signal: ac.signal }));
    pending.push(wait);
    await sleep(100);
    const started = performance.now();
    ac.abort(new Error('shutting down'));
    const err = await wait.catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(500);
    expect(err).toBeInstanceOf(AbortedError);
    expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_ABORTED', cause: new Error('shutting down') });
  });

  it("does not count a stale record that points at another job's responder", async () => {
    const spec = await jobs.newJob(4);
    const other: JobSpec = {
      ...spec,
      job: `${spec.job}x`,
      size: 2,
      ip: (i) => `127.0.${jobs.count}.${50 + i}`,
    };
    const ac = new AbortController();
    const stranger = waitForPeers(await podOptions(jobs.dir, other, 0, { signal: ac.signal }));
    pending.push(stranger);

    // Phase 1: the name of index 3 points at the stranger: nobody counts it.
    const short = await Promise.all(
      [0, 1, 2, 3].map((i) => podOptions(jobs.dir, spec, i, { timeoutMs: 2000, retryMaxDelayMs: 400 })),
    );
    const first = short.map((o) => waitForPeers(o));
    pending.push(...first);
    for (let i = 0; i < 3; i++) await ready(spec, i);
    await jobs.knot.markReady(`${spec.job}-3`, spec.svc, spec.ns, other.ip(0));
    const errors = (await Promise.all(
      first.map((w) =>
        w.then(
          () => undefined,
          (e: unknown) => e,
        ),
      ),
    )) as TimeoutError[];
    // Once an address in the Service proved to be someone else, the coordinator asks the names of the
    // members connected from addresses it does not list: index 3's name points there.
    expectCause(errors[0], 3, 'wrong-identity', `resolves to ${other.ip(0)}`);
    expect(errors[0]!.message).toContain(
      `did not prove to be a member:\n  ${other.ip(0)}: handshake with ${other.ip(0)}: mismatch: it is not a member of this run`,
    );
    // The others hear of members from the coordinator only.
    for (const err of errors.slice(1, 3)) expectCause(err, 3, 'not-seen', 'coordinator has not seen it');

    // Phase 2: the record is corrected; everyone passes with the real address.
    await jobs.knot.markNotReady(`${spec.job}-3`, spec.svc, spec.ns, other.ip(0));
    await ready(spec, 3);
    const options = await Promise.all(
      [0, 1, 2, 3].map((i) => podOptions(jobs.dir, spec, i, { timeoutMs: 10_000 })),
    );
    const results = await Promise.all(options.map((o) => waitForPeers(o)));
    results.forEach((r, i) => expectRoster(r, spec, i));
    ac.abort();
  });

  it('a pod replaced by a new process at a new address before the barrier completes: everyone gets the new address', async () => {
    const spec = await jobs.newJob(4);
    const options = await Promise.all(
      [0, 1, 2, 3].map((i) => podOptions(jobs.dir, spec, i, { timeoutMs: 15_000 })),
    );
    const killer = new AbortController();
    options[2] = { ...options[2], signal: killer.signal };
    const waits = options.map((o) => waitForPeers(o));
    pending.push(...waits);
    for (const i of [0, 1, 2]) await ready(spec, i);
    await sleep(500); // 0, 1, 2 have verified one another; 3 is not Ready yet

    // Index 2 dies and comes back elsewhere, as a replaced pod of an Indexed Job does.
    killer.abort();
    await expect(waits[2]).rejects.toMatchObject({ code: 'ERR_KUBEPEERS_ABORTED' });
    await jobs.knot.markNotReady(`${spec.job}-2`, spec.svc, spec.ns, spec.ip(2));
    const moved: JobSpec = { ...spec, ip: (i) => (i === 2 ? `127.0.${jobs.count}.99` : spec.ip(i)) };
    const replacement = waitForPeers(await podOptions(jobs.dir, moved, 2, { timeoutMs: 15_000 }));
    await ready(moved, 2);
    await ready(spec, 3);
    const results = await Promise.all([waits[0]!, waits[1]!, replacement, waits[3]!]);
    results.forEach((r) => expect(r.peers[2]!.ip).toBe(moved.ip(2)));
    results.forEach((r, k) => expectRoster(r, moved, k));
  });

  it('keeps waiting while the DNS server is down and passes after it returns', async () => {
    const spec = await jobs.newJob(6);
    const options = await Promise.all(
      [...Array(6).keys()].map((i) =>
        podOptions(jobs.dir, spec, i, { timeoutMs: 20_000, dnsTimeoutMs: 200 }),
      ),
    );
    const waits = options.map((o) => waitForPeers(o));
    pending.push(...waits);
    for (const i of [0, 1, 2]) await ready(spec, i);
    await sleep(300);
    await jobs.knot.halt();
    await sleep(2000);
    await jobs.knot.run();
    for (const i of [3, 4, 5]) await ready(spec, i);
    const results = await Promise.all(waits);
    results.forEach((r, i) => expectRoster(r, spec, i));
  });

  it('a late pod passes after everyone else was released, thanks to the lingering responders', async () => {
    const spec = await jobs.newJob(3);
    const lingering = [0, 1, 2].map(() => new AbortController());
    const options = await Promise.all(
      [0, 1, 2].map((i) => podOptions(jobs.dir, spec, i, { lingerMs: 30_000, signal: lingering[i]!.signal })),
    );
    for (const i of [0, 1, 2]) await ready(spec, i);
    const results = await Promise.all(options.map((o) => waitForPeers(o)));
    results.forEach((r, i) => expectRoster(r, spec, i));
    // Index 1's process goes away (aborting after release closes its lingering responder) and a new
    // one starts with the same name and address: 0 and 2 have moved on but still answer, as released.
    lingering[1]!.abort();
    await sleep(50);
    const again = await waitForPeers({
      ...options[1]!,
      signal: AbortSignal.timeout(10_000),
      timeoutMs: 5000,
    });
    expectRoster(again, spec, 1);
    for (const ac of lingering) ac.abort();
  });
});

describe('process lifetime', () => {
  it('a process that used the library exits by itself after release and after a timeout', async () => {
    const { spawn } = await import('node:child_process');
    const spec = await jobs.newJob(3);
    for (const i of [0, 1]) await ready(spec, i);
    const run = async (list: object[]): Promise<{ code: number | null; lines: unknown[] }> => {
      const child = spawn(process.execPath, ['test/fixtures/pods-in-one-process.mjs', JSON.stringify(list)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.on('exit', (c) => {
          clearTimeout(kill);
          resolve(c);
        });
      });
      return {
        code,
        lines: out
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as unknown),
      };
    };
    const strip = ({ onProgress: _o, signal: _s, ...rest }: Record<string, unknown>): object => rest;
    // Three pods, default linger (10 min): the lingering responders must not keep the process alive.
    await ready(spec, 2);
    const all = await Promise.all([0, 1, 2].map((i) => podOptions(jobs.dir, spec, i, { lingerMs: 600_000 })));
    const released = await run(all.map((o) => strip(o as Record<string, unknown>)));
    expect(released).toEqual({ code: 0, lines: [0, 1, 2].map((i) => ({ ok: true, index: i, peers: 3 })) });

    const spec2 = await jobs.newJob(3);
    for (const i of [0, 1]) await ready(spec2, i);
    const two = await Promise.all([0, 1].map((i) => podOptions(jobs.dir, spec2, i, { timeoutMs: 1000 })));
    const timedOut = await run(two.map((o) => strip(o as Record<string, unknown>)));
    expect(timedOut.code).toBe(0);
    expect(timedOut.lines).toEqual(
      [0, 1].map(() => expect.objectContaining({ ok: false, code: 'ERR_KUBEPEERS_TIMEOUT' })),
    );
  });
});
