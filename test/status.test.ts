import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TimeoutError } from '../src/index.js';
import {
  createMetrics,
  probePeersHttp,
  prometheusText,
  serveStatus,
  type BarrierStatus,
} from '../src/status.js';
import { rosterOf } from './helpers/roster.js';

const result = rosterOf({ job: 't', svc: 's', ns: 'n', size: 3, index: 0, ip: (i) => `10.9.0.${i + 1}` });

// The peers' HTTP endpoints are the edge of this module: mocked with msw.
const mock = setupServer();
beforeAll(() => mock.listen({ onUnhandledRequest: 'error' }));
afterEach(() => mock.resetHandlers());
afterAll(() => mock.close());

describe('probePeersHttp', () => {
  it('retries each peer until its health endpoint answers 2xx, and never asks itself', async () => {
    const calls: string[] = [];
    let flaky = 0;
    mock.use(
      http.get('http://10.9.0.2:8080/healthz', () => {
        calls.push('1');
        return flaky++ < 2 ? new HttpResponse(null, { status: 503 }) : HttpResponse.text('ok');
      }),
      http.get('http://10.9.0.3:8080/healthz', () => {
        calls.push('2');
        return HttpResponse.text('ok');
      }),
    );
    await probePeersHttp(result, { path: '/healthz', port: 8080, timeoutMs: 10_000 });
    expect(calls.filter((c) => c === '1')).toHaveLength(3);
    expect(calls.filter((c) => c === '2')).toHaveLength(1);
  });

  it('times out naming the peers that never became healthy, with the last status', async () => {
    mock.use(
      http.get('http://10.9.0.2:8080/ready', () => HttpResponse.text('ok')),
      http.get('http://10.9.0.3:8080/ready', () => new HttpResponse(null, { status: 500 })),
    );
    const err = await probePeersHttp(result, { path: '/ready', port: 8080, timeoutMs: 1200 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).missing).toEqual([
      {
        index: 2,
        fqdn: 't-2.s.n.svc.cluster.local.',
        reason: 'http-unhealthy',
        detail: 'GET http://10.9.0.3:8080/ready answered 500',
      },
    ]);
  });

  it('reports a network error by its code', async () => {
    mock.use(
      http.get('http://10.9.0.2:8080/h', () => HttpResponse.error()),
      http.get('http://10.9.0.3:8080/h', () => HttpResponse.text('ok')),
    );
    const err = (await probePeersHttp(result, { path: '/h', port: 8080, timeoutMs: 800 }).catch(
      (e: unknown) => e,
    )) as TimeoutError;
    expect(err.missing.map((m) => [m.index, m.reason])).toEqual([[1, 'http-unhealthy']]);
    expect(err.missing[0]!.detail).toContain('http://10.9.0.2:8080/h');
  });
});

describe('prometheusText', () => {
  it('writes the status gauges and the counters in the text exposition format', () => {
    const metrics = createMetrics();
    metrics.dnsQueries.ok = 3;
    metrics.dnsQueries.nxdomain = 2;
    metrics.handshakes.mismatch = 1;
    metrics.handshakes['we"ird\\'] = 1; // escaped as label values must be
    const before = prometheusText({ released: false, ready: 1, total: 3, missing: [2, 3] }, metrics);
    expect(before).toBe(
      [
        '# HELP kubepeers_released Whether the barrier released this pod (1) or not yet (0).',
        '# TYPE kubepeers_released gauge',
        'kubepeers_released 0',
        '# HELP kubepeers_failed Whether the barrier failed on this pod (1) or not (0).',
        '# TYPE kubepeers_failed gauge',
        'kubepeers_failed 0',
        '# HELP kubepeers_peers_ready Peers verified, as in the last progress report.',
        '# TYPE kubepeers_peers_ready gauge',
        'kubepeers_peers_ready 1',
        '# HELP kubepeers_peers_total Peers this pod checks.',
        '# TYPE kubepeers_peers_total gauge',
        'kubepeers_peers_total 3',
        '# HELP kubepeers_dns_queries_total DNS queries answered, by outcome (one per record type).',
        '# TYPE kubepeers_dns_queries_total counter',
        'kubepeers_dns_queries_total{outcome="ok"} 3',
        'kubepeers_dns_queries_total{outcome="nxdomain"} 2',
        'kubepeers_dns_queries_total{outcome="nodata"} 0',
        'kubepeers_dns_queries_total{outcome="error"} 0',
        '# HELP kubepeers_handshakes_total Handshakes ended, by outcome (ok, or why they failed).',
        '# TYPE kubepeers_handshakes_total counter',
        'kubepeers_handshakes_total{outcome="ok"} 0',
        'kubepeers_handshakes_total{outcome="mismatch"} 1',
        'kubepeers_handshakes_total{outcome="we\\"ird\\\\"} 1',
        '',
      ].join('\n'),
    );
    metrics.releaseMs = 1234;
    const after = prometheusText({ released: true, ready: 3, total: 3, missing: [] }, metrics);
    expect(after).toContain('kubepeers_released 1\n');
    expect(after).toContain('# TYPE kubepeers_release_seconds gauge\nkubepeers_release_seconds 1.234\n');
    expect(
      prometheusText({ released: false, ready: 0, total: 1, missing: [1], error: 'x' }, undefined),
    ).toContain('kubepeers_failed 1\n');
  });
});

describe('serveStatus', () => {
  it('answers /barrier 503 then 200, /healthz 200, anything else 404 or 405', async () => {
    mock.close(); // real sockets from here on
    const state: BarrierStatus = { released: false, ready: 1, total: 2, missing: [2] };
    const server = await serveStatus({ host: '127.0.0.1', port: 0, status: () => state });
    const base = `http://127.0.0.1:${server.port}`;
    try {
      let res = await fetch(`${base}/barrier`);
      expect([res.status, await res.json()]).toEqual([503, state]);
      state.released = true;
      res = await fetch(`${base}/barrier?verbose=1`);
      expect(res.status).toBe(200);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
      expect((await fetch(`${base}/barrier`, { method: 'POST' })).status).toBe(405);
      // A second server on the same port: the error says which listener could not bind.
      const clash = serveStatus({ host: '127.0.0.1', port: server.port, status: () => state });
      await expect(clash).rejects.toThrow(
        `cannot listen on 127.0.0.1:${server.port} for the status server: EADDRINUSE`,
      );
    } finally {
      await server.close();
    }
  });
});
