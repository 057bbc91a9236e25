/**
 * The protocol core's entry point: the machine for a pod's role. Roles are separate state machines (a
 * coordinator, a member); the topology is data to them (whom a member checks, what the coordinator
 * tells), not a branch of a shared one.
 */
import { Coordinator } from './coordinator.js';
import { Member } from './member.js';
import type { PodConfig } from './pod.js';
import type { Machine } from './types.js';

export { MAX_QUERIES, type Fault, type PodConfig } from './pod.js';
export { maxInbound } from './coordinator.js';
export type { CoreConfig, DnsResult, Input, Machine, Output } from './types.js';

/** The machine of this pod's role, with its stats for the simulator's bounds. */
export function createMachine(config: PodConfig): Machine & {
  stats(): ReturnType<Coordinator['stats']>;
  /** Handshakes ended so far, by outcome (`ok`, or why one failed), for metrics. */
  readonly handshakes: Readonly<Record<string, number>>;
} {
  return config.index === config.coordinator ? new Coordinator(config) : new Member(config);
}
