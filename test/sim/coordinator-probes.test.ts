// A Service shared with other jobs (a LeaderWorkerSet's groups, a JobSet barrier over some of its
// replicated jobs) lists running pods that are not members, for good. The coordinator probes such an
// address to learn whose it is; it used to probe again after the first backoff step every time (125-375
// ms: about 120 connections a minute to each stranger). It now backs off per address, up to the retry
// maximum. Driven on the core directly: one coordinator, its Service answer, and connects that fail.
import { describe, expect, it } from 'vitest';
import { scopeKey } from '../../src/core/handshake.js';
import { createMachine, type PodConfig } from '../../src/core/machine.js';
import type { Scope } from '../../src/core/wire.js';

const STRANGER = '10.244.9.9';

function probesIn(ms: number, fail: 'connect-failed' | 'refused-handshake'): number {
  const scope: Scope = {
    namespace: 'ml',
    subdomain: 'workers',
    clusterDomain: 'cluster.local',
    jobName: 'train',
    runId: '',
    size: 3,
    topology: 'star',
  };
  let seed = 7;
  const config: PodConfig = {
    scope,
    key: scopeKey(scope, undefined),
    index: 0,
    instance: 'i0',
    selfAddress: '10.244.1.1',
    nameOf: (k) => `train-${k}.workers.ml.svc.cluster.local.`,
    service: 'workers.ml.svc.cluster.local.',
    coordinator: 0,
    pollMs: 50,
    retryMinMs: 250,
    retryMaxMs: 10_000,
    connectTimeoutMs: 3000,
    random: () => (seed = (seed * 48271) % 2147483647) / 2147483647,
    nonce: () => `n${seed}`,
  };
  const core = createMachine(config);
  let now = 0;
  let probes = 0;
  core.start(now);
  const drain = (): void => {
    for (let round = 0; round < 100; round++) {
      const out = core.poll();
      if (out.length === 0) return;
      for (const o of out) {
        if (o.type === 'query') {
          const result =
            o.name === config.service
              ? { status: 'ok' as const, addresses: [config.selfAddress, STRANGER], ttlMs: 5000 }
              : { status: 'nxdomain' as const, ttlMs: 5000, detail: `${o.name}: NXDOMAIN` };
          core.handle(now, { type: 'dns', id: o.id, result });
        } else if (o.type === 'connect' && o.address === STRANGER) {
          probes++;
          if (fail === 'connect-failed') {
            core.handle(now, { type: 'connect-failed', conn: o.conn, detail: 'ECONNREFUSED' });
          } else {
            // Something that speaks, but not as a member: it hangs up during the handshake.
            core.handle(now, { type: 'connected', conn: o.conn });
            core.handle(now, { type: 'closed', conn: o.conn });
          }
        }
      }
    }
  };
  drain();
  while (now < ms) {
    const next = core.nextTimer();
    if (next === undefined) break;
    now = Math.max(now, next);
    core.handle(now, { type: 'tick' });
    drain();
  }
  core.stop(now, 'timeout');
  return probes;
}

describe('coordinator probes of a Service address that is not a member', () => {
  it.each(['connect-failed', 'refused-handshake'] as const)(
    'back off per address up to the retry maximum (%s): at most 12 probes in a minute, not ~120',
    (fail) => {
      const n = probesIn(60_000, fail);
      // 250 ms doubling to 10 s, jittered x0.5-1.5: about 10 probes in the first minute.
      expect(n).toBeGreaterThan(3);
      expect(n).toBeLessThanOrEqual(12);
    },
  );
});
