// Big jobs: 100 star seeds of 256 to 320 pods and one star of 1 000 pods. On demand: KPSIM_MESH256=1 adds
// meshes of 256 pods, the largest `auto` runs as a mesh (32 640 pairs: 15 to 25 s of CPU each here). On demand: KPSIM_HUGE=1 runs
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
    for (let seed = 10_001; seed <= 10_100; seed++)
      keys.push(sweepKey(seed, { minSize: 256, maxSize: 320, topology: 'star' }));
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

if (env.KPSIM_MESH256 === '1') {
  describe('on demand: meshes of 256 pods', () => {
    it('5 seeds', { timeout: 900_000 }, () => {
      const keys = [10_050, 10_100, 10_150, 10_200, 10_250].map((seed) => ({
        ...sweepKey(seed, { minSize: 256, maxSize: 256, topology: 'mesh' }),
      }));
      const { failures } = sweep(keys, { file: 'test/sim/sweep.test.ts' });
      expect(failures.length, `\n${failureReport(failures)}\n`).toBe(0);
    });
  });
}

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
