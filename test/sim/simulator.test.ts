// Tests of the simulator itself: a seed replays exactly, the DNS and TCP models do what docs/simulation.md
// says, and each kind of invariant catches a core that breaks it (stand-in cores, test/sim/standin.ts).
import { describe, expect, it } from 'vitest';
import type { Input, Machine, Output } from '../../src/core/types.js';
import { Authority, DnsCache, MAX_DNS_MESSAGE, answerBytes } from './dns.js';
import { runScenario, sweep, sweepKey, type MachineFactory } from './harness.js';
import { Rng } from './prng.js';
import { EventQueue } from './queue.js';
import { makeScenario } from './scenario.js';
import { Simulation } from './sim.js';
import { createStandIn, type StandInOptions } from './standin.js';

const standIn =
  (options: StandInOptions = {}): MachineFactory =>
  (config) =>
    createStandIn(config, options);

describe('determinism', () => {
  it('the same seed replays the same run; another seed does not', () => {
    const key = { seed: 4242, size: 24, topology: 'mesh' as const, mix: 'chaos' as const };
    const a = runScenario(key, {});
    const b = runScenario(key, {});
    const c = runScenario({ ...key, seed: 4243 }, {});
    expect(b.stats).toEqual(a.stats);
    expect(b.violations).toEqual(a.violations);
    expect(c.stats.fingerprint).not.toBe(a.stats.fingerprint);
  });

  it('a scenario depends only on its key', () => {
    const key = { seed: 7, size: 100, topology: 'star' as const, mix: 'chaos' as const };
    expect(makeScenario(key)).toEqual(makeScenario(key));
    expect(makeScenario({ ...key, seed: 8 })).not.toEqual(makeScenario(key));
  });

  it('the PRNG is a fixed sequence and forks are independent streams', () => {
    const seq = (r: Rng): number[] => Array.from({ length: 5 }, () => r.u32());
    expect(seq(new Rng(1))).toEqual(seq(new Rng(1)));
    const r = new Rng(1);
    const f = r.fork();
    expect(seq(f)).not.toEqual(seq(r));
    const ints = Array.from({ length: 1000 }, () => new Rng(3).int(2, 5));
    expect(new Set(ints).size).toBe(1);
    const g = new Rng(3);
    const spread = new Set(Array.from({ length: 1000 }, () => g.int(2, 5)));
    expect([...spread].sort()).toEqual([2, 3, 4, 5]);
  });
});

describe('event queue', () => {
  it('runs events in time order, ties in insertion order, and never goes back in time', () => {
    const q = new EventQueue();
    const seen: string[] = [];
    q.at(5, () => seen.push('a5'));
    q.at(1, () => seen.push('b1'));
    q.at(5, () => seen.push('c5'));
    q.at(3, () => {
      seen.push('d3');
      q.at(0, () => seen.push(`e${q.now}`)); // in the past: runs now
    });
    while (q.step());
    expect(seen).toEqual(['b1', 'd3', 'e3', 'a5', 'c5']);
  });
});

