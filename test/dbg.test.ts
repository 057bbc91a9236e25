import { it } from 'vitest';
import { waitForPeers } from '../src/index.js';
import { podRecords } from './helpers/knot.js';
import { knotJobs } from './helpers/knot-jobs.js';
import { podOptions } from './helpers/pods.js';
const jobs = knotJobs('dbg', (n, i) => `127.0.${n}.${10 + i}`);
it('star C last', async () => {
  const spec = await jobs.newJob(3);
  const options = await Promise.all([0, 1, 2].map((i) => podOptions(jobs.dir, spec, i, { topology: 'star', timeoutMs: 3000 })));
  const waits = options.map((o) => waitForPeers(o).then(() => 'ok', (e: Error) => e.message));
  for (let i = 2; i >= 0; i--) { await jobs.knot.update(podRecords('add', `${spec.job}-${i}`, spec.svc, spec.ns, spec.ip(i))); await new Promise((r) => setTimeout(r, 40)); }
  console.log(await Promise.all(waits));
}, 20000);
