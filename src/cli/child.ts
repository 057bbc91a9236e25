/** The command kubepeers runs after the barrier, signals, and exit codes. */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { ConfigError, TimeoutError } from '../errors.js';

/** Exit codes, documented in docs/cli.md. */
export const EXIT = { ok: 0, failure: 1, config: 2, timeout: 124 } as const;

export function exitCodeOf(err: unknown, signal: NodeJS.Signals | undefined): number {
  if (signal) return signalExit(signal);
  if (err instanceof ConfigError) return EXIT.config;
  if (err instanceof TimeoutError) return EXIT.timeout;
  return EXIT.failure;
}

/** The conventional exit code of a process ended by `signal`: 128 + its number. */
export function signalExit(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 15);
}

/**
 * Runs the command as a child: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 forwarded to it, its
 * exit code (or 128 + signal) returned. Unlike tini it does not reap orphaned grandchildren when it runs as
 * PID 1 (see docs/cli.md).
 */
export function runChild(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
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
