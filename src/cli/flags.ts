/**
 * The CLI's flags: each with its env variable, default and help, from which `--help`, the option table of
 * docs/cli.md (`npm run docs:cli`) and the parsing in plan.ts are all derived. Library settings take their
 * env names and defaults from src/settings.ts.
 */
import { createRequire } from 'node:module';
import { PROTOCOL_VERSION } from '../core/wire.js';
import { ENV_FORMATS } from '../outputs.js';
import type { WaitForPeersOptions } from '../options.js';
import {
  AUTO_MESH_MAX_SIZE,
  DEFAULT_LABELS_PATH,
  DEFAULT_POLL_TEXT,
  DEFAULTS,
  ENV,
  formatDuration,
} from '../settings.js';

type Kind = 'string' | 'int' | 'duration' | 'bool' | 'list';
/** Where kubelet reads a container's termination message. */
export const DEFAULT_TERMINATION_LOG = '/dev/termination-log';

export interface Flag {
  name: string;
  env: string;
  kind: Kind;
  /** Shown in --help; undefined: none. */
  default?: string;
  help: string;
  /** Read by the library itself from env (so its errors name the env variable). */
  library?: keyof WaitForPeersOptions;
  /** A one-letter flag, where one is conventional (wait-for-it's `-t` and `-q`). */
  short?: string;
}

