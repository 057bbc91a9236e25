#!/usr/bin/env node
// Runs before `npm test` (and `npm run bench`, with `--bench`): makes sure the machine has what the tests
// use besides npm packages, so the README's test command works on a fresh Debian machine by itself.
// Missing tools are installed with apt-get when we are root (saying what and why); otherwise it stops at
// once with the exact command to run. The tests need root themselves (network namespaces, one per pod).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const bench = process.argv.includes('--bench');
/** Debian's multiarch directory name: where libopenmpi-dev and libmpich-dev put mpi.h. */
const multiarch = `${{ x64: 'x86_64', arm64: 'aarch64' }[process.arch] ?? process.arch}-linux-gnu`;

/** [command on PATH, or a file by absolute path; Debian package; why the tests need it]. */
const TOOLS = [
  ['knotd', 'knot', 'the authoritative DNS server that plays cluster DNS'],
  ['knotc', 'knot', "its control client (the benchmark's Ready transactions)"],
  ['knsupdate', 'knot-dnsutils', 'dynamic updates: pods turning Ready and not Ready'],
  ['unbound', 'unbound', 'the caching resolver in front of it (CoreDNS cache / NodeLocal DNSCache)'],
  ['ip', 'iproute2', 'network namespaces, one per pod, on a bridge'],
  ['unshare', 'util-linux', "each pod's own hostname (UTS namespace)"],
  ['setpriv', 'util-linux', 'pods run as nobody without capabilities'],
  ['mount', 'mount', 'pods with a file system of their own (the standalone binary in pods without node)'],
  ['strip', 'binutils', 'the standalone binary is built from a copy of node without its symbols'],
  ['script', 'bsdutils', 'a pseudo-terminal for the CLI test of live progress on a TTY'],
  // Real framework clients in the pods (test/e2e/frameworks.test.ts). python3-torch brings ~180 packages:
  // about 30 s of apt-get here.
  [
    '/usr/lib/python3/dist-packages/torch/distributed/__init__.py',
    'python3-torch',
    'torch.distributed (gloo) under /usr/bin/python3: the torch e2e test and example-workload/k8s/train.py (manifest tests)',
  ],
  ['mpirun.openmpi', 'openmpi-bin', 'Open MPI launches one rank in each pod'],
  ['mpiexec.mpich', 'mpich', 'MPICH (hydra) launches one rank in each pod'],
  ['gcc', 'gcc', 'compiles the MPI test program (mpicc calls it)'],
  ['/usr/include/stdio.h', 'libc6-dev', 'C headers for the MPI test program'],
  [`/usr/lib/${multiarch}/openmpi/include/mpi.h`, 'libopenmpi-dev', 'mpi.h of Open MPI, for mpicc.openmpi'],
  [`/usr/include/${multiarch}/mpich/mpi.h`, 'libmpich-dev', 'mpi.h of MPICH, for mpicc.mpich'],
  ['kubectl', 'kubernetes-client', 'renders example-workload/k8s with `kubectl kustomize` (manifest tests)'],
  ...(bench
    ? [
        ['ping', 'iputils-ping', "the Kubernetes docs' ping loop, the benchmark's baseline"],
        ['/usr/bin/time', 'time', "each pod's CPU time and peak memory"],
      ]
    : []),
];

const PATH_DIRS = (process.env.PATH ?? '/usr/bin:/bin').split(delimiter);
// On PATH: the tests start these by name.
const found = (cmd) =>
  cmd.includes('/') ? existsSync(cmd) : PATH_DIRS.some((dir) => existsSync(join(dir, cmd)));

const say = (line) => process.stderr.write(`setup-tests: ${line}\n`);
const root = process.getuid?.() === 0;
const missing = TOOLS.filter(([cmd]) => !found(cmd));
const packages = [...new Set(missing.map(([, pkg]) => pkg))];
const aptCommand = `apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`;

// Installed, but in a system directory this shell's PATH lacks (root through `su` without `-`).
const offPath = missing.filter(
  ([cmd]) => !cmd.includes('/') && ['/usr/sbin', '/sbin'].some((d) => existsSync(join(d, cmd))),
);
if (offPath.length > 0) {
  say(
    `${offPath.map(([cmd]) => cmd).join(', ')} installed but not on PATH (${process.env.PATH ?? ''}); run:\n\n` +
      `    PATH="$PATH:/usr/sbin:/sbin" ${bench ? 'npm run bench' : 'npm test'}\n`,
  );
  process.exit(1);
}

if (packages.length > 0) {
  for (const [cmd, pkg, why] of missing) say(`missing ${cmd} (Debian package ${pkg}): ${why}`);
  if (!root || !found('apt-get')) {
    say(`install them first, then run this again:\n\n    sudo sh -c '${aptCommand}'\n`);
    process.exit(1);
  }
  say(`installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', '-qq'],
    ['install', '-y', '-qq', '--no-install-recommends', ...packages],
  ]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.status !== 0) {
      say(
        `apt-get ${args.join(' ')} failed (exit ${r.status ?? r.signal}); run it by hand:\n\n    ${aptCommand}\n`,
      );
      process.exit(1);
    }
  }
  const still = TOOLS.filter(([cmd]) => !found(cmd)).map(([cmd]) => cmd);
  if (still.length > 0) {
    say(`still missing after apt-get: ${still.join(', ')}`);
    process.exit(1);
  }
}

if (!root) {
  say(
    'the tests run pods in network namespaces as root (ip netns, setpriv); run them as root:\n\n' +
      `    sudo ${bench ? 'npm run bench' : 'npm test'}\n`,
  );
  process.exit(1);
}

// The e2e pods run `node` as nobody: the Node binary that runs the tests must be readable by it.
try {
  execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', ''], {
    stdio: 'ignore',
  });
} catch {
  say(
    `${process.execPath} cannot be run by nobody (uid 65534), as the e2e pods run it: make it and its ` +
      `directories world-readable (chmod -R o+rX), or use a Node installed system-wide`,
  );
  process.exit(1);
}
