// How often one pod asks one name, across simulated runs with restarts, stale records and churn. A name
// whose record is stale (a connection, or a Service address, it does not list) used to be asked again the
// moment each answer came back: found by review as ~1 700 queries a second for one name (seed 36, a mesh
// of 4, churn). A stale positive answer is now asked again at most once per retry minimum.
import { describe, expect, it } from 'vitest';
import { createMachine } from '../../src/core/machine.js';
import type { PodConfig } from '../../src/core/pod.js';
import type { Output } from '../../src/core/types.js';
import { runScenario, summary, sweepKey } from './harness.js';
import type { Mix } from './scenario.js';

/** Queries for one name by one pod within any second, at most (retry minimum 100 ms: 10, plus backoff). */
const MAX_PER_NAME_PER_SECOND = 30;

describe('DNS pace', () => {
  it(`no pod asks one name more than ${MAX_PER_NAME_PER_SECOND} times in a second (400 seeds, churn and DNS faults)`, () => {
    const mixes: Mix[] = ['churn', 'linger', 'chaos', 'dns'];
    const worst: string[] = [];
    for (let seed = 1; seed <= 400; seed++) {
      const key = sweepKey(seed, { minSize: 3, maxSize: 40, mix: mixes[seed % mixes.length] });
      let most = 0;
      let where = '';
      const factory = (config: PodConfig): ReturnType<typeof createMachine> => {
        const machine = createMachine(config);
        const asked = new Map<string, number[]>();
        let now = 0;
        const handle = machine.handle.bind(machine);
        machine.handle = (t, input) => {
          now = t;
          handle(t, input);
        };
        const poll = machine.poll.bind(machine);
        machine.poll = (): Output[] => {
          const out = poll();
          for (const o of out) {
            if (o.type !== 'query' || o.name === config.service) continue;
            const times = asked.get(o.name) ?? [];
            times.push(now);
            while (times[0]! < now - 1000) times.shift();
            asked.set(o.name, times);
            if (times.length > most) {
              most = times.length;
              where = `pod ${config.index} asked ${o.name} ${times.length} times in the second to ${now.toFixed(0)} ms`;
            }
          }
          return out;
        };
        return machine;
      };
      const run = runScenario(key, { factory, file: 'test/sim/dns-pace.test.ts' });
      if (most > MAX_PER_NAME_PER_SECOND)
        worst.push(`${summary(run).slice(0, 160)}: ${where} (${run.replay})`);
    }
    expect(worst).toEqual([]);
  });
});
