#!/usr/bin/env node
// Cold start of the standalone binary against the npm package's CLI, for docs/binary.md: the wall time of
// `--version` (start, load the CLI, print, exit), run after run, the two alternating so that both see
// the same machine load. Prints a Markdown table of the median, the quartiles and the minimum.
//
// Usage: node scripts/measure-binary.mjs [--runs 31] [--binary dist/kubepeers-linux-x64] [--node <node>]
//   --node: the Node.js that runs dist/bin.js (default: this one, process.execPath)
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '31' },
    binary: { type: 'string', default: join(ROOT, 'dist', 'kubepeers-linux-x64') },
    node: { type: 'string', default: process.execPath },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1)
  throw new Error(`--runs is ${JSON.stringify(values.runs)}: expected a positive integer`);

const commands = [
  { name: `${values.binary} --version`, argv: [resolve(values.binary), '--version'] },
  {
    name: `${values.node} dist/bin.js --version`,
    argv: [values.node, join(ROOT, 'dist', 'bin.js'), '--version'],
  },
];

/** Wall time of one run, in ms; throws when it fails. */
function once(argv) {
  const started = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: '/usr/bin:/bin' },
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.status ?? r.signal}): ${r.stderr}`);
  return ms;
}

const times = commands.map(() => []);
for (const c of commands) once(c.argv); // one warm-up each: both from the page cache
const load = loadavg()[0];
for (let i = 0; i < runs; i++) commands.forEach((c, k) => times[k].push(once(c.argv)));

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))];
const ms = (x) => `${x.toFixed(0)} ms`;
console.log(
  `${runs} runs each, alternating; ${cpus().length} CPUs, load average ${load.toFixed(1)} at the start\n`,
);
console.log('| command | median | p25–p75 | min |');
console.log('| --- | --- | --- | --- |');
commands.forEach((c, k) => {
  const s = [...times[k]].sort((a, b) => a - b);
  console.log(
    `| \`${c.name}\` | ${ms(quantile(s, 0.5))} | ${ms(quantile(s, 0.25))}–${ms(quantile(s, 0.75))} | ${ms(s[0])} |`,
  );
});
