import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TimeoutError, waitForPeers, type PeersResult, type Progress } from '../src/index.js';
import { COORDINATOR_MAX_SOCKETS, MAX_HELD } from '../src/core/coordinator.js';
import { Knot, podRecords } from './helpers/knot.js';
import { knotJobs } from './helpers/knot-jobs.js';
import { hardNofile } from './helpers/limits.js';
import { podOptions, type JobSpec } from './helpers/pods.js';

// Each job gets its own 127.<100 + n>.x.y block (up to 62 500 pods).
const jobs = knotJobs('star', (n, i) => `127.${100 + n}.${Math.floor(i / 250)}.${1 + (i % 250)}`);

const records = (spec: JobSpec, indices: number[]): string[] =>
  indices.flatMap((i) => podRecords('add', `${spec.job}-${i}`, spec.svc, spec.ns, spec.ip(i)));
const ready = (spec: JobSpec, i: number): Promise<void> => jobs.knot.update(records(spec, [i]));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const star = { topology: 'star' as const };

function expectRoster(result: PeersResult, spec: JobSpec, i: number): void {
  expect(result).toMatchObject({ index: i, size: spec.size, jobName: spec.job, topology: 'star' });
  expect(result.peers.map((p) => [p.index, p.ip, p.fqdn])).toEqual(
    [...Array(spec.size).keys()].map((k) => [
      k,
      spec.ip(k),
      `${spec.job}-${k}.${spec.svc}.${spec.ns}.svc.cluster.local`,
    ]),
  );
  expect(result.self).toEqual(result.peers[i]);
}

