/**
 * One simulated pod of the demo: the same waitForPeers() call a real pod makes, with the environment a
 * pod would have (JOB_COMPLETION_INDEX, KUBEPEERS_SIZE in env; its own hosts and resolv.conf files; its
 * own address). Reports to the demo runner as JSON lines on stdout.
 */
import { waitForPeers, type KubepeersError, type WaitForPeersOptions } from '../index.js';

const now = (): number => performance.timeOrigin + performance.now();
const send = (event: object): void =>
  void process.stdout.write(`${JSON.stringify({ ...event, at: now() })}\n`);

// If the demo runner is gone there is nobody to report to; do not crash on EPIPE.
process.stdout.on('error', () => {});

const options = JSON.parse(process.argv[2] ?? '{}') as WaitForPeersOptions;
try {
  const result = await waitForPeers({
    ...options,
    onProgress: (p) => send({ t: 'progress', ready: p.ready, total: p.total, missing: p.missing }),
  });
  send({ t: 'released', elapsedMs: result.elapsedMs, peers: result.peers });
} catch (err) {
  const e = err as KubepeersError;
  send({ t: 'failed', code: e.code, message: e.message });
  process.exitCode = 1;
}
