/**
 * The small API tests use: run a scenario (drawn from a seed, or scripted), get its violations and the
 * command line that replays it, and turn a failing run into one readable error.
 */
import { Rng } from './prng.js';
import { makeScenario, MIXES, replayCommand, type Mix, type Scenario, type ScenarioKey } from './scenario.js';
import { realCore, Simulation, type MachineFactory, type RunResult, type SimOptions } from './sim.js';

export type { Violation } from './invariants.js';
export { MIXES, makeScenario, replayCommand, type Mix, type Scenario, type ScenarioKey } from './scenario.js';
export { realCore, Simulation, type MachineFactory, type RunResult } from './sim.js';

export interface RunOptions extends Partial<Omit<SimOptions, 'factory'>> {
  /** The core to run (default: src/core/machine.ts). */
  factory?: MachineFactory;
  /** Changes to the drawn scenario (a test's own conditions). */
  tweak?: (s: Scenario) => void;
  /** Script the run: schedule crashes, partitions, strangers, extra checks. */
  script?: (sim: Simulation) => void;
  /** The test file the replay command names. */
  file?: string;
}

/** Runs one scenario to its end. */
export function runScenario(key: ScenarioKey, options: RunOptions): RunResult {
  const scenario = makeScenario(key);
  options.tweak?.(scenario);
  const sim = new Simulation(scenario, {
    factory: options.factory ?? realCore,
    trace: options.trace ?? process.env.KPSIM_TRACE === '1',
    ...(options.stopOnViolation !== undefined ? { stopOnViolation: options.stopOnViolation } : {}),
    ...(options.tailMs !== undefined ? { tailMs: options.tailMs } : {}),
  });
  options.script?.(sim);
  const result = sim.run();
  result.replay = replayCommand(key, options.file);
  return result;
}

/** One line about a run: what it was and how it ended. */
export function summary(r: RunResult): string {
  const s = r.scenario;
  const st = r.stats;
  const v = r.violations[0];
  return (
    `seed ${s.seed} size ${s.size} ${s.topology} ${s.mix}${s.coreFaults.length ? ` faults=${s.coreFaults}` : ''}: ` +
    (v
      ? `${v.kind.toUpperCase()} at ${v.at.toFixed(1)} ms${v.pod ? ` [${v.pod}]` : ''}: ${v.what}`
      : `ok, released ${st.firstReleaseAt?.toFixed(0)}..${st.lastReleaseAt?.toFixed(0)} ms, ` +
        `${st.events} inputs, ${st.queries} queries, ${st.connects} connects`)
  );
}

/** Throws a readable error (violation, replay command, trace tail) if the run broke an invariant. */
export function expectClean(r: RunResult): void {
  if (r.violations.length === 0) return;
  const lines = [
    summary(r),
    ...r.violations
      .slice(1, 5)
      .map((v) => `  also ${v.kind} at ${v.at.toFixed(1)}: ${v.pod ?? ''} ${v.what}`),
    `replay: ${r.replay}`,
  ];
  if (r.trace.length > 0) lines.push('trace (last 60 events):', ...r.trace.slice(-60));
  else lines.push('(KPSIM_TRACE=1 prints the last events)');
  throw new Error(lines.join('\n'));
}

/** The scenario a sweep runs for `seed`: size (log-uniform), topology and mix drawn from the seed. */
export function sweepKey(
  seed: number,
  range: { minSize: number; maxSize: number; topology?: 'mesh' | 'star' | undefined; mix?: Mix | undefined },
  coreFaults: readonly string[] = [],
): ScenarioKey {
  const r = new Rng(seed);
  const size = r.logInt(range.minSize, range.maxSize);
  const topology = range.topology ?? r.pick(['mesh', 'star'] as const);
  const mix = range.mix ?? r.pick(MIXES);
  return { seed, size, topology, mix, coreFaults: [...coreFaults] };
}

/** The scenario named by KPSIM_SEED, KPSIM_SIZE, KPSIM_TOPOLOGY, KPSIM_MIX, KPSIM_CORE_FAULTS (replay). */
export function envKey(range: { minSize: number; maxSize: number }): ScenarioKey | undefined {
  const env = process.env;
  if (env.KPSIM_SEED === undefined) return undefined;
  const seed = Number(env.KPSIM_SEED);
  const drawn = sweepKey(seed, range);
  const mix = env.KPSIM_MIX as Mix | undefined;
  if (mix !== undefined && !(MIXES as readonly string[]).includes(mix))
    throw new Error(`unknown KPSIM_MIX ${mix}`);
  return {
    seed,
    size: env.KPSIM_SIZE ? Number(env.KPSIM_SIZE) : drawn.size,
    topology: (env.KPSIM_TOPOLOGY as 'mesh' | 'star' | undefined) ?? drawn.topology,
    mix: mix ?? drawn.mix,
    coreFaults: env.KPSIM_CORE_FAULTS ? env.KPSIM_CORE_FAULTS.split(',') : [],
  };
}

/** Runs many scenarios; returns the failures (each with its one-line summary and replay command). */
export function sweep(
  keys: Iterable<ScenarioKey>,
  options: Omit<RunOptions, 'file'> & { file: string },
): { runs: number; failures: RunResult[]; ms: number } {
  const start = performance.now();
  const failures: RunResult[] = [];
  let runs = 0;
  for (const key of keys) {
    runs++;
    const r = runScenario(key, { ...options, trace: false });
    if (r.violations.length > 0) failures.push(r);
  }
  return { runs, failures, ms: performance.now() - start };
}

/** A readable report of a sweep's failures: one line and a replay command each. */
export function failureReport(failures: RunResult[], max = 25): string {
  const lines = failures.slice(0, max).flatMap((r) => [summary(r).slice(0, 600), `  replay: ${r.replay}`]);
  if (failures.length > max) lines.push(`... and ${failures.length - max} more`);
  return lines.join('\n');
}
