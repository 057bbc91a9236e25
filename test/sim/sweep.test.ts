// The seed sweep: many simulated jobs of 2 to 64 pods, mixed topologies and fault mixes, each checked
// against the barrier's invariants after every step (docs/simulation.md). A failure prints one line per
// failing seed and the command that replays it:
//   KPSIM_SEED=1234 KPSIM_SIZE=37 KPSIM_TOPOLOGY=mesh KPSIM_MIX=churn npx vitest run test/sim/sweep.test.ts
// (KPSIM_TRACE=1 adds the last events). More seeds on demand: KPSIM_SEEDS=100000 KPSIM_FROM=5000,
// other sizes: KPSIM_MIN_SIZE / KPSIM_MAX_SIZE.
import { describe, expect, it } from 'vitest';
import { envKey, expectClean, failureReport, runScenario, summary, sweep, sweepKey } from './harness.js';

const FILE = 'test/sim/sweep.test.ts';
const env = process.env;
const range = {
  minSize: Number(env.KPSIM_MIN_SIZE ?? 2),
  maxSize: Number(env.KPSIM_MAX_SIZE ?? 64),
};
const replay = envKey(range);

if (replay !== undefined) {
  describe('replay', () => {
    it(`seed ${replay.seed}`, { timeout: 3_600_000 }, () => {
      const r = runScenario(replay, { file: FILE, trace: true });
      console.log(summary(r));
      expectClean(r);
    });
  });
} else {
  const from = Number(env.KPSIM_FROM ?? 1);
  const seeds = Number(env.KPSIM_SEEDS ?? 2000);
  const chunk = 250;
  describe(`sweep of ${seeds} seeds from ${from}, ${range.minSize} to ${range.maxSize} pods`, () => {
    for (let start = from; start < from + seeds; start += chunk) {
      const end = Math.min(from + seeds, start + chunk);
      it(`seeds ${start}..${end - 1}`, { timeout: 600_000 }, () => {
        const keys = function* () {
          for (let seed = start; seed < end; seed++) yield sweepKey(seed, range);
        };
        const { runs, failures } = sweep(keys(), { file: FILE });
        expect(runs).toBe(end - start);
        expect(failures.length, `\n${failureReport(failures)}\n`).toBe(0);
      });
    }
  });
}
