// The example workload: what a pod of an Indexed Job runs after (or instead of) `kubepeers wait`.
// Like the Kubernetes docs' example, it prints one line per peer it reached, then exits 0.
// Inside a pod it needs only JOB_COMPLETION_INDEX (from Kubernetes) and KUBEPEERS_SIZE.
import { waitForPeers } from 'kubepeers';

try {
  const job = await waitForPeers({
    onProgress: ({ ready, total, missing }) =>
      console.error(
        `${ready}/${total} peers ready${missing.length ? `; waiting for ${missing.join(', ')}` : ''}`,
      ),
  });
  for (const peer of job.peers) {
    if (peer.index !== job.index)
      console.log(`reached ${peer.fqdn} (index ${peer.index}) at ${peer.ip}:${peer.port}`);
  }
  console.log(
    `pod ${job.index} of ${job.size} released after ${job.elapsedMs} ms; coordinator ${job.coordinator.fqdn}`,
  );
} catch (err) {
  console.error(`kubepeers: ${err.code ?? 'error'}: ${err.message}`);
  process.exitCode = err.code === 'ERR_KUBEPEERS_TIMEOUT' ? 124 : err.code === 'ERR_KUBEPEERS_CONFIG' ? 2 : 1;
}
