/**
 * The standalone executable (`npm run build:binary`, docs/binary.md): built here from the Node.js that runs
 * the tests (so CI's Node 24 run checks a Node 24 binary), then run in pods of the cluster in a box whose
 * file system has no `node` at all: the directories holding it are covered by empty tmpfs mounts in the
 * pod's own mount namespace. The pods see the machine's /usr and /etc without those directories, plus a
 * few tools of their own at /tools (copies of dash and some coreutils).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterInABox, type PodFileSystem, type PodSpec } from './e2e/cluster.js';
import { destroyBoxAfterEach } from './e2e/teardown.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };

let work: string;
/** The built binary, as the kubepeers image would hold it. */
let binary: string;
/** The main containers' userland: sh (dash), cat, cp, env, find, test. */
let tools: string;

/** `text` as a regular expression that matches it literally. */
const esc = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every file `node` that a pod of the box could find: this Node.js and each `node` on PATH. */
function nodeFiles(): string[] {
  const files = new Set([process.execPath, realpathSync(process.execPath)]);
  const found = execFileSync('sh', ['-c', 'command -v node'], { encoding: 'utf8' }).trim();
  files.add(found).add(realpathSync(found));
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const file = join(dir, 'node');
    if (existsSync(file)) files.add(file).add(realpathSync(file));
  }
  return [...files];
}

/** The directories holding them, without symbolic links: what a pod must not see. */
function nodeDirectories(): string[] {
  return [...new Set(nodeFiles().map((f) => realpathSync(dirname(f))))];
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'kp-binary-'));
  await chmod(work, 0o755);
  const image = join(work, 'kubepeers-image');
  tools = join(work, 'tools');
  await mkdir(image, { mode: 0o755 });
  await mkdir(tools, { mode: 0o755 });
  binary = join(image, 'kubepeers');
  // The script `npm run build:binary` runs after tsc (pretest built dist/), into a file of this test.
  // Its summary line (size, seconds per step) goes to the test's stderr.
  execFileSync(process.execPath, [join(ROOT, 'scripts/build-binary.mjs'), '--out', binary], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (const [name, cmd] of [
    ['sh', 'dash'],
    ['cat', 'cat'],
    ['cp', 'cp'],
    ['env', 'env'],
    ['find', 'find'],
    ['test', 'test'],
  ] as const) {
    // The program on PATH (not sh's builtin of the name, as `command -v test` would give).
    const from = (process.env.PATH ?? '/usr/bin:/bin')
      .split(delimiter)
      .map((dir) => join(dir, cmd))
      .find((f) => existsSync(f));
    if (!from) throw new Error(`${cmd} is not on PATH (${process.env.PATH ?? ''})`);
    await copyFile(from, join(tools, name));
    await chmod(join(tools, name), 0o755);
  }
}, 180_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

let box: ClusterInABox | undefined;

destroyBoxAfterEach(() => {
  const b = box;
  box = undefined;
  return b;
});

/** An emptyDir: a fresh directory every user may write, as kubelet makes one. */
async function emptyDir(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  await chmod(dir, 0o777);
  return dir;
}

/** find's arguments after the paths: prints each executable file named node or nodejs, or link to one. */
const FIND_NODE = String.raw`\( -name node -o -name nodejs \) -xtype f -exec test -x {} \; -printf "node: FOUND file %p\n"`;

/**
 * A shell script that says which `node` a pod can find or run: `node: none` when it can find none, else
 * `node: FOUND <what>` lines. It looks on PATH, at every path where the machine has node, and runs
 * this Node.js's path.
 */
function probeNode(): string {
  const paths = nodeFiles();
  return [
    'found=0',
    'if p=$(command -v node); then echo "node: FOUND on PATH at $p"; found=1; fi',
    ...paths.map((p) => `if [ -e '${p}' ]; then echo 'node: FOUND file ${p}'; found=1; fi`),
    `'${process.execPath}' --version >/dev/null 2>&1 && { echo 'node: FOUND runnable ${process.execPath}'; found=1; }`,
    '[ "$found" = 1 ] || echo "node: none"',
  ].join('\n');
}

