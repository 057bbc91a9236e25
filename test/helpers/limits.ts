import { readFile } from 'node:fs/promises';

/** The hard limit on open files of this process: what a child may be given without privileges. */
export async function hardNofile(): Promise<number> {
  const limits = await readFile('/proc/self/limits', 'utf8');
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(limits);
  return m?.[1] === 'unlimited' ? 1_048_576 : Number(m?.[1] ?? 1024);
}