export const FLAGS: Flag[] = [
  {
    name: 'size',
    env: ENV.size,
    kind: 'int',
    help: 'number of pods (the Job completions); required but in a JobSet',
    library: 'size',
  },
  { name: 'index', env: ENV.index, kind: 'int', help: "this pod's completion index", library: 'index' },
  {
    name: 'job-name',
    env: ENV.jobName,
    kind: 'string',
    default: 'from hostname <job>-<index>',
    help: 'Job name',
    library: 'jobName',
  },
  {
    name: 'jobset-name',
    env: ENV.jobSetName,
    kind: 'string',
    default: 'labels file, else from hostname',
    help: 'JobSet name (makes this a JobSet pod)',
    library: 'jobSetName',
  },
  {
    name: 'replicated-jobs',
    env: ENV.replicatedJobs,
    kind: 'string',
    default: "this pod's, replicas from labels file",
    help: 'JobSet replicated jobs in spec order: name:REPLICASxPODS,...',
    library: 'replicatedJobs',
  },
  {
    name: 'pods-per-job',
    env: ENV.podsPerJob,
    kind: 'int',
    help: 'JobSet: pods per child Job where --replicated-jobs does not say',
    library: 'podsPerJob',
  },
  {
    name: 'labels-file',
    env: ENV.labelsPath,
    kind: 'string',
    default: DEFAULT_LABELS_PATH,
    help: 'downward API file of pod labels (read if present)',
    library: 'labelsPath',
  },
  {
    name: 'subdomain',
    env: ENV.subdomain,
    kind: 'string',
    default: 'from /etc/hosts',
    help: 'headless Service (pod subdomain)',
    library: 'subdomain',
  },
  {
    name: 'namespace',
    env: ENV.namespace,
    kind: 'string',
    default: 'from /etc/hosts or resolv.conf',
    help: 'namespace',
    library: 'namespace',
  },
  {
    name: 'cluster-domain',
    env: ENV.clusterDomain,
    kind: 'string',
    default: 'from /etc/hosts, else resolv.conf search list, else cluster.local',
    help: 'cluster domain',
    library: 'clusterDomain',
  },
  {
    name: 'run-id',
    env: ENV.runId,
    kind: 'string',
    default: 'empty',
    help: "id of this run (an Indexed Job's controller-uid label; a JobSet's from its labels file)",
    library: 'runId',
  },
  {
    name: 'secret-file',
    env: 'KUBEPEERS_SECRET_FILE',
    kind: 'string',
    default: `env ${ENV.secret}`,
    help: 'file holding the shared handshake secret',
  },
  {
    name: 'port',
    env: ENV.port,
    kind: 'int',
    default: String(DEFAULTS.port),
    help: 'responder port on every pod',
    library: 'port',
  },
  {
    name: 'timeout',
    env: ENV.timeoutMs,
    kind: 'duration',
    default: formatDuration(DEFAULTS.timeoutMs),
    help: 'give up after this long (exit 124)',
    library: 'timeoutMs',
    short: 't',
  },
  {
    name: 'poll-interval',
    env: ENV.pollIntervalMs,
    kind: 'duration',
    default: DEFAULT_POLL_TEXT,
    help: "mean interval of the coordinator's Service polls",
    library: 'pollIntervalMs',
  },
  {
    name: 'linger',
    env: ENV.lingerMs,
    kind: 'duration',
    default: formatDuration(DEFAULTS.lingerMs),
    help: 'keep answering late peers after release',
    library: 'lingerMs',
  },
  {
    name: 'topology',
    env: ENV.topology,
    kind: 'string',
    default: `auto (mesh up to ${AUTO_MESH_MAX_SIZE} pods, star above)`,
    help: 'mesh, star or auto; the same on every pod',
    library: 'topology',
  },
  {
    name: 'family',
    env: 'KUBEPEERS_FAMILY',
    kind: 'string',
    default: 'from the pod IP',
    help: '4, 6 or dual',
  },
  {
    name: 'listen-address',
    env: 'KUBEPEERS_LISTEN_ADDRESS',
    kind: 'string',
    default: 'pod IP from /etc/hosts',
    help: 'responder listen address',
  },
  {
    name: 'nameservers',
    env: 'KUBEPEERS_NAMESERVERS',
    kind: 'list',
    default: 'from /etc/resolv.conf',
    help: 'comma-separated addr[:port]',
  },
  {
    name: 'log-format',
    env: 'KUBEPEERS_LOG_FORMAT',
    kind: 'string',
    default: 'text',
    help: 'text or json (one event per line) on stderr',
  },
  {
    name: 'quiet',
    env: 'KUBEPEERS_QUIET',
    kind: 'bool',
    default: 'false',
    help: 'print errors only (env: true/false, 1/0, yes/no)',
    short: 'q',
  },
  {
    name: 'format',
    env: 'KUBEPEERS_FORMAT',
    kind: 'list',
    default: DEFAULTS.formats.join(','),
    help: `env integrations: ${ENV_FORMATS.join(',')},all,none`,
  },
  {
    name: 'master-port',
    env: 'KUBEPEERS_MASTER_PORT',
    kind: 'int',
    default: String(DEFAULTS.masterPort),
    help: 'torch MASTER_PORT / PET_MASTER_PORT',
  },
  {
    name: 'nproc-per-node',
    env: 'KUBEPEERS_NPROC_PER_NODE',
    kind: 'int',
    default: String(DEFAULTS.nprocPerNode),
    help: 'processes per pod (torchrun, hostfile slots, Horovod)',
  },
  {
    name: 'jax-port',
    env: 'KUBEPEERS_JAX_PORT',
    kind: 'int',
    default: String(DEFAULTS.jaxPort),
    help: 'JAX coordinator port',
  },
  {
    name: 'tf-port',
    env: 'KUBEPEERS_TF_PORT',
    kind: 'int',
    default: String(DEFAULTS.tfPort),
    help: 'TensorFlow worker port in TF_CONFIG',
  },
  {
    name: 'ray-port',
    env: 'KUBEPEERS_RAY_PORT',
    kind: 'int',
    default: String(DEFAULTS.rayPort),
    help: 'Ray head port',
  },
  {
    name: 'write-env',
    env: 'KUBEPEERS_WRITE_ENV',
    kind: 'string',
    help: 'write the env as `export` lines here (for `source`)',
  },
  {
    name: 'write-hostfile',
    env: 'KUBEPEERS_WRITE_HOSTFILE',
    kind: 'string',
    help: 'write an Open MPI hostfile (host slots=N) here',
  },
  {
    name: 'write-mpich-hostfile',
    env: 'KUBEPEERS_WRITE_MPICH_HOSTFILE',
    kind: 'string',
    help: 'write an MPICH/Intel MPI hostfile (host:N) here',
  },
  {
    name: 'write-roster',
    env: 'KUBEPEERS_WRITE_ROSTER',
    kind: 'string',
    help: 'write the roster as JSON here',
  },
  {
    name: 'serve-status',
    env: 'KUBEPEERS_SERVE_STATUS',
    kind: 'string',
    help: '[host]:port for GET /barrier (200 released, 503 before) and /metrics (Prometheus)',
  },
  {
    name: 'probe-http',
    env: 'KUBEPEERS_PROBE_HTTP',
    kind: 'string',
    help: 'after the barrier, GET this path on every peer until 2xx',
  },
  {
    name: 'probe-http-port',
    env: 'KUBEPEERS_PROBE_HTTP_PORT',
    kind: 'int',
    help: "your workload's HTTP port, for --probe-http (required with it)",
  },
  {
    name: 'termination-log',
    env: 'KUBEPEERS_TERMINATION_LOG',
    kind: 'string',
    default: DEFAULT_TERMINATION_LOG,
    help: 'failure reason goes here if writable',
  },
];

