/** What the CLI prints while it waits, and where a failure goes (stderr, JSON events, the termination log). */
import { access, constants, writeFile } from 'node:fs/promises';
import type { PeersResult } from '../barrier.js';
import { TimeoutError, type KubepeersError } from '../errors.js';
import type { Progress } from '../options.js';
import { roster } from '../outputs.js';

/** Progress on stderr: one updating line on a TTY, rate-limited lines otherwise, or JSON events. */
export class Reporter {
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

/** Writes the failure where kubelet picks it up for `kubectl describe pod`, if that file is writable. */
export async function terminationLog(path: string, message: string): Promise<void> {
  try {
    await access(path, constants.W_OK);
    await writeFile(path, message.slice(0, 4000));
  } catch {
    // Not in a pod, or not writable: stderr has it anyway.
  }
}
