/**
 * argv and env into a plan for main.ts: every CLI setting parsed and checked (exit 2 on anything wrong)
 * before any network I/O; configuration errors of the library told in the CLI's terms.
 */
import { access, constants, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';
import { isTrainerEnv } from '../family.js';
import { parseDuration, parseNameserver, type WaitForPeersOptions } from '../options.js';
import { ENV_FORMATS, type EnvFormat, type IntegrationOptions } from '../outputs.js';
import { DEFAULTS } from '../settings.js';
import { DEFAULT_TERMINATION_LOG, flag, FLAGS } from './flags.js';

/** A configuration error found by the CLI itself. */
export class UsageError extends ConfigError {}

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
  const name = FLAG_OF_OPTION[err.setting];
  if (name === undefined) return err;
  const given = settings.get(name);
  let source = err.source;
  const either = /^option \S+ or env (\S+)$/.exec(source);
  if (either) {
    // Missing everywhere: name the flag too.
    source = `flag --${name} or env ${either[1]}`;
  } else if (source.startsWith('option ')) {
    if (!given) return err;
    source = given.source;
  } else if (source !== `env ${flag(name).env}`) {
    return err; // an env variable the library reads that no flag stands for (KUBEPEERS_SECRET)
  }
  return new ConfigError(name, source, err.value, err.expected, { cause: err });
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

export interface Plan {
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
export interface HelpRequest {
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
  // In a Kubeflow Trainer node the Trainer set torchrun's PET_* (its port, its processes per node): the
  // default leaves them as they are.
  const defaults = isTrainerEnv(env) ? DEFAULTS.formats.filter((f) => f !== 'torchrun') : DEFAULTS.formats;
  const requested = String(formatSetting?.value ?? defaults.join(','))
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
    masterPort: port('master-port', DEFAULTS.masterPort),
    nprocPerNode: intOf('nproc-per-node', s.get('nproc-per-node'), DEFAULTS.nprocPerNode, 1, 4096),
    jaxPort: port('jax-port', DEFAULTS.jaxPort),
    tfPort: port('tf-port', DEFAULTS.tfPort),
    rayPort: port('ray-port', DEFAULTS.rayPort),
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
    timeoutMs: (timeoutSetting && parseDuration(String(timeoutSetting.value))) || DEFAULTS.timeoutMs,
    command,
    argv: program,
    wait,
    integrations,
    formats,
    logFormat,
    quiet,
    files,
    terminationLog: str('termination-log') ?? DEFAULT_TERMINATION_LOG,
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
        `flag --probe-http-port or env ${flag('probe-http-port').env}`,
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