const WAIT_USAGE = `  kubepeers wait [options] [-- command [args...]]
      Wait until every pod of this Indexed Job resolves in DNS and proves its identity, then run the
      command with the integration env (or just exit 0). Signals are forwarded to the command; the exit
      code is the command's.`;
const ENV_USAGE = `  kubepeers env [options]
      Wait the same way, then print the integration env as shell exports:
      eval "$(kubepeers env --format torch)"`;
const EXIT_CODES = `Exit codes: 0 success, 1 other failure, 2 configuration error (before any network I/O), 124 barrier
timeout, 126 command not executable, 127 command not found, 128+n killed by signal n, otherwise the
command's own code.`;

/** `--help` text (of one command, or of both): every option with its env name and default. */
export function helpText(command?: 'wait' | 'env'): string {
  const usage =
    command === 'wait' ? WAIT_USAGE : command === 'env' ? ENV_USAGE : `${WAIT_USAGE}\n${ENV_USAGE}`;
  const rows = FLAGS.map((f) => {
    const arg =
      f.kind === 'bool' ? '' : ` <${f.kind === 'duration' ? 'duration' : f.kind === 'int' ? 'n' : 'value'}>`;
    const name = f.short ? `-${f.short}, --${f.name}` : `--${f.name}`;
    return `  ${name}${arg}\n      ${f.help}. env ${f.env}${f.default ? `; default: ${f.default}` : ''}`;
  });
  return (
    `Usage:\n${usage}\n\n${EXIT_CODES}\n\nOptions (before or after the command; every one also settable by ` +
    `its env variable; flags win):\n${rows.join('\n')}\n  -h, --help\n  -V, --version\n\n` +
    'Durations: 1500 (ms), 1500ms, 90s, 10m, 1h, 1m30s.\n'
  );
}

/**
 * The options table of docs/cli.md, cell by cell (option, env variable, default, meaning), from the same
 * flags as `--help`; test/cli.test.ts checks that the page says exactly this.
 */
export function optionRows(): [string, string, string, string][] {
  const rows = FLAGS.map((f): [string, string, string, string] => {
    const arg =
      f.kind === 'bool' ? '' : ` <${f.kind === 'duration' ? 'duration' : f.kind === 'int' ? 'n' : 'value'}>`;
    const option = f.short ? `\`--${f.name}${arg}\`, \`-${f.short}\`` : `\`--${f.name}${arg}\``;
    // Placeholders such as <job>-<index> as code: bare, markdown would take them for HTML tags.
    const code = (text: string): string => text.replace(/\S*<[^>]+>\S*/g, (m) => `\`${m}\``);
    return [option, `\`${f.env}\``, code(f.default ?? '—'), code(f.help)];
  });
  rows.push(['`--help`, `-h`', '', '', 'print the help (of the command given, if any) and exit 0']);
  rows.push(['`--version`, `-V`', '', '', 'print the version and the wire protocol version, and exit 0']);
  return rows;
}

/** `--version`: the package version and the wire protocol it speaks (every pod of a job needs the same). */
export function versionText(): string {
  const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
  return `kubepeers ${pkg.version} (wire protocol ${PROTOCOL_VERSION})\n`;
}

/** The flag named `name` (one of {@link FLAGS}). */
export function flag(name: string): Flag {
  const f = FLAGS.find((x) => x.name === name);
  if (!f) throw new Error(`no flag --${name}`);
  return f;
}