describe('star topology', () => {
  const pending: Promise<unknown>[] = [];
  afterEach(async () => {
    await Promise.allSettled(pending.splice(0));
  });

  it('releases 10 pods through the coordinator, the coordinator Ready last', async () => {
    const spec = await jobs.newJob(10);
    const progress: Progress[] = [];
    const options = await Promise.all(
      [...Array(spec.size).keys()].map((i) =>
        podOptions(jobs.dir, spec, i, {
          ...star,
          timeoutMs: 20_000,
          ...(i === 0 ? { onProgress: (p: Progress) => progress.push(p) } : {}),
        }),
      ),
    );
    const waits = options.map((o) => waitForPeers(o));
    pending.push(...waits);
    for (let i = spec.size - 1; i >= 0; i--) {
      await ready(spec, i);
      await sleep(40);
    }
    const results = await Promise.all(waits);
    results.forEach((r, i) => expectRoster(r, spec, i));
    expect(progress.at(-1)).toMatchObject({ ready: 9, total: 9, missing: [] });
  });

  it('the coordinator times out naming who is missing and why; members say they wait on the coordinator', async () => {
    const spec = await jobs.newJob(5);
    // Index 3 never turns Ready; index 4 is listed in the Service but its name points at another address.
    await jobs.knot.update(records(spec, [0, 1, 2]));
    await jobs.knot.update([
      `update add ${spec.svc}.${spec.ns}.svc 5 A ${spec.ip(4)}`,
      `update add ${spec.job}-4.${spec.svc}.${spec.ns}.svc 5 A 127.9.9.9`,
    ]);
    const options = await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        podOptions(jobs.dir, spec, i, { ...star, timeoutMs: i === 0 ? 2000 : 3000, retryMaxDelayMs: 400 }),
      ),
    );
    const errors = (await Promise.all(
      options.map((o) =>
        waitForPeers(o).then(
          () => undefined,
          (e: unknown) => e,
        ),
      ),
    )) as TimeoutError[];
    for (const err of errors) expect(err).toBeInstanceOf(TimeoutError);
    expect(errors[0]!.missing).toEqual([
      // Connected, but never listed in the Service: its name is not asked for (a cache would keep the NXDOMAIN).
      expect.objectContaining({
        index: 3,
        reason: 'not-seen',
        detail: `connected from ${spec.ip(3)}, which is not in ${spec.svc}.${spec.ns}.svc.cluster.local. yet`,
      }),
      expect.objectContaining({
        index: 4,
        reason: 'wrong-identity',
        detail: expect.stringContaining(`resolves to 127.9.9.9 but index 4 connected from ${spec.ip(4)}`),
      }),
    ]);
    // Admitted members waited for the coordinator, which gave up first.
    for (const i of [1, 2]) {
      expect(errors[i]!.missing).toEqual([
        expect.objectContaining({ index: 0, reason: 'gave-up', detail: expect.stringContaining('timeout') }),
      ]);
    }
  });

  describe('a pod that turns Ready late is noticed without waiting out a negative TTL', () => {
    // NXDOMAIN answers that may be cached for 30 s: retries honouring them wait the retry cap (10 s).
    let knot: Knot;
    beforeAll(async () => {
      knot = await Knot.start({ soaMinimum: 30, ttl: 30 });
    });
    afterAll(async () => {
      await knot?.stop();
    });
    const setup = async (pollIntervalMs: number, readyFirst: number[]) => {
      const spec = { ...(await jobs.newJob(4)), dns: { address: knot.address, port: knot.port } };
      await knot.update(records(spec, readyFirst));
      const options = await Promise.all(
        [0, 1, 2, 3].map((i) =>
          podOptions(jobs.dir, spec, i, {
            ...star,
            timeoutMs: 25_000,
            pollIntervalMs,
            // The defaults: a negative answer is honoured up to 10 s.
            retryMinDelayMs: 250,
            retryMaxDelayMs: 10_000,
          }),
        ),
      );
      const released: number[] = [];
      const waits = options.map((o) => waitForPeers(o).then((r) => (released.push(performance.now()), r)));
      pending.push(...waits);
      return { spec, waits, released };
    };
    const readyAt = async (spec: JobSpec, indices: number[]): Promise<number> => {
      await knot.update(records(spec, indices));
      return performance.now();
    };

    it('members hear that a coordinator Ready last can be verified from the coordinator, not by waiting out NXDOMAIN', async () => {
      const { spec, waits, released } = await setup(300, [1, 2, 3]);
      await sleep(1500); // every member has had NXDOMAIN (30 s) for the coordinator's name at start
      const at = await readyAt(spec, [0]);
      (await Promise.all(waits)).forEach((r, i) => expectRoster(r, spec, i));
      // Within a few poll intervals; the negative TTL and backoff would have meant 10 s.
      expect(Math.max(...released) - at).toBeLessThan(5000);
    });

    it("the coordinator asks for a member's name only once the Service lists its address", async () => {
      const before = (await knot.counters()).byRcode.NXDOMAIN ?? 0;
      // The coordinator and members 1 and 2 are Ready; member 3 connects and is Ready a second later.
      const { spec, waits } = await setup(300, [0, 1, 2]);
      await sleep(1000);
      await readyAt(spec, [3]);
      (await Promise.all(waits)).forEach((r, i) => expectRoster(r, spec, i));
      // Asked at its connect, member 3's name would have been NXDOMAIN (cacheable for 30 s here).
      expect((await knot.counters()).byRcode.NXDOMAIN ?? 0).toBe(before);
    });

    it('the coordinator polls the Service every poll interval while a member is missing', async () => {
      const { spec, waits, released } = await setup(800, [0, 1, 2]);
      await sleep(1500); // index 3 is connected to the coordinator and not in the Service yet
      const at = await readyAt(spec, [3]);
      (await Promise.all(waits)).forEach((r, i) => expectRoster(r, spec, i));
      // One Service poll (at most 1.07 s jittered) and a name check; the negative TTL (10 s) would not make it.
      expect(Math.max(...released) - at).toBeLessThan(4000);
    });
  });

  it('a coordinator replaced after the release passes: the released members still answer, as released', async () => {
    const spec = await jobs.newJob(4);
    await jobs.knot.update(records(spec, [0, 1, 2, 3]));
    const lingering = [0, 1, 2, 3].map(() => new AbortController());
    const options = await Promise.all(
      [0, 1, 2, 3].map((i) =>
        podOptions(jobs.dir, spec, i, { ...star, lingerMs: 30_000, signal: lingering[i]!.signal }),
      ),
    );
    (await Promise.all(options.map((o) => waitForPeers(o)))).forEach((r, i) => expectRoster(r, spec, i));
    lingering[0]!.abort(); // the coordinator's process goes away; a new one starts in its place
    await sleep(50);
    const again = await waitForPeers({
      ...options[0]!,
      signal: AbortSignal.timeout(10_000),
      timeoutMs: 8000,
    });
    expectRoster(again, spec, 0);
    for (const ac of lingering) ac.abort();
  });

  it(`parks members when the job is bigger than ${MAX_HELD} + 1 pods and pushes the roster to them`, async () => {
    const spec = await jobs.newJob(MAX_HELD + 40);
    const all = [...Array(spec.size).keys()];
    await jobs.knot.update(records(spec, all));
    const options = await Promise.all(
      all.map((i) => podOptions(jobs.dir, spec, i, { ...star, timeoutMs: 60_000, retryMaxDelayMs: 2000 })),
    );
    const results = await Promise.all(options.map((o) => waitForPeers(o)));
    results.forEach((r, i) => expectRoster(r, spec, i));
  });

  it(`a coordinator limited to 1024 file descriptors admits and releases 1100 pods (bound: ${COORDINATOR_MAX_SOCKETS} sockets)`, async () => {
    const spec = await jobs.newJob(1100);
    const all = [...Array(spec.size).keys()];
    // One DNS UPDATE message holds about 700 pods' records.
    for (let from = 0; from < spec.size; from += 500)
      await jobs.knot.update(records(spec, all.slice(from, from + 500)));
    const strip = ({ onProgress: _o, signal: _s, ...rest }: Record<string, unknown>): object => rest;
    const list = async (indices: number[]): Promise<string> => {
      const file = join(jobs.dir, `${spec.job}-${indices[0]}.json`);
      const opts = await Promise.all(
        indices.map((i) =>
          podOptions(jobs.dir, spec, i, { ...star, timeoutMs: 60_000, retryMaxDelayMs: 2000 }),
        ),
      );
      await writeFile(file, JSON.stringify(opts.map((o) => strip(o as Record<string, unknown>))));
      return file;
    };
    const start = async (nofile: number, indices: number[]) => {
      const file = await list(indices);
      const child = spawn(
        'prlimit',
        [`--nofile=${nofile}`, process.execPath, 'test/fixtures/pods-in-one-process.mjs', `@${file}`],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      return { child, exited, lines: () => out.trim().split('\n').filter(Boolean) };
    };
    const coordinator = await start(1024, [0]);
    const members = await start(await hardNofile(), all.slice(1));
    // prlimit execs node, so the child's pid is node's: sample its open descriptors while it works.
    let maxFds = 0;
    const sampler = setInterval(() => {
      try {
        maxFds = Math.max(maxFds, readdirSync(`/proc/${coordinator.child.pid}/fd`).length);
      } catch {
        // exited
      }
    }, 10);
    const kill = setTimeout(() => {
      coordinator.child.kill('SIGKILL');
      members.child.kill('SIGKILL');
    }, 90_000);
    const codes = await Promise.all([coordinator.exited, members.exited]);
    clearInterval(sampler);
    clearTimeout(kill);
    expect(codes).toEqual([0, 0]);
    const outcomes = [...coordinator.lines(), ...members.lines()].map((l) => JSON.parse(l) as object);
    expect(outcomes).toEqual(all.map((i) => ({ ok: true, index: i, peers: spec.size })));
    expect(maxFds).toBeGreaterThan(0);
    // Its sockets, those it closed whose other side has not closed yet, and Node's own descriptors.
    expect(maxFds).toBeLessThanOrEqual(COORDINATOR_MAX_SOCKETS + 128);
    expect(maxFds).toBeLessThan(1024);
  }, 120_000);
});
