/**
 * waitForPeers(): the barrier. The protocol lives in src/core/ (state machines without I/O), the sockets,
 * resolver and timers around it in src/engine.ts; docs/protocol.md describes both topologies and why
 * neither can strand a pod.
 */
import { Engine, type PeersResult } from './engine.js';
import { AbortedError } from './errors.js';
import { resolveConfig, type WaitForPeersOptions } from './options.js';

export type { Peer, PeersResult } from './engine.js';

/**
 * Waits until every pod of this Indexed Job resolves in cluster DNS and proves its identity over TCP
 * (to every other pod in a mesh, to the coordinator in a star), and the coordinator has seen every pod
 * pass. Resolves with the roster; rejects with a {@link KubepeersError} (`ERR_KUBEPEERS_CONFIG` before
 * any I/O, `ERR_KUBEPEERS_LISTEN`, `ERR_KUBEPEERS_TIMEOUT`, `ERR_KUBEPEERS_ABORTED`). After it settles
 * nothing it started keeps the process alive, except on the coordinator after a release: until every
 * member acknowledged it (bounded by `connectTimeoutMs` per 64 members, plus two).
 */
export async function waitForPeers(options: WaitForPeersOptions = {}): Promise<PeersResult> {
  const started = performance.now();
  const config = await resolveConfig(options);
  if (config.signal?.aborted) throw new AbortedError({ cause: config.signal.reason });
  return new Engine(config, started).run();
}
