// The simulator bites: each fault-injection switch of the core (src/core/pod.ts `Fault`) puts back a
// known defect, and a small sweep must find a seed that runs clean without it and breaks an invariant
// with it.
import { describe, expect, it } from 'vitest';
import type { Fault } from '../../src/core/machine.js';
import { runScenario, summary } from './harness.js';
import type { Scenario, ScenarioKey } from './scenario.js';

interface Case {
  /** Scenario the defect shows in. */
  key: Omit<ScenarioKey, 'seed'>;
  tweak?: (s: Scenario) => void;
  /** The kind of invariant expected to catch it. */
  caughtBy: 'liveness' | 'bound' | 'safety';
}

const CASES: Record<Fault, Case> = {
  // A mesh coordinator's first `peers` after the handshake (over 1 KiB at 64 pods) often arrives in the
  // same read as the confirm: parsed under the pre-authentication limit, it drops the connection.
  'decode-whole-chunk': {
    key: { size: 64, topology: 'mesh', mix: 'calm' },
    tweak: (s) => {
      s.net.splitP = 0;
      s.net.holdP = 0.3;
    },
    caughtBy: 'liveness',
  },
  // A released coordinator of 80 pods receives 79 acks: with the switch they pile up unconsumed.
  'unbounded-queue': { key: { size: 80, topology: 'star', mix: 'calm' }, caughtBy: 'bound' },
  // Connections are reset while a release is on its way: a release counted as delivered once written
  // strands the member it was lost to.
  'release-without-ack': {
    key: { size: 16, topology: 'star', mix: 'calm' },
    tweak: (s) => {
      s.faults.endMs = Math.max(s.faults.endMs, 30_000);
      s.faults.resetOnReleaseP = 0.5;
    },
    caughtBy: 'liveness',
  },
};

const SEEDS = 10;

describe('each fault switch of the core is caught within a small sweep', () => {
  for (const [fault, c] of Object.entries(CASES) as [Fault, Case][]) {
    it(fault, { timeout: 300_000 }, () => {
      let found: string | undefined;
      let clean = 0;
      for (let seed = 1; seed <= SEEDS && found === undefined; seed++) {
        const key = { ...c.key, seed };
        const opts = { file: 'test/sim/faults.test.ts', ...(c.tweak ? { tweak: c.tweak } : {}) };
        const without = runScenario(key, opts);
        if (without.violations.length > 0) continue; // another defect: says nothing about this one
        clean++;
        const withFault = runScenario({ ...key, coreFaults: [fault] }, opts);
        const v = withFault.violations[0];
        if (v !== undefined && v.kind === c.caughtBy) found = summary(withFault);
      }
      expect(clean, 'no seed ran clean without the fault').toBeGreaterThan(0);
      expect(found, `no seed of ${SEEDS} caught ${fault}`).toBeDefined();
      console.log(`${fault}: ${found}`);
    });
  }
});
