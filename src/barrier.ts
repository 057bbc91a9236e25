/**
 * waitForPeers(): the barrier. The pods check each other as a full mesh (src/mesh.ts) or through the
 * coordinator (src/star.ts); docs/protocol.md describes both and why neither can strand a pod.
 */
import { AbortedError } from './errors.js';
import { MeshBarrier } from './mesh.js';
import { resolveConfig, type WaitForPeersOptions } from './options.js';
import type { PeersResult } from './session.js';
import { StarBarrier } from './star.js';

export type { Peer, PeersResult } from './session.js';

/**
 * Waits until every pod of this Indexed Job resolves in cluster DNS and proves its identity over TCP
 * (to every other pod in a mesh, to the coordinator in a star), and every pod has verified this one (in a
 * star: the coordinator has verified everyone). Resolves with the roster; rejects with a
 * {@link KubepeersError} (`ERR_KUBEPEERS_CONFIG` before any I/O, `ERR_KUBEPEERS_LISTEN`,
 * `ERR_KUBEPEERS_TIMEOUT`, `ERR_KUBEPEERS_ABORTED`). After it settles nothing it started keeps the
 * process alive.
 */
export async function waitForPeers(options: WaitForPeersOptions = {}): Promise<PeersResult> {
  const started = performance.now();
  const config = await resolveConfig(options);
  if (config.signal?.aborted) throw new AbortedError({ cause: config.signal.reason });
  const barrier =
    config.topology === 'star' ? new StarBarrier(config, started) : new MeshBarrier(config, started);
  return barrier.run();
}
