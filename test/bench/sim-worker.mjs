// One process of the scale simulation (test/bench/scale.run.ts): runs the pods `from`..`to` of one job
// through the built library, each on its own loopback address with a kubelet-style hosts file. Prints
// "ready" once set up, starts all pods when "go" arrives on stdin, and prints one JSON summary at the end.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForPeers } from '../../dist/index.js';
import { peerFqdn, peerHostname } from '../../dist/internals.js';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ip = (i) => `127.${spec.octet}.${Math.floor(i / 250)}.${1 + (i % 250)}`;
const dir = join(tmpdir(), `kpsim-${process.pid}`);
mkdirSync(dir, { recursive: true });
const options = [];
// Index 0's admission curve: [ms since go, peers ready], at most every 250 ms.
const curve = [];
let goAt = 0;
function onProgress(p) {
  const t = Date.now() - goAt;
  if (curve.length === 0 || t - curve.at(-1)[0] >= 250 || p.ready === p.total) curve.push([t, p.ready]);
}
for (let i = spec.from; i < spec.to; i++) {
  const host = `${spec.job}-${i}`;
  const fqdn = `${host}.${spec.svc}.${spec.ns}.svc.cluster.local`;
  const hostsPath = join(dir, `${i}.hosts`);
  writeFileSync(hostsPath, `127.0.0.1\tlocalhost\n${ip(i)}\t${fqdn}\t${host}\n`);
  options.push({
    index: i,
    size: spec.size,
    hostname: host,
    hostsPath,
    resolvConfPath: join(dir, 'none'),
    namespace: spec.ns,
    nameservers: [spec.dns],
    port: spec.port,
    topology: spec.topology,
    timeoutMs: spec.timeoutMs,
    env: {},
    ...(i === 0 ? { onProgress } : {}),
  });
}

console.log('ready');
const lines = createInterface({ input: process.stdin });
await new Promise((resolve) => lines.once('line', resolve));
goAt = Date.now();

const releasedAt = [];
const errors = [];
// The no-check floor: released at once with the roster a release would build (see engine.ts).
const names = { jobName: spec.job, subdomain: spec.svc, namespace: spec.ns, clusterDomain: 'cluster.local' };
const noCheck = async (o) => {
  // One pod per turn of the event loop, as releases come: the 10 000-entry rosters of every pod of the
  // process are not all alive at once (they were: a 1 667-pod process died building them).
  await new Promise((r) => setImmediate(r));
  const peers = [];
  for (let k = 0; k < spec.size; k++)
    peers.push({
      index: k,
      hostname: peerHostname(names, k),
      fqdn: peerFqdn(names, k),
      ip: ip(k),
      port: spec.port,
    });
  return { peers, self: peers[o.index] };
};
await Promise.all(
  options.map((o) =>
    (spec.topology === 'floor' ? noCheck(o) : waitForPeers(o)).then(
      (r) => {
        releasedAt.push(Date.now());
        if (r.peers.some((p, k) => p.ip !== ip(k))) errors.push(`index ${o.index}: wrong roster`);
      },
      (err) => errors.push(`index ${o.index}: ${err.message}`),
    ),
  ),
);
rmSync(dir, { recursive: true, force: true });
const cpu = process.cpuUsage();
const mem = process.resourceUsage().maxRSS;
console.log(
  JSON.stringify({
    pods: options.length,
    released: releasedAt.length,
    firstRelease: Math.min(...releasedAt),
    lastRelease: Math.max(...releasedAt),
    errors: errors.slice(0, 3),
    failed: errors.length,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    maxRssKb: mem,
    ...(curve.length ? { curve } : {}),
  }),
);
// Like a pod that goes on to run its workload, stay up (the lingering responder answering late peers)
// until the harness has every summary and closes stdin.
await new Promise((resolve) => process.stdin.once('close', resolve).once('end', resolve));
