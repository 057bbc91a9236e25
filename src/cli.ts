/**
 * The kubepeers command line. The only module that touches the process: argv, env, stdout/stderr,
 * signals and the exit code.
 *
 *   kubepeers wait [options] [-- command args...]
 *   kubepeers env --format <formats> [options]
 */
import { spawn } from 'node:child_process';
import { access, constants, readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { parseArgs } from 'node:util';
import { dirname } from 'node:path';
import { waitForPeers, type PeersResult } from './barrier.js';
import { PROTOCOL_VERSION } from './core/wire.js';
import { ConfigError, KubepeersError, OutputError, TimeoutError } from './errors.js';
import {
  DEFAULT_PORT,
  ENV,
  parseDuration,
  parseNameserver,
  type Progress,
  type WaitForPeersOptions,
} from './options.js';
import {
  ENV_FORMATS,
  envFor,
  mpichHostfile,
  openMpiHostfile,
  roster,
  shellExports,
  writeFileAtomic,
  type EnvFormat,
  type IntegrationOptions,
} from './outputs.js';
import {
  createMetrics,
  probePeersHttp,
  serveStatus,
  type BarrierStatus,
  type StatusServer,
} from './status.js';

/** Exit codes, documented in docs/cli.md. */
export const EXIT = { ok: 0, failure: 1, config: 2, timeout: 124 } as const;

type Kind = 'string' | 'int' | 'duration' | 'bool' | 'list';
interface Flag {
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

const FLAGS: Flag[] = [
  {
    name: 'size',
    env: ENV.size,
    kind: 'int',
    help: 'number of pods (the Job completions); required',
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
    help: 'id of this run (downward API controller-uid label)',
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
    default: String(DEFAULT_PORT),
    help: 'responder port on every pod',
    library: 'port',
  },
  {
    name: 'timeout',
    env: ENV.timeoutMs,
    kind: 'duration',
    default: '10m',
    help: 'give up after this long (exit 124)',
    library: 'timeoutMs',
    short: 't',
  },
  {
    name: 'poll-interval',
    env: ENV.pollIntervalMs,
    kind: 'duration',
    default: 'size / 5 ms in [10ms, 2s]',
    help: "mean interval of the coordinator's Service polls",
    library: 'pollIntervalMs',
  },
  {
    name: 'linger',
    env: ENV.lingerMs,
    kind: 'duration',
    default: '10m',
    help: 'keep answering late peers after release',
    library: 'lingerMs',
  },
  {
    name: 'topology',
    env: ENV.topology,
    kind: 'string',
    default: 'auto (mesh up to 256 pods, star above)',
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
    default: 'all',
    help: `env integrations: ${ENV_FORMATS.join(',')},all,none`,
  },
  {
    name: 'master-port',
    env: 'KUBEPEERS_MASTER_PORT',
    kind: 'int',
    default: '29500',
    help: 'torch MASTER_PORT / PET_MASTER_PORT',
  },
  {
    name: 'nproc-per-node',
    env: 'KUBEPEERS_NPROC_PER_NODE',
    kind: 'int',
    default: '1',
    help: 'processes per pod (torchrun, hostfile slots, Horovod)',
  },
  { name: 'jax-port', env: 'KUBEPEERS_JAX_PORT', kind: 'int', default: '1234', help: 'JAX coordinator port' },
  {
    name: 'tf-port',
    env: 'KUBEPEERS_TF_PORT',
    kind: 'int',
    default: '2222',
    help: 'TensorFlow worker port in TF_CONFIG',
  },
  { name: 'ray-port', env: 'KUBEPEERS_RAY_PORT', kind: 'int', default: '6379', help: 'Ray head port' },
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
    default: '/dev/termination-log',
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
  const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
  return `kubepeers ${pkg.version} (wire protocol ${PROTOCOL_VERSION})\n`;
}

class UsageError extends ConfigError {}

interface Setting {
  value: string | boolean;
  source: string;
}

/** Values given by flag or by env, with their source; flags win. */
function collect(
  values: Record<string, string | boolean | undefined>,
  env: NodeJS.ProcessEnv,
): Map<string, Setting> {
  const out = new Map<string, Setting>();
  for (const f of FLAGS) {
    const v = values[f.name];
    if (v !== undefined) out.set(f.name, { value: v, source: `flag --${f.name}` });
    else if (env[f.env] !== undefined && env[f.env] !== '')
      out.set(f.name, { value: env[f.env]!, source: `env ${f.env}` });
  }
  return out;
}

/** The CLI flag behind each library option the CLI sets. */
const FLAG_OF_OPTION: Record<string, string> = {
  ...Object.fromEntries(FLAGS.filter((f) => f.library).map((f) => [f.library!, f.name])),
  listenAddress: 'listen-address',
  family: 'family',
  nameservers: 'nameservers',
  secret: 'secret-file',
};

/**
 * The library names options as its API does (`option size`, `timeoutMs`); a CLI user typed a flag or set
 * an env variable. Rewrites a library ConfigError to name the flag and where its value came from.
 */
function explainConfigError(err: unknown, settings: Map<string, Setting>): unknown {
  if (!(err instanceof ConfigError) || err instanceof UsageError) return err;
  const flag = FLAG_OF_OPTION[err.setting];
  if (flag === undefined) return err;
  const given = settings.get(flag);
  let source = err.source;
  if (source.startsWith('option ')) {
    if (!given) return err;
    source = given.source;
  } else if (source !== `env ${FLAGS.find((f) => f.name === flag)?.env}`) {
    return err; // an env variable the library reads that no flag stands for (KUBEPEERS_SECRET)
  }
  return new ConfigError(flag, source, err.value, err.expected, { cause: err });
}

/**
 * Whether a file can be written at `path`: its directory exists and is writable (files are written to a
 * temporary name there and renamed), and the path is not a directory.
 */
async function writable(path: string): Promise<void> {
  const dir = dirname(path);
  const info = await stat(dir).catch((err: NodeJS.ErrnoException) => {
    throw new Error(
      err.code === 'ENOENT' ? `directory ${dir} does not exist` : `${dir}: ${err.code ?? err.message}`,
    );
  });
  if (!info.isDirectory()) throw new Error(`${dir} is not a directory`);
  await access(dir, constants.W_OK).catch(() => {
    throw new Error(`directory ${dir} is not writable`);
  });
  const target = await stat(path).catch(() => undefined);
  if (target?.isDirectory()) throw new Error(`${path} is a directory`);
}

/** A boolean flag, or its env variable: true/false, 1/0, yes/no, on/off (any case); anything else is an error. */
function bool(name: string, s: Setting | undefined, fallback: boolean): boolean {
  if (!s) return fallback;
  if (typeof s.value === 'boolean') return s.value;
  const text = s.value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(text)) return true;
  if (['0', 'false', 'no', 'off'].includes(text)) return false;
  throw new UsageError(name, s.source, s.value, 'true or false (or 1/0, yes/no, on/off)');
}

function intOf(name: string, s: Setting | undefined, fallback: number, min: number, max: number): number {
  if (!s) return fallback;
  const n = typeof s.value === 'string' && /^\d+$/.test(s.value.trim()) ? Number(s.value) : NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(name, s.source, s.value, `an integer from ${min} to ${max}`);
  return n;
}

interface Plan {
  /** The barrier timeout (flag or env), for the deadline of what follows the barrier. */
  timeoutMs: number;
  command: 'wait' | 'env';
  argv: string[];
  wait: WaitForPeersOptions;
  integrations: IntegrationOptions;
  formats: EnvFormat[];
  logFormat: 'text' | 'json';
  quiet: boolean;
  files: { envFile?: string; hostfile?: string; mpichHostfile?: string; rosterFile?: string };
  serveStatus?: { host: string; port: number };
  probeHttp?: { path: string; port: number };
  terminationLog: string;
  /** A configuration error of the library, told in the CLI's terms: the flag or env variable it came from. */
  explain(err: unknown): unknown;
}

/** What `--help` asked for: the help of one command, or of all. */
interface HelpRequest {
  help: 'wait' | 'env' | undefined;
}

/** Parses argv and env into a plan; throws a ConfigError (exit 2) for anything wrong. */
export async function plan(args: string[], env: NodeJS.ProcessEnv): Promise<Plan | HelpRequest | 'version'> {
  if (args.length === 0) return { help: undefined };
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      tokens: true,
      options: {
        ...Object.fromEntries(
          FLAGS.map((f) => [
            f.name,
            {
              type: f.kind === 'bool' ? ('boolean' as const) : ('string' as const),
              ...(f.short ? { short: f.short } : {}),
            },
          ]),
        ),
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (err) {
    throw new UsageError(
      'arguments',
      'argv',
      args.join(' '),
      `valid options (${(err as Error).message}; see kubepeers --help)`,
    );
  }
  // The command is the first word before `--` (options may come before or after it); the words after it
  // are the program to run.
  const end = parsed.tokens.findIndex((t) => t.kind === 'option-terminator');
  const word = (end < 0 ? parsed.tokens : parsed.tokens.slice(0, end)).find((t) => t.kind === 'positional');
  const command = word?.kind === 'positional' ? word.value : undefined;
  if (parsed.values.version) return 'version';
  if (command === 'help') return { help: undefined };
  if (command !== undefined && command !== 'wait' && command !== 'env') {
    throw new UsageError('command', 'argv', command, '"wait" or "env" (see kubepeers --help)');
  }
  if (parsed.values.help) return { help: command };
  if (command === undefined) {
    throw new UsageError('command', 'argv', undefined, '"wait" or "env" (see kubepeers --help)');
  }
  const program = parsed.positionals.slice(1);
  if (command === 'env' && program.length > 0) {
    throw new UsageError('command', 'argv', program.join(' '), 'no command after "kubepeers env"');
  }
  const s = collect(parsed.values as Record<string, string | boolean | undefined>, env);

  const wait: WaitForPeersOptions = { env };
  for (const f of FLAGS) {
    const v = s.get(f.name);
    // Flags for library settings become options; their env variables are left to the library.
    if (!f.library || !v || !v.source.startsWith('flag')) continue;
    const text = String(v.value);
    if (f.kind === 'duration') {
      const ms = parseDuration(text);
      if (ms === undefined)
        throw new UsageError(f.name, v.source, text, 'a duration such as 1500, 90s or 10m');
      (wait as Record<string, unknown>)[f.library] = ms;
    } else if (f.kind === 'int') {
      // Range checks (index < size, port <= 65535) are the library's, with the same message style.
      if (!/^\d{1,15}$/.test(text.trim()))
        throw new UsageError(f.name, v.source, text, 'a non-negative integer');
      (wait as Record<string, unknown>)[f.library] = Number(text);
    } else {
      (wait as Record<string, unknown>)[f.library] = text;
    }
  }
  const family = s.get('family');
  if (family) {
    const f = String(family.value);
    if (f !== '4' && f !== '6' && f !== 'dual')
      throw new UsageError('family', family.source, f, '4, 6 or dual');
    wait.family = f === 'dual' ? 'dual' : (Number(f) as 4 | 6);
  }
  const listen = s.get('listen-address');
  if (listen) wait.listenAddress = String(listen.value);
  const ns = s.get('nameservers');
  if (ns) {
    const list = String(ns.value)
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
    list.forEach((n) => parseNameserver(n, ns.source));
    wait.nameservers = list;
  }
  const secretFile = s.get('secret-file');
  if (secretFile) {
    let secret: string;
    try {
      secret = (await readFile(String(secretFile.value), 'utf8')).trim();
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new UsageError('secret-file', secretFile.source, secretFile.value, `a readable file (${why})`, {
        cause: err,
      });
    }
    // An empty file must not quietly turn the secret off (a Secret mounted without its key, say).
    if (secret === '')
      throw new UsageError(
        'secret-file',
        secretFile.source,
        secretFile.value,
        'a file holding the secret (it is empty)',
      );
    wait.secret = secret;
  }

  const logFormat = String(s.get('log-format')?.value ?? 'text');
  if (logFormat !== 'text' && logFormat !== 'json') {
    throw new UsageError('log-format', s.get('log-format')!.source, logFormat, '"text" or "json"');
  }
  const quiet = bool('quiet', s.get('quiet'), false);

  const formatSetting = s.get('format');
  const requested = String(formatSetting?.value ?? 'all')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  let formats: EnvFormat[];
  if (requested.includes('all')) formats = [...ENV_FORMATS];
  else if (requested.length === 1 && requested[0] === 'none') formats = [];
  else {
    const bad = requested.filter((f) => !(ENV_FORMATS as readonly string[]).includes(f));
    if (bad.length > 0) {
      throw new UsageError(
        'format',
        formatSetting!.source,
        formatSetting!.value,
        `a comma-separated list of ${ENV_FORMATS.join(', ')}, all or none`,
      );
    }
    formats = requested as EnvFormat[];
  }
  if (command === 'env' && formats.length === 0) formats = ['kubepeers'];

  const port = (name: string, fallback: number): number => intOf(name, s.get(name), fallback, 1, 65535);
  const integrations: IntegrationOptions = {
    masterPort: port('master-port', 29500),
    nprocPerNode: intOf('nproc-per-node', s.get('nproc-per-node'), 1, 1, 4096),
    jaxPort: port('jax-port', 1234),
    tfPort: port('tf-port', 2222),
    rayPort: port('ray-port', 6379),
  };
  const str = (name: string): string | undefined => {
    const v = s.get(name);
    return v === undefined ? undefined : String(v.value);
  };
  const files: Plan['files'] = {};
  const outputs: [keyof Plan['files'], string][] = [
    ['envFile', 'write-env'],
    ['hostfile', 'write-hostfile'],
    ['mpichHostfile', 'write-mpich-hostfile'],
    ['rosterFile', 'write-roster'],
  ];
  for (const [key, name] of outputs) {
    const path = str(name);
    if (!path) continue;
    // Checked now, before any network I/O: found out after the barrier, the peers would be released
    // already while this pod fails.
    await writable(path).catch((err: unknown) => {
      throw new UsageError(
        name,
        s.get(name)!.source,
        path,
        `a file path we can write (${(err as Error).message})`,
        {
          cause: err,
        },
      );
    });
    files[key] = path;
  }

  const timeoutSetting = s.get('timeout');
  const result: Plan = {
    timeoutMs: (timeoutSetting && parseDuration(String(timeoutSetting.value))) || 600_000,
    command,
    argv: program,
    wait,
    integrations,
    formats,
    logFormat,
    quiet,
    files,
    terminationLog: str('termination-log') ?? '/dev/termination-log',
    explain: (err) => explainConfigError(err, s),
  };
  const status = s.get('serve-status');
  if (status) {
    const m = /^(?:\[?([^\]]*?)\]?)?:(\d+)$/.exec(String(status.value));
    const p = m ? Number(m[2]) : NaN;
    if (!m || !Number.isInteger(p) || p < 0 || p > 65535) {
      throw new UsageError(
        'serve-status',
        status.source,
        status.value,
        '[host]:port such as :8080 or 127.0.0.1:8080',
      );
    }
    result.serveStatus = { host: m[1] || '0.0.0.0', port: p };
  }
  const probe = s.get('probe-http');
  if (probe) {
    const path = String(probe.value);
    if (!path.startsWith('/'))
      throw new UsageError('probe-http', probe.source, path, 'a path starting with /');
    const probePort = s.get('probe-http-port');
    if (!probePort)
      throw new UsageError(
        'probe-http-port',
        `flag --probe-http-port or env KUBEPEERS_PROBE_HTTP_PORT`,
        undefined,
        "your workload's HTTP port (required with --probe-http)",
      );
    const n = port('probe-http-port', 0);
    if (result.serveStatus?.port === n)
      throw new UsageError(
        'probe-http-port',
        probePort.source,
        probePort.value,
        `a port other than --serve-status's ${n} (that is kubepeers' own status server, not your workload)`,
      );
    result.probeHttp = { path, port: n };
  }
  return result;
}

/** Progress on stderr: one updating line on a TTY, rate-limited lines otherwise, or JSON events. */
class Reporter {
  private lastLine = 0;
  private pending: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly format: 'text' | 'json',
    private readonly quiet: boolean,
    private readonly tty: boolean,
  ) {}

  progress(p: Progress): void {
    if (this.quiet) return;
    if (this.format === 'json') return this.json({ event: 'progress', ...p });
    if (p.warning) process.stderr.write(`${this.tty ? '\r\x1b[K' : ''}kubepeers: warning: ${p.warning}\n`);
    const shown =
      p.missing.slice(0, 20).join(', ') +
      (p.missing.length > 20 ? `, ... (${p.missing.length - 20} more)` : '');
    const line = `${p.ready}/${p.total} peers ready${p.missing.length ? `; waiting for ${shown}` : ''}`;
    if (this.tty) {
      process.stderr.write(`\r${line}\x1b[K`);
      return;
    }
    // Off a TTY: at most one line a second; the latest state is printed when the second is over.
    const now = Date.now();
    if (now - this.lastLine >= 1000) {
      this.lastLine = now;
      process.stderr.write(`kubepeers: ${line}\n`);
    } else {
      this.pending = line;
      this.timer ??= setTimeout(() => this.flush(), 1000 - (now - this.lastLine)).unref();
    }
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending === undefined) return;
    this.lastLine = Date.now();
    process.stderr.write(`kubepeers: ${this.pending}\n`);
    this.pending = undefined;
  }

  done(r: PeersResult): void {
    clearTimeout(this.timer);
    this.pending = undefined;
    if (this.quiet) return;
    if (this.format === 'json') return this.json({ event: 'released', ...roster(r) });
    if (this.tty) process.stderr.write('\r\x1b[K');
    process.stderr.write(
      `kubepeers: released: pod ${r.index} of ${r.size} (${r.self.fqdn}) after ${r.elapsedMs} ms, topology ${r.topology}; coordinator ${r.coordinator.fqdn} (${r.coordinator.ip})\n`,
    );
  }

  error(err: unknown): void {
    clearTimeout(this.timer);
    const e = err as Partial<KubepeersError>;
    if (this.format === 'json') {
      return this.json({
        event: 'error',
        code: e.code ?? 'ERR_KUBEPEERS_UNEXPECTED',
        message: e.message ?? String(err),
        ...(err instanceof TimeoutError ? { missing: err.missing } : {}),
      });
    }
    if (this.tty && !this.quiet) process.stderr.write('\r\x1b[K');
    process.stderr.write(`kubepeers: ${e.code ?? 'ERR_KUBEPEERS_UNEXPECTED'}: ${e.message ?? String(err)}\n`);
  }

  json(event: object): void {
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
  }
}

