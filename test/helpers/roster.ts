/** A released roster for tests of what is computed from one (outputs, HTTP probe). */
import type { PeersResult } from '../../src/index.js';

export function rosterOf(o: {
  job: string;
  svc: string;
  ns: string;
  size: number;
  index: number;
  ip: (i: number) => string;
}): PeersResult {
  const peers = [...Array(o.size).keys()].map((i) => ({
    index: i,
    hostname: `${o.job}-${i}`,
    fqdn: `${o.job}-${i}.${o.svc}.${o.ns}.svc.cluster.local`,
    ip: o.ip(i),
    port: 17293,
  }));
  return {
    index: o.index,
    size: o.size,
    jobName: o.job,
    subdomain: o.svc,
    namespace: o.ns,
    clusterDomain: 'cluster.local',
    topology: 'mesh',
    self: peers[o.index]!,
    peers,
    coordinator: peers[0]!,
    elapsedMs: 1234,
  };
}