describe('DNS model', () => {
  const options = { ttlMs: 5000, negTtlMs: 5000, family: 4 as const, emptyService: 'nxdomain' as const };
  const svc = 'svc.ns.svc.cluster.local.';

  it('a cache keeps a negative answer for its TTL after the name appeared', () => {
    const auth = new Authority(options, svc);
    const cache = new DnsCache({ positiveCapMs: 30_000, negativeCapMs: 5000, minTtlMs: 0 });
    const name = 'a.svc.ns.svc.cluster.local.';
    const ask = (now: number) => cache.lookup(now, name, () => auth.answer(name, (l) => l));
    expect(ask(0).status).toBe('nxdomain');
    auth.add(100, name, '10.0.0.1');
    expect(ask(4999)).toMatchObject({ status: 'nxdomain', ttlMs: 1 });
    expect(ask(5000)).toMatchObject({ status: 'ok', addresses: ['10.0.0.1'], ttlMs: 5000 });
    auth.remove(name, '10.0.0.1');
    expect(ask(9000)).toMatchObject({ status: 'ok', ttlMs: 1000 }); // stale until its TTL runs out
    expect(ask(10_000).status).toBe('nxdomain');
    expect(auth.servedBy(name, '10.0.0.1', 100)).toBe(true);
    expect(auth.servedBy(name, '10.0.0.1', 99)).toBe(false);
  });

  it('a cache keeps answers at least its minimum TTL and at most its caps', () => {
    const auth = new Authority({ ...options, ttlMs: 1000 }, svc);
    const cache = new DnsCache({ positiveCapMs: 30_000, negativeCapMs: 30_000, minTtlMs: 5000 });
    auth.add(0, svc, '10.0.0.1');
    expect(cache.lookup(0, svc, () => auth.answer(svc, (l) => l))).toMatchObject({ ttlMs: 1000 });
    auth.add(0, svc, '10.0.0.2');
    expect(cache.lookup(4000, svc, () => auth.answer(svc, (l) => l))).toMatchObject({
      addresses: ['10.0.0.1'],
    });
    expect(cache.lookup(5000, svc, () => auth.answer(svc, (l) => l))).toMatchObject({
      addresses: ['10.0.0.1', '10.0.0.2'],
    });
  });

  it('a Service answer that does not fit in 64 KiB is an error with truncated: true', () => {
    const auth = new Authority(options, svc);
    let n = 0;
    while (answerBytes(svc, n + 1, 4) <= MAX_DNS_MESSAGE) n++;
    for (let i = 0; i < n; i++) auth.add(0, svc, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    expect(auth.answer(svc, (l) => l)).toMatchObject({ status: 'ok' });
    expect(n).toBeGreaterThan(4000);
    expect(n).toBeLessThan(4200);
    auth.add(0, svc, '11.0.0.1');
    expect(auth.answer(svc, (l) => l)).toMatchObject({ status: 'error', truncated: true });
  });
});

/** Pod 1 sends pod 0 numbered lines in many writes; pod 0 records what arrived, and in how many reads. */
function streamPair(record: {
  received: string;
  reads: number;
  writes: number;
  closed: boolean;
}): MachineFactory {
  return (config) => {
    const out: Output[] = [];
    let sent = false;
    let asked = 1;
    const m: Machine = {
      released: false,
      start() {
        if (config.index === 1) out.push({ type: 'query', id: 1, name: config.nameOf(0) });
      },
      handle(_now, input: Input) {
        if (input.type === 'dns' && input.result.status === 'ok')
          out.push({ type: 'connect', conn: 1, address: input.result.addresses[0]!, fromSelf: true });
        if (input.type === 'connect-failed') out.push({ type: 'query', id: ++asked, name: config.nameOf(0) });
        if (input.type === 'connected' && !sent) {
          sent = true;
          for (let i = 0; i < 300; i++) {
            out.push({ type: 'send', conn: 1, data: `line ${i}\n` });
            record.writes++;
          }
          out.push({ type: 'close', conn: 1, destroy: false });
        }
        if (input.type === 'data') {
          record.received += Buffer.from(input.bytes).toString();
          record.reads++;
        }
        if (input.type === 'closed') record.closed = true;
      },
      poll: () => out.splice(0),
      nextTimer: () => undefined,
      missing: () => [],
      idle: () => false,
      hint: () => undefined,
      stop() {},
    };
    return m;
  };
}

describe('TCP model', () => {
  it('delivers a stream in order, cut into segments that split and coalesce writes, then the close', () => {
    const record = { received: '', reads: 0, writes: 0, closed: false };
    const s = makeScenario({ seed: 3, size: 2, topology: 'star', mix: 'calm' });
    s.publishNotReady = true;
    s.dns.propagationMs = [0, 0];
    s.net.splitP = 1;
    s.net.holdP = 0.3;
    s.coordinator = 0;
    const sim = new Simulation(s, { factory: streamPair(record), tailMs: 0 });
    sim.run();
    const expected = Array.from({ length: 300 }, (_, i) => `line ${i}\n`).join('');
    expect(record.received).toBe(expected);
    expect(record.closed).toBe(true);
    expect(record.reads).toBeGreaterThan(1); // split or at least several segments
    expect(record.reads).toBeLessThan(record.writes); // and coalesced
  });
});

describe('the invariants catch broken cores', () => {
  it('a small correct-enough star core passes a sweep (the harness itself raises no false alarm)', () => {
    const keys = function* () {
      for (let seed = 1; seed <= 60; seed++)
        yield sweepKey(seed, { minSize: 2, maxSize: 24, topology: 'star', mix: seed % 2 ? 'calm' : 'dns' });
    };
    const { failures } = sweep(keys(), { file: 'test/sim/simulator.test.ts', factory: standIn() });
    expect(failures.map((f) => f.violations[0])).toEqual([]);
  });

  it('safety: a mesh released on the coordinator word alone (pairs never connected)', () => {
    const r = runScenario({ seed: 5, size: 6, topology: 'mesh', mix: 'calm' }, { factory: standIn() });
    expect(r.violations[0]).toMatchObject({ kind: 'safety' });
    expect(r.violations[0]!.what).toMatch(/pairs had authenticated each other/);
  });

  it('safety: a release before every member was verified', () => {
    const r = runScenario(
      { seed: 6, size: 12, topology: 'star', mix: 'calm' },
      { factory: standIn({ releaseEarlyAt: 3 }) },
    );
    expect(r.violations[0]).toMatchObject({ kind: 'safety' });
  });

  it("safety: a roster entry that is not the member's verified address", () => {
    const r = runScenario(
      { seed: 6, size: 5, topology: 'star', mix: 'calm' },
      { factory: standIn({ forgeEntry: '10.99.0.1' }) },
    );
    expect(r.violations[0]).toMatchObject({ kind: 'safety' });
    expect(r.violations[0]!.what).toMatch(/entry 1 is 10.99.0.1/);
  });

  it('liveness: a core that never releases', () => {
    const idle: MachineFactory = () => ({
      released: false,
      start() {},
      handle() {},
      poll: () => [],
      nextTimer: () => undefined,
      missing: () => [],
      idle: () => false,
      hint: () => undefined,
      stop() {},
    });
    const r = runScenario({ seed: 1, size: 3, topology: 'star', mix: 'calm' }, { factory: idle });
    expect(r.violations[0]).toMatchObject({ kind: 'liveness' });
    expect(r.violations[0]!.at).toBeLessThanOrEqual(r.stats.settledAt + r.stats.livenessBoundMs + 250);
  });

  it('bounds: a core that keeps opening connections, or asks DNS without waiting', () => {
    const greedy =
      (what: 'connect' | 'query'): MachineFactory =>
      (config) => {
        let n = 0;
        const out: Output[] = [];
        return {
          released: false,
          start() {},
          handle(now) {
            for (let i = 0; i < 10; i++) {
              n++;
              if (what === 'connect')
                out.push({ type: 'connect', conn: n, address: '10.200.0.1', fromSelf: false });
              else out.push({ type: 'query', id: n, name: config.nameOf(0) });
            }
            void now;
          },
          poll: () => out.splice(0),
          nextTimer: () => (n < 2000 ? n : undefined),
          missing: () => [],
          idle: () => false,
          hint: () => undefined,
          stop() {},
        };
      };
    const c = runScenario(
      { seed: 2, size: 3, topology: 'star', mix: 'calm' },
      { factory: greedy('connect') },
    );
    expect(c.violations[0]).toMatchObject({ kind: 'bound' });
    expect(c.violations[0]!.what).toMatch(/^connections/);
    const q = runScenario({ seed: 2, size: 3, topology: 'star', mix: 'calm' }, { factory: greedy('query') });
    expect(q.violations[0]).toMatchObject({ kind: 'bound' });
    expect(q.violations[0]!.what).toMatch(/^dns/);
  });

  it('contract: a core that throws, or uses a connection it does not have', () => {
    const bad =
      (how: 'throw' | 'send'): MachineFactory =>
      () => {
        const out: Output[] = [];
        return {
          released: false,
          start() {
            if (how === 'throw') throw new Error('boom');
            out.push({ type: 'send', conn: 77, data: 'x' });
          },
          handle() {},
          poll: () => out.splice(0),
          nextTimer: () => undefined,
          missing: () => [],
          idle: () => false,
          hint: () => undefined,
          stop() {},
        };
      };
    for (const how of ['throw', 'send'] as const) {
      const r = runScenario({ seed: 2, size: 2, topology: 'star', mix: 'calm' }, { factory: bad(how) });
      expect(r.violations[0]).toMatchObject({ kind: 'contract' });
    }
  });
});
