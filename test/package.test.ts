import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
};

/**
 * Node APIs and syntax with the first Node release that has them (the 20.x line where they were
 * backported, else the first release after 20). Add a row when src/ starts using something newer than
 * the engines field says.
 */
const API_MINIMUM: readonly { api: string; pattern: RegExp; since: string }[] = [
  { api: 'AbortSignal.any', pattern: /\bAbortSignal\.any\(/, since: '20.3.0' },
  { api: 'events.addAbortListener', pattern: /\baddAbortListener\b/, since: '20.5.0' },
  { api: 'import attributes (with { type })', pattern: /\bwith\s*\{\s*type\s*:/, since: '20.10.0' },
  {
    api: 'import.meta.dirname / filename',
    pattern: /\bimport\.meta\.(dirname|filename)\b/,
    since: '20.11.0',
  },
  { api: 'util.styleText', pattern: /\bstyleText\b/, since: '20.12.0' },
  { api: 'process.loadEnvFile', pattern: /\bloadEnvFile\b/, since: '20.12.0' },
  { api: 'Object.groupBy / Map.groupBy', pattern: /\b(Object|Map)\.groupBy\(/, since: '21.0.0' },
  { api: 'Promise.withResolvers', pattern: /\bPromise\.withResolvers\(/, since: '22.0.0' },
  { api: 'Array.fromAsync', pattern: /\bArray\.fromAsync\(/, since: '22.0.0' },
  {
    api: 'Set methods (union, intersection, ...)',
    pattern: /\.(union|intersection|symmetricDifference|isSubsetOf|isSupersetOf|isDisjointFrom)\(/,
    since: '22.0.0',
  },
  { api: 'fs glob', pattern: /\bglob(Sync)?\(/, since: '22.0.0' },
  { api: 'dgram reusePort', pattern: /\breusePort\b/, since: '22.12.0' },
  // Older than 20.0.0: here so that a move of the floor below 20 is checked too.
  { api: 'fetch', pattern: /\bfetch\(/, since: '18.0.0' },
  { api: 'http Server.closeAllConnections', pattern: /\.closeAllConnections\(/, since: '18.2.0' },
  { api: 'util.parseArgs with default', pattern: /\bparseArgs\(/, since: '18.11.0' },
  { api: 'AbortSignal.timeout', pattern: /\bAbortSignal\.timeout\(/, since: '17.3.0' },
  { api: 'AbortSignal.throwIfAborted', pattern: /\.throwIfAborted\(/, since: '17.3.0' },
  { api: 'net.createServer noDelay', pattern: /\bnoDelay\b/, since: '17.7.0' },
];

type Version = [number, number, number];

function parseVersion(text: string): Version {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`not a version: ${JSON.stringify(text)}`);
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/**
 * The oldest Node version a range admits: the lowest lower bound of its `||` alternatives. Understands
 * `>=x.y.z`, `^x.y.z`, `~x.y.z` and `x.y.z` (optionally followed by an upper bound `<...`) and throws on
 * anything else, so that a range this test cannot read fails it instead of passing it.
 */
function oldestAllowed(range: string): Version {
  const lows = range.split('||').map((alternative) => {
    const parts = alternative.trim().split(/\s+/);
    const lower = parts.filter((p) => !p.startsWith('<'));
    if (lower.length !== 1) throw new Error(`cannot read the range ${JSON.stringify(range)}`);
    return parseVersion(lower[0]!.replace(/^(>=|\^|~|=)/, ''));
  });
  return lows.sort(compare)[0]!;
}

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await sourceFiles(path)));
    else if (entry.name.endsWith('.ts')) files.push(path);
  }
  return files;
}

describe('package.json engines', () => {
  it('reads ranges the way npm does for their lower bound', () => {
    expect(oldestAllowed('>=20')).toEqual([20, 0, 0]);
    expect(oldestAllowed('>=20.3.0')).toEqual([20, 3, 0]);
    expect(oldestAllowed('^22.1.0 || ^20.11.0')).toEqual([20, 11, 0]);
    expect(oldestAllowed('>=20.3.0 <25')).toEqual([20, 3, 0]);
    expect(() => oldestAllowed('latest')).toThrow();
  });

  it('admits no Node version older than an API that src/ uses', async () => {
    const floor = oldestAllowed(pkg.engines.node);
    const sources = await Promise.all(
      (await sourceFiles(join(root, 'src'))).map(async (f) => ({ f, text: await readFile(f, 'utf8') })),
    );
    const used = API_MINIMUM.filter(({ pattern }) => sources.some(({ text }) => pattern.test(text)));
    // The scan sees src/: AbortSignal.any is used (session.ts, status.ts), so the table is live.
    expect(used.map((u) => u.api)).toContain('AbortSignal.any');
    const tooOld = used
      .filter(({ since }) => compare(floor, parseVersion(since)) < 0)
      .map(({ api, since, pattern }) => {
        const where = sources.filter(({ text }) => pattern.test(text)).map(({ f }) => f.slice(root.length));
        return `${api} needs Node ${since} (used in ${where.join(', ')})`;
      });
    expect(tooOld, `engines.node is "${pkg.engines.node}"`).toEqual([]);
  });

  it('admits no Node version older than a runtime dependency needs', async () => {
    const floor = oldestAllowed(pkg.engines.node);
    const deps = await Promise.all(
      Object.keys(pkg.dependencies).map(async (name) => {
        // Not through require: a package's exports may not list its package.json (p-retry's do not).
        const text = await readFile(join(root, 'node_modules', name, 'package.json'), 'utf8');
        return { name, range: (JSON.parse(text) as { engines?: { node?: string } }).engines?.node };
      }),
    );
    expect(deps.map((d) => d.name)).toContain('p-retry');
    const tooOld = deps.flatMap(({ name, range }) => {
      if (range === undefined) return [];
      return compare(floor, oldestAllowed(range)) < 0 ? [`${name} needs Node ${range}`] : [];
    });
    expect(tooOld, `engines.node is "${pkg.engines.node}"`).toEqual([]);
  });
});

describe('the packed tarball', () => {
  /** `npm pack` of the built package (pretest built dist/), installed into a fresh project. */
  async function packAndInstall(): Promise<{ work: string; project: string; files: string[] }> {
    const work = await mkdtemp(join(tmpdir(), 'kp-pack-'));
    const npm = (args: string[], cwd: string): string =>
      execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
        cwd,
        encoding: 'utf8',
      });
    // dist/ is built by pretest; --ignore-scripts: no second build (prepack) under the running tests.
    const packed = JSON.parse(
      npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], root),
    ) as {
      filename: string;
      files: { path: string }[];
    }[];
    const tarball = join(work, packed[0]!.filename);
    const project = join(work, 'app');
    await mkdir(project);
    await writeFile(join(project, 'package.json'), '{"name":"app","private":true}\n');
    // Its dependencies come from the npm cache that `npm ci` filled (the registry when they are not there).
    npm(['install', '--prefer-offline', tarball], project);
    return { work, project, files: packed[0]!.files.map((f) => f.path).sort() };
  }

  let installed: ReturnType<typeof packAndInstall> | undefined;
  const once = (): ReturnType<typeof packAndInstall> => (installed ??= packAndInstall());
  afterAll(async () => {
    if (installed) await rm((await installed).work, { recursive: true, force: true });
  });

  it('ships the library, the CLI, their types, README and LICENSE, and nothing else', async () => {
    const { files } = await once();
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('dist/require.cjs');
    expect(files).toContain('dist/bin.js');
    expect(files).toEqual(expect.arrayContaining(['README.md', 'LICENSE', 'package.json']));
    const unexpected = files.filter(
      (f) =>
        !/^dist\/.+\.(js|cjs|d\.ts|d\.cts)$/.test(f) && !['README.md', 'LICENSE', 'package.json'].includes(f),
    );
    expect(unexpected).toEqual([]);
    expect(files.filter((f) => f.startsWith('dist/demo/') || f.endsWith('.map'))).toEqual([]);
  }, 120_000);

  it('is usable with import and with require() from a project that installs it', async () => {
    const { project } = await once();
    const node = (args: string[]): string =>
      execFileSync(process.execPath, args, { cwd: project, encoding: 'utf8' });
    const esm = node([
      '--input-type=module',
      '-e',
      "const k = await import('kubepeers'); console.log(typeof k.waitForPeers)",
    ]);
    expect(esm.trim()).toBe('function');
    // Node 20.19 and 22.12+ require() ES modules; the engines floor is older, where the entry explains.
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    const canRequireEsm = major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);
    const cjs = spawnSync(
      process.execPath,
      ['-e', "const k = require('kubepeers'); console.log(typeof k.waitForPeers, typeof k.TimeoutError)"],
      { cwd: project, encoding: 'utf8' },
    );
    if (canRequireEsm) expect(cjs.stdout.trim()).toBe('function function');
    else expect(cjs.stderr).toMatch(/cannot require\(\) it \(Node\.js 20\.19, 22\.12 and later can\)/);
    // The building blocks, behind their subpath, and not in the main entry.
    const internals = node([
      '--input-type=module',
      '-e',
      "const i = await import('kubepeers/internals'); const k = await import('kubepeers'); console.log(typeof i.StubResolver, typeof i.resolveConfig, 'StubResolver' in k)",
    ]);
    expect(internals.trim()).toBe('function function false');
    const version = execFileSync(join(project, 'node_modules/.bin/kubepeers'), ['--version'], {
      encoding: 'utf8',
    });
    expect(version).toMatch(/\d+\.\d+\.\d+/);
  }, 120_000);
});
