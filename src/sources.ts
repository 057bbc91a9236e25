/**
 * Where a setting comes from and the checks of one value: shared by the options (src/options.ts) and the
 * job family's identities (src/family.ts). Pure; reads nothing.
 */
import { ConfigError } from './errors.js';
import { isDnsLabel } from './identity.js';
import { ENV } from './settings.js';

/** Pods in a job, at most. */
export const MAX_SIZE = 100_000;

/** A setting's value and where it came from (`option size`, `env KUBEPEERS_SIZE`, a file). */
export interface Sourced<T> {
  value: T;
  source: string;
}

/** First defined of an option, an env variable, or a fallback; remembers where it came from. */
export function pick(
  options: object,
  key: keyof typeof ENV,
  env: Readonly<Record<string, string | undefined>>,
): Sourced<unknown> | undefined {
  const opt = (options as Record<string, unknown>)[key];
  if (opt !== undefined) return { value: opt, source: `option ${key}` };
  const fromEnv = env[ENV[key]];
  if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, source: `env ${ENV[key]}` };
  return undefined;
}

/** An integer in [min, max] (a number, or its decimal text), or a ConfigError naming the value and its source. */
export function integer(setting: string, s: Sourced<unknown>, min: number, max: number): number {
  const n = typeof s.value === 'string' && /^\s*-?\d+\s*$/.test(s.value) ? Number(s.value) : s.value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(setting, s.source, s.value, `an integer from ${min} to ${max}`);
  }
  return n;
}

/** A DNS label, or a ConfigError naming the value and its source. */
export function label(setting: string, s: Sourced<unknown>): string {
  if (typeof s.value !== 'string' || !isDnsLabel(s.value)) {
    throw new ConfigError(
      setting,
      s.source,
      s.value,
      'a DNS label (RFC 1123: lower-case letters, digits and "-", at most 63 characters)',
    );
  }
  return s.value;
}
