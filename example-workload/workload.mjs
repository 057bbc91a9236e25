// The example workload: what a pod of an Indexed Job runs, in the spirit of the Kubernetes docs'
// pod-to-pod example: one line per peer reached, then exit 0.
//
// Under the CLI (`kubepeers wait -- node workload.mjs`) the barrier has passed already and the roster
// comes in KUBEPEERS_ROSTER, with the framework env (MASTER_ADDR, ...) beside it. Run on its own, it calls
// waitForPeers() itself; inside a pod it then needs only JOB_COMPLETION_INDEX and KUBEPEERS_SIZE.
import { waitForPeers } from 'kubepeers';

async function roster() {
  if (process.env.KUBEPEERS_ROSTER) return JSON.parse(process.env.KUBEPEERS_ROSTER);
  return waitForPeers({
    onProgress: ({ ready, total, missing }) =>
      console.error(
        `${ready}/${total} peers ready${missing.length ? `; waiting for ${missing.join(', ')}` : ''}`,
      ),
  });
}

try {
  const job = await roster();
  for (const peer of job.peers) {
    if (peer.index !== job.index)
      console.log(`reached ${peer.fqdn} (index ${peer.index}) at ${peer.ip}:${peer.port}`);
  }
  console.log(
    `pod ${job.index} of ${job.size} released after ${job.elapsedMs} ms; coordinator ${job.coordinator.fqdn}`,
  );
  if (process.env.MASTER_ADDR)
    console.log(
      `torch: MASTER_ADDR=${process.env.MASTER_ADDR} RANK=${process.env.RANK} WORLD_SIZE=${process.env.WORLD_SIZE}`,
    );
} catch (err) {
  console.error(`kubepeers: ${err.code ?? 'error'}: ${err.message}`);
  process.exitCode = err.code === 'ERR_KUBEPEERS_TIMEOUT' ? 124 : err.code === 'ERR_KUBEPEERS_CONFIG' ? 2 : 1;
}