/**
 * The top-level directories of a main container's root, as an image's: no /tmp, /work, /home, /root or
 * /opt, where other copies of node may lie (node@24 from npm is under /tmp in CI).
 */
const IMAGE_ROOT = ['usr', 'etc', 'dev', 'proc', 'sys'];

/**
 * A main container's file system: the machine's /usr, /etc and kernel file systems (no other top-level
 * directory), every directory holding node hidden, the userland at /tools and the given volumes.
 */
function withoutNode(volumes: PodFileSystem['volumes'] = []): {
  fs: PodFileSystem;
  env: Record<string, string>;
} {
  return {
    fs: {
      only: IMAGE_ROOT,
      hide: nodeDirectories(),
      volumes: [{ mountPath: '/tools', hostPath: tools, readOnly: true }, ...volumes],
      workdir: '/',
    },
    // The machine's PATH too: what makes node unfindable is the hiding, not the PATH.
    env: { PATH: `/tools${delimiter}${process.env.PATH ?? '/usr/bin:/bin'}` },
  };
}

describe('the standalone binary', () => {
  it('is this Node.js, stripped, with the CLI in it: the version line of dist/bin.js, no warning; NODE_OPTIONS ignored on Node 24', async () => {
    // This Node.js, stripped of its symbols, with the SEA fuse flipped (postject) and the blob in it.
    const file = await readFile(binary);
    expect(file.subarray(0, 4)).toEqual(Buffer.from('\x7fELF', 'latin1'));
    expect(file.includes('NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1')).toBe(true);
    expect(file.includes('NODE_SEA_BLOB')).toBe(true);
    expect(spawnSync(binary, ['-p', 'process.version'], { encoding: 'utf8', env: {} }).stderr).toContain(
      'Unknown option',
    );
    // Stripped (smaller than the node it came from) and that node's version inside.
    expect(file.length).toBeLessThan((await stat(process.execPath)).size);
    expect(file.includes(process.version)).toBe(true);
    const viaNode = execFileSync(process.execPath, [join(ROOT, 'dist/bin.js'), '--version'], {
      encoding: 'utf8',
    });
    expect(viaNode).toMatch(new RegExp(`^kubepeers ${esc(pkg.version)} \\(wire protocol \\d+\\)\\n$`));
    const run = spawnSync(binary, ['--version'], { encoding: 'utf8', env: {} });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(viaNode);
    // disableExperimentalSEAWarning: nothing on stderr.
    expect(run.stderr).toBe('');
    // A bad flag is the CLI's own configuration error (exit 2), not Node.js's.
    const bad = spawnSync(binary, ['wait', '--size', 'two'], { encoding: 'utf8', env: {} });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('ERR_KUBEPEERS_CONFIG');
    expect(bad.stderr).toContain('"two"');
    // An image's NODE_OPTIONS is meant for its own Node.js programs. Node 24 lets the binary ignore it
    // (execArgvExtension "none"); Node 20 cannot, and applies it to the binary too (docs/binary.md).
    const major = Number(process.versions.node.split('.')[0]);
    const withOptions = spawnSync(binary, ['--version'], {
      encoding: 'utf8',
      env: { NODE_OPTIONS: '--require /nonexistent/preload.js' },
    });
    if (major >= 24) expect(withOptions.stdout).toBe(viaNode);
    else expect(withOptions.stderr).toContain("Cannot find module '/nonexistent/preload.js'");
  });

  it('stays out of the npm package', async () => {
    // A package directory with this package.json and a dist/ holding a (stand-in) binary.
    const dir = join(work, 'pack');
    await mkdir(join(dir, 'dist'), { recursive: true });
    for (const f of ['package.json', 'README.md', 'LICENSE']) await copyFile(join(ROOT, f), join(dir, f));
    await writeFile(join(dir, 'dist', 'bin.js'), '');
    await writeFile(join(dir, 'dist', 'kubepeers-linux-x64'), '');
    const packed = JSON.parse(
      execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--loglevel=error'], {
        cwd: dir,
        encoding: 'utf8',
      }),
    ) as { files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/bin.js');
    expect(files).not.toContain('dist/kubepeers-linux-x64');
  });

  it('runs --version in a pod whose file system has no node (and the same probe finds node in a pod that sees the machine)', async () => {
    box = await ClusterInABox.create();
    const image = dirname(binary);
    // Besides the probe: the root's entries, and every executable file named node or nodejs (or link to
    // one) in the whole tree but the kernel's file systems.
    const script = [
      probeNode(),
      'echo "root:" /*',
      `find /usr /etc /kp /tools ${FIND_NODE}`,
      '/kp/kubepeers --version',
    ].join('\n');
    const volumes = [{ mountPath: '/kp', hostPath: image, readOnly: true }];
    const [hidden, control] = await box.preparePods([0, 1]);
    const bare = withoutNode(volumes);
    const pods = box.launchPods([hidden!], { command: ['sh', '-c', script], ...bare });
    // The control pod: the same tools and volumes, the machine's whole root, nothing hidden.
    pods.push(
      ...box.launchPods([control!], {
        command: ['sh', '-c', script],
        fs: { volumes: bare.fs.volumes ?? [], workdir: '/' },
        env: bare.env,
      }),
    );
    const exits = await Promise.all(pods.map((p) => p.exited));
    const [without, withNode] = pods;
    expect(exits[0]!.code, without!.stderr).toBe(0);
    const links = (await readdir('/', { withFileTypes: true })).filter((e) => e.isSymbolicLink());
    const root = [...IMAGE_ROOT, ...links.map((e) => e.name), 'kp', 'tools'].map((n) => `/${n}`).sort();
    expect(without!.stdout).toBe(
      `node: none\nroot: ${root.join(' ')}\n${/^kubepeers .*\n/m.exec(without!.stdout)?.[0]}`,
    );
    expect(without!.stdout).toMatch(
      new RegExp(`^kubepeers ${esc(pkg.version)} \\(wire protocol \\d+\\)$`, 'm'),
    );
    expect(withNode!.stdout).toContain(`node: FOUND runnable ${process.execPath}`);
    expect(withNode!.stdout).toMatch(/node: FOUND on PATH at \//);
    // The find sees, in a pod that sees the machine, what it sees on the machine.
    const onMachine = execFileSync('sh', ['-c', `find /usr /etc ${FIND_NODE}`], { encoding: 'utf8' });
    for (const line of onMachine.split('\n').filter(Boolean)) expect(withNode!.stdout).toContain(line);
    expect(withNode!.stdout).toContain(`kubepeers ${pkg.version} (wire protocol `);
  });

  it('the init container pattern: kubepeers copied into an emptyDir, then `/kp/kubepeers wait -- <cmd>` in pods without node', async () => {
    box = await ClusterInABox.create();
    const size = 3;
    const prepared = await box.preparePods([...Array(size).keys()]);
    const image = dirname(binary);
    const mains: PodSpec[] = [];
    for (const pod of prepared) {
      const kp = await emptyDir(`kp-${pod.index}`);
      // The init container: the kubepeers image (node and all), which copies the binary into the emptyDir.
      const init = await box.runInit(pod, {
        command: ['cp', '/kubepeers-image/kubepeers', '/kp/kubepeers'],
        fs: {
          volumes: [
            { mountPath: '/kubepeers-image', hostPath: image, readOnly: true },
            { mountPath: '/kp', hostPath: kp },
          ],
        },
      });
      expect(init.code, init.stderr).toBe(0);
      // The main container: any image (here: no node), the emptyDir at /kp.
      const bare = withoutNode([{ mountPath: '/kp', hostPath: kp }]);
      const cmd = [
        probeNode(),
        'echo "env: MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT RANK=$RANK WORLD_SIZE=$WORLD_SIZE"',
        'echo "env: KUBEPEERS_INDEX=$KUBEPEERS_INDEX KUBEPEERS_SIZE=$KUBEPEERS_SIZE KUBEPEERS_COORDINATOR=$KUBEPEERS_COORDINATOR"',
        'echo "roster: $KUBEPEERS_ROSTER"',
      ].join('\n');
      mains.push({
        command: ['/kp/kubepeers', 'wait', '--format', 'kubepeers,torch', '--', 'sh', '-c', cmd],
        fs: bare.fs,
        env: { ...bare.env, KUBEPEERS_SIZE: String(size) },
      });
    }
    const pods = prepared.map((p, k) => box!.launchPods([p], mains[k]!)[0]!);
    await box.markReady(...pods.map((p) => p.index));
    const exits = await Promise.all(pods.map((p) => p.exited));
    const coordinator = box.fqdn(0);
    for (const pod of pods) {
      const why = `pod ${pod.index} stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`;
      expect(exits[pod.index]!.code, why).toBe(0);
      expect(pod.stdout, why).toContain('node: none\n');
      expect(pod.stdout, why).not.toContain('FOUND');
      expect(pod.stdout).toContain(
        `env: MASTER_ADDR=${coordinator} MASTER_PORT=29500 RANK=${pod.index} WORLD_SIZE=${size}\n`,
      );
      expect(pod.stdout).toContain(
        `env: KUBEPEERS_INDEX=${pod.index} KUBEPEERS_SIZE=${size} KUBEPEERS_COORDINATOR=${coordinator}\n`,
      );
      const roster = JSON.parse(/^roster: (.*)$/m.exec(pod.stdout)?.[1] ?? 'null') as {
        index: number;
        size: number;
        peers: { index: number; ip: string }[];
      };
      expect(roster.index).toBe(pod.index);
      expect(roster.size).toBe(size);
      const others = pods.filter((p) => p.index !== pod.index);
      for (const o of others)
        expect(roster.peers).toContainEqual(expect.objectContaining({ index: o.index, ip: o.ip }));
      expect(pod.stderr).toContain(`kubepeers: released: pod ${pod.index} of ${size} `);
    }
  });

  it('`env` in pods without node: the exports it prints, evaluated by the shell, name the roster', async () => {
    box = await ClusterInABox.create();
    const size = 3;
    const image = dirname(binary);
    const bare = withoutNode([{ mountPath: '/kp', hostPath: image, readOnly: true }]);
    const cmd = [
      probeNode(),
      'exports="$(/kp/kubepeers env --format kubepeers,torch)" || exit $?',
      'eval "$exports"',
      'echo "env: MASTER_ADDR=$MASTER_ADDR RANK=$RANK WORLD_SIZE=$WORLD_SIZE KUBEPEERS_PEERS=$KUBEPEERS_PEERS"',
    ].join('\n');
    const pods = await box.startPods([...Array(size).keys()], {
      command: ['sh', '-c', cmd],
      fs: bare.fs,
      env: { ...bare.env, KUBEPEERS_SIZE: String(size) },
    });
    await box.markReady(...pods.map((p) => p.index));
    const exits = await Promise.all(pods.map((p) => p.exited));
    const fqdn = (i: number): string => box!.fqdn(i);
    for (const pod of pods) {
      const why = `pod ${pod.index} stdout:\n${pod.stdout}\nstderr:\n${pod.stderr}`;
      expect(exits[pod.index]!.code, why).toBe(0);
      expect(pod.stdout, why).toContain('node: none\n');
      const line = /^env: (.*)$/m.exec(pod.stdout)?.[1];
      expect(line, why).toMatch(
        new RegExp(`^MASTER_ADDR=${esc(fqdn(0))} RANK=${pod.index} WORLD_SIZE=${size} KUBEPEERS_PEERS=`),
      );
      const peers = line!.split('KUBEPEERS_PEERS=')[1]!.split(' ');
      expect(peers.sort()).toEqual([...Array(size).keys()].map(fqdn).sort());
    }
  });
});
