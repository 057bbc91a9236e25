#!/usr/bin/env node
// `npm run docs:cli`: rewrites the option table of docs/cli.md from the CLI's flags (the same rows as
// `kubepeers --help`; test/cli.test.ts fails when the page and the flags differ). Needs a build.
import { readFileSync, writeFileSync } from 'node:fs';
import { optionRows } from '../dist/cli/flags.js';

const page = new URL('../docs/cli.md', import.meta.url);
const lines = readFileSync(page, 'utf8').split('\n');
const start = lines.findIndex((l) => l.startsWith('| option '));
let end = start;
while (lines[end]?.startsWith('|')) end++;
const table = [
  '| option | env variable | default | meaning |',
  '| --- | --- | --- | --- |',
  ...optionRows().map((r) => `| ${r.join(' | ')} |`),
];
lines.splice(start, end - start, ...table);
writeFileSync(page, lines.join('\n'));
