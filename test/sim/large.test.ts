// Big jobs: 100 seeds of 256 to 320 pods (star, with a few meshes: a 256-pod mesh holds 32 640 pairs and
// costs about ten seconds of CPU here), and one star of 1 000 pods. On demand: KPSIM_HUGE=1 runs
// KPSIM_HUGE_SEEDS (default 1) star jobs of KPSIM_HUGE_SIZE (default 10 000) pods, each as its own test.
// A failure prints the command that replays it.
import { describe, expect, it } from 'vitest';
import { expectClean, failureReport, runScenario, summary, sweep, sweepKey } from './harness.js';
import type { ScenarioKey } from './scenario.js';

const FILE = 'test/sim/large.test.ts';
const env = process.env;

describe('large jobs', () => {
  it('100 seeds of 256 to 320 pods', { timeout: 900_000 }, () => {
    const keys: ScenarioKey[] = [];
    for (let seed = 10_001; seed <= 10_100; seed++) {
      // Every 50th a mesh of exactly 256 pods, the largest `auto` runs as a mesh.
      const mesh = seed % 50 === 0;
      const key = sweepKey(seed, { minSize: 256, maxSize: 320, topology: mesh ? 'mesh' : 'star' });
      keys.push(mesh ? { ...key, size: 256 } : key);
    }
    const { runs, failures } = sweep(keys, { file: FILE });
    expect(runs).toBe(100);
    expect(failures.length, `\n${failureReport(failures)}\n`).toBe(0);
  });

  it('a star of 1 000 pods', { timeout: 600_000 }, () => {
    const r = runScenario({ seed: 20_001, size: 1000, topology: 'star', mix: 'chaos' }, { file: FILE });
    console.log(summary(r));
    expectClean(r);
  });
});

if (env.KPSIM_HUGE === '1') {
  const size = Number(env.KPSIM_HUGE_SIZE ?? 10_000);
  const count = Number(env.KPSIM_HUGE_SEEDS ?? 1);
  const from = Number(env.KPSIM_HUGE_FROM ?? 30_001);
  describe(`on demand: ${count} star job(s) of ${size} pods`, () => {
    for (let seed = from; seed < from + count; seed++) {
      it(`seed ${seed}`, { timeout: 7_200_000 }, () => {
        const mix = sweepKey(seed, { minSize: size, maxSize: size }).mix;
        const r = runScenario({ seed, size, topology: 'star', mix }, { file: 'test/sim/sweep.test.ts' });
        console.log(summary(r));
        expectClean(r);
      });
    }
  });
}
