/**
 * The kubepeers command line. The only module that touches the process: argv, env, stdout/stderr,
 * signals and the exit code.
 *
 *   kubepeers wait [options] [-- command args...]
 *   kubepeers env --format <formats> [options]
 */
import { waitForPeers } from '../barrier.js';
import { KubepeersError, OutputError } from '../errors.js';
import { envFor, mpichHostfile, openMpiHostfile, roster, shellExports, writeFileAtomic } from '../outputs.js';
import {
  createMetrics,
  probePeersHttp,
  serveStatus,
  type BarrierStatus,
  type StatusServer,
} from '../status.js';
import { EXIT, exitCodeOf, runChild, signalExit } from './child.js';
import { DEFAULT_TERMINATION_LOG, flag, helpText, versionText } from './flags.js';
import { plan } from './plan.js';
import { Reporter, terminationLog } from './reporter.js';

export { EXIT } from './child.js';
export { helpText, optionRows, versionText } from './flags.js';

/** The value of `--name value` or `--name=value` in argv (before `--`), however the rest parses. */
function given(args: string[], name: string): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length && args[i] !== '--'; i++) {
    const a = args[i]!;
    if (a === `--${name}`) value = args[i + 1];
    else if (a.startsWith(`--${name}=`)) value = a.slice(name.length + 3);
  }
  return value;
}

/** Runs the CLI; resolves with the exit code. */
export async function main(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let p: Awaited<ReturnType<typeof plan>>;
  try {
    p = await plan(args, env);
  } catch (err) {
    // Reported like any other failure: with its code, as JSON if asked for, and in the termination log
    // (the flags could not all be read: these two are looked for as written).
    const json = (given(args, 'log-format') ?? env[flag('log-format').env]) === 'json';
    new Reporter(json ? 'json' : 'text', false, false).error(err);
    await terminationLog(
      given(args, 'termination-log') || env[flag('termination-log').env] || DEFAULT_TERMINATION_LOG,
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
