#!/usr/bin/env node
// `npm run build:binary`: the kubepeers CLI as one executable that needs no Node.js on the machine it runs
// on (docs/binary.md): a Node.js single executable application (SEA) made from the Node.js that runs this
// script (process.execPath: on Node 24 it embeds Node 24).
//
//   1. esbuild bundles dist/'s CLI (built by tsc first) into one CommonJS script, the only form a SEA runs;
//   2. `node --experimental-sea-config` turns it into a blob (with V8's code cache, and without the
//      "single executable applications are experimental" warning);
//   3. postject injects the blob into a copy of the node binary stripped of its symbols (binutils' strip),
//      flipping its SEA fuse.
//
// Usage: node scripts/build-binary.mjs [--out <file>] [--no-strip]   (default dist/kubepeers-linux-x64)
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { inject } from 'postject';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const started = performance.now();
/** Seconds each step took, for the summary line. */
const steps = [];
let last = started;
const step = (name) => {
  const now = performance.now();
  steps.push(`${name}: ${((now - last) / 1000).toFixed(1)} s`);
  last = now;
};
const say = (line) => process.stderr.write(`build-binary: ${line}\n`);
/** Runs a command; on failure, stops with its output. */
const run = (cmd, args, cwd) => {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error)
    fail(`${cmd}: ${r.error.message}${cmd === 'strip' ? ' (Debian package binutils; or --no-strip)' : ''}`);
  if (r.status !== 0)
    fail(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
};
/** Stops the build: the message is printed once the temporary files are removed. */
class BuildError extends Error {}
const fail = (line) => {
  throw new BuildError(line);
};

try {
  await buildBinary();
} catch (err) {
  if (!(err instanceof BuildError)) throw err;
  say(err.message);
  process.exitCode = 1;
}

async function buildBinary() {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, 'no-strip': { type: 'boolean', default: false } },
  });
  const out = resolve(values.out ?? join(ROOT, 'dist', 'kubepeers-linux-x64'));

  // The file name promises linux-x64; a SEA embeds the Node.js that builds it, so build it on one.
  if (process.platform !== 'linux' || process.arch !== 'x64')
    fail(
      `this Node.js runs on ${process.platform}-${process.arch}; the binary is linux-x64: build it on linux-x64`,
    );
  const entry = join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(entry)) fail(`${relative(ROOT, entry)} is missing: run \`npm run build\` first`);
  if (!readFileSync(process.execPath).includes(SENTINEL_FUSE))
    fail(
      `${process.execPath} (Node.js ${process.version}) has no SEA fuse ${SENTINEL_FUSE}: it cannot make a single executable`,
    );

  const work = mkdtempSync(join(tmpdir(), 'kubepeers-sea-'));
  try {
    // 1. One CommonJS script. dist/bin.js awaits at top level, which CommonJS cannot: this entry does what
    // it does with a promise. src/ loads dns-packet and package.json with createRequire(import.meta.url),
    // which esbuild cannot follow (and a SEA's require() loads built-in modules only): turned into plain
    // require() calls here, which esbuild bundles.
    const bundle = join(work, 'kubepeers.cjs');
    const result = await build({
      stdin: {
        contents:
          "import { main } from './dist/cli/main.js';\n" +
          'main(process.argv.slice(2), process.env).then((code) => { process.exitCode = code; });\n',
        resolveDir: ROOT,
        sourcefile: 'sea-entry.js',
      },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: `node${process.versions.node.split('.')[0]}`,
      outfile: bundle,
      sourcemap: false,
      legalComments: 'none',
      logLevel: 'silent',
      // import.meta is empty in CommonJS: any use left after the rewrite below would break at run time.
      logOverride: { 'empty-import-meta': 'error' },
      plugins: [
        {
          name: 'create-require',
          setup(b) {
            b.onLoad({ filter: /\.js$/ }, (args) => {
              if (!args.path.startsWith(join(ROOT, 'dist'))) return undefined;
              const text = readFileSync(args.path, 'utf8');
              return {
                contents: text.replace(/\bcreateRequire\(import\.meta\.url\)\(/g, 'require('),
                loader: 'js',
              };
            });
          },
        },
      ],
    }).catch((err) => fail(`esbuild could not bundle ${relative(ROOT, entry)}: ${err.message}`));
    if (result.warnings.length > 0) fail(`esbuild: ${result.warnings.map((w) => w.text).join('; ')}`);

    // 2. The blob, from this very Node.js (a blob only runs in the Node.js version that made it).
    step(`bundle (${(statSync(bundle).size / 1e3).toFixed(0)} kB)`);
    const blob = join(work, 'kubepeers.blob');
    writeFileSync(
      join(work, 'sea-config.json'),
      JSON.stringify({
        main: bundle,
        output: blob,
        disableExperimentalSEAWarning: true,
        useCodeCache: true,
        execArgvExtension: 'none',
      }),
    );
    // (Its one line on success, "Wrote single executable preparation blob", is not news; errors are.)
    run(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], work);

    // 3. Into a copy of this node binary, written beside the output and renamed over it when complete.
    step('blob');
    mkdirSync(dirname(out), { recursive: true });
    const partial = `${out}.partial`;
    // Without its symbols and debug sections (binutils' strip): 12 to 18 MB less (docs/binary.md). Before
    // the injection: stripping a SEA afterwards breaks it (it crashes at start).
    if (values['no-strip']) copyFileSync(process.execPath, partial);
    else run('strip', ['--strip-all', '-o', partial, process.execPath], work);
    chmodSync(partial, 0o755);
    // postject (LIEF) warns about every ELF note section it cannot name (NodeSource's node has hundreds):
    // noise when the injection works, shown when it does not.
    const warnings = [];
    const warn = console.warn;
    console.warn = (...args) => warnings.push(args.join(' '));
    try {
      await inject(partial, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SENTINEL_FUSE });
    } catch (err) {
      fail(
        `postject could not inject the blob into a copy of ${process.execPath}: ${err.message}\n${warnings.join('\n')}`,
      );
    } finally {
      console.warn = warn;
    }
    renameSync(partial, out);

    // It runs, and says the version the package does.
    step(values['no-strip'] ? 'inject' : 'strip and inject');
    const version = execFileSync(out, ['--version'], { encoding: 'utf8', env: {} });
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    if (!version.startsWith(`kubepeers ${pkg.version} `))
      fail(`${out} --version printed ${JSON.stringify(version)}`);
    step('check');
    const mb = (statSync(out).size / 1e6).toFixed(1);
    say(
      `${relative(process.cwd(), out) || out}: ${mb} MB, Node.js ${process.version}, ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s (${steps.join(', ')})`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(`${out}.partial`, { force: true });
  }
}