function exitCodeOf(err: unknown, signal: NodeJS.Signals | undefined): number {
  if (signal) return signalExit(signal);
  if (err instanceof ConfigError) return EXIT.config;
  if (err instanceof TimeoutError) return EXIT.timeout;
  return EXIT.failure;
}

/** The conventional exit code of a process ended by `signal`: 128 + its number. */
function signalExit(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 15);
}

/** Writes the failure where kubelet picks it up for `kubectl describe pod`, if that file is writable. */
async function terminationLog(path: string, message: string): Promise<void> {
  try {
    await access(path, constants.W_OK);
    await writeFile(path, message.slice(0, 4000));
  } catch {
    // Not in a pod, or not writable: stderr has it anyway.
  }
}

/** Runs the CLI; resolves with the exit code. */
export async function main(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let p: Awaited<ReturnType<typeof plan>>;
  try {
    p = await plan(args, env);
  } catch (err) {
    // Reported like any other failure: with its code, as JSON if asked for, and in the termination log.
    const json =
      args.includes('--log-format=json') ||
      args.join(' ').includes('--log-format json') ||
      env.KUBEPEERS_LOG_FORMAT === 'json';
    new Reporter(json ? 'json' : 'text', false, false).error(err);
    await terminationLog(
      env.KUBEPEERS_TERMINATION_LOG ?? '/dev/termination-log',
      `kubepeers: ERR_KUBEPEERS_CONFIG: ${(err as Error).message}\n`,
    );
    return EXIT.config;
  }
  if (p === 'version') {
    process.stdout.write(versionText());
    return EXIT.ok;
  }
  if ('help' in p) {
    process.stdout.write(helpText(p.help));
    return EXIT.ok;
  }
  const reporter = new Reporter(p.logFormat, p.quiet, process.stderr.isTTY === true);
  const abort = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    caught = signal;
    abort.abort(new Error(`received ${signal}`));
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const status: BarrierStatus = { released: false, ready: 0, total: 0, missing: [] };
  let server: StatusServer | undefined;
  try {
    const metrics = createMetrics();
    if (p.serveStatus) server = await serveStatus({ ...p.serveStatus, status: () => status, metrics });
    const result = await waitForPeers({
      ...p.wait,
      metrics,
      signal: abort.signal,
      onProgress: (progress) => {
        Object.assign(status, { ready: progress.ready, total: progress.total, missing: progress.missing });
        reporter.progress(progress);
      },
    });
    if (p.probeHttp) {
      await probePeersHttp(result, {
        ...p.probeHttp,
        timeoutMs: Math.max(1000, p.timeoutMs - result.elapsedMs),
        signal: abort.signal,
      });
    }
    const childEnv: Record<string, string> = {};
    for (const f of p.formats) Object.assign(childEnv, envFor(f, result, p.integrations));
    const outputs: [string | undefined, () => string][] = [
      [p.files.envFile, () => shellExports(childEnv)],
      [p.files.hostfile, () => openMpiHostfile(result, p.integrations)],
      [p.files.mpichHostfile, () => mpichHostfile(result, p.integrations)],
      [p.files.rosterFile, () => `${JSON.stringify(roster(result), null, 2)}\n`],
    ];
    for (const [path, content] of outputs) {
      if (path)
        await writeFileAtomic(path, content()).catch((err: unknown) =>
          Promise.reject(new OutputError(path, { cause: err })),
        );
    }
    Object.assign(status, { released: true, ready: result.size - 1, total: result.size - 1, missing: [] });
    reporter.done(result);

    if (p.command === 'env') {
      process.stdout.write(shellExports(childEnv));
      return EXIT.ok;
    }
    if (p.argv.length === 0) {
      if (!server) return EXIT.ok;
      // A sidecar serving /barrier stays up (a native sidecar that exits is restarted) until told to stop.
      const keepAlive = setInterval(() => {}, 2 ** 30);
      if (!abort.signal.aborted)
        await new Promise((r) => abort.signal.addEventListener('abort', r, { once: true }));
      clearInterval(keepAlive);
      return EXIT.ok;
    }
    for (const s of signals) process.off(s, onSignal);
    if (caught) return signalExit(caught); // stopped before the command could start
    return await runChild(p.argv, { ...env, ...childEnv });
  } catch (thrown) {
    const err = p.explain(thrown);
    status.error = (err as Error).message;
    if (caught) {
      reporter.error(
        new KubepeersError('ERR_KUBEPEERS_ABORTED', `stopped by ${caught} while waiting for peers`),
      );
    } else {
      reporter.error(err);
      await terminationLog(
        p.terminationLog,
        `kubepeers: ${(err as Partial<KubepeersError>).code ?? 'error'}: ${(err as Error).message}\n`,
      );
    }
    return exitCodeOf(err, caught);
  } finally {
    for (const s of signals) process.off(s, onSignal);
    await server?.close();
  }
}

/**
 * Runs the command as a child: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 forwarded to it, its
 * exit code (or 128 + signal) returned. Unlike tini it does not reap orphaned grandchildren when it runs as
 * PID 1 (see docs/cli.md).
 */
function runChild(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env });
    const forwarded: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
    for (const s of forwarded) process.on(s, forward);
    child.on('error', (err: NodeJS.ErrnoException) => {
      for (const s of forwarded) process.off(s, forward);
      process.stderr.write(`kubepeers: cannot run ${argv[0]}: ${err.code ?? err.message}\n`);
      resolve(err.code === 'ENOENT' ? 127 : 126);
    });
    child.on('exit', (code, signal) => {
      for (const s of forwarded) process.off(s, forward);
      resolve(signal ? signalExit(signal) : (code ?? EXIT.failure));
    });
  });
}
