/**
 * HTTP around the barrier: a readiness endpoint for probes and sidecars (`/barrier`: 200 once released,
 * 503 before), Prometheus metrics (`/metrics`), and an optional HTTP health check of every peer after the
 * barrier.
 */
import { createServer, type Server } from 'node:http';
import pRetry from 'p-retry';
import type { PeersResult } from './barrier.js';
import { AbortedError, ListenError, TimeoutError, type MissingPeer } from './errors.js';

/** What `/barrier` reports. */
export interface BarrierStatus {
  released: boolean;
  ready: number;
  total: number;
  missing: number[];
  /** Set when the barrier failed. */
  error?: string;
}

/** DNS answers counted in {@link BarrierMetrics}. */
export type DnsOutcome = 'ok' | 'nxdomain' | 'nodata' | 'error';

/**
 * Counters of one barrier, for `/metrics`: create them with {@link createMetrics}, give the same object
 * to `waitForPeers({ metrics })` (which counts into it) and to `serveStatus({ metrics })`. One object per
 * barrier: a second `waitForPeers` with it starts its handshake counts afresh.
 */
export interface BarrierMetrics {
  /** DNS queries answered, by outcome (one per record type asked: A, AAAA). */
  dnsQueries: Record<DnsOutcome, number>;
  /**
   * Handshakes ended, by outcome: `ok`, or why one failed (`mismatch`, `busy`, `protocol`, `timeout`,
   * `closed`, `refused`: we turned an inbound one away as busy).
   */
  handshakes: Record<string, number>;
  /** From the start of `waitForPeers` to the release (ms), once released. */
  releaseMs: number | undefined;
}

/** Zeroed {@link BarrierMetrics}. */
export function createMetrics(): BarrierMetrics {
  return { dnsQueries: { ok: 0, nxdomain: 0, nodata: 0, error: 0 }, handshakes: {}, releaseMs: undefined };
}

/**
 * The Prometheus text exposition (format 0.0.4) of a barrier's status and counters. Written by hand: six
 * series do not justify a client library (prom-client would add two dependencies and tens of ms to every
 * CLI start, and a process-wide registry to a library).
 */
export function prometheusText(status: BarrierStatus, metrics: BarrierMetrics | undefined): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    type: 'gauge' | 'counter',
    help: string,
    values: [string, number][],
  ): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of values) lines.push(`${name}${labels} ${v}`);
  };
  const label = (k: string, v: string): string =>
    `{${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"}`;
  metric('kubepeers_released', 'gauge', 'Whether the barrier released this pod (1) or not yet (0).', [
    ['', status.released ? 1 : 0],
  ]);
  metric('kubepeers_failed', 'gauge', 'Whether the barrier failed on this pod (1) or not (0).', [
    ['', status.error === undefined ? 0 : 1],
  ]);
  metric('kubepeers_peers_ready', 'gauge', 'Peers verified, as in the last progress report.', [
    ['', status.ready],
  ]);
  metric('kubepeers_peers_total', 'gauge', 'Peers this pod checks.', [['', status.total]]);
  if (metrics) {
    metric(
      'kubepeers_dns_queries_total',
      'counter',
      'DNS queries answered, by outcome (one per record type).',
      Object.entries(metrics.dnsQueries).map(([k, v]) => [label('outcome', k), v]),
    );
    metric(
      'kubepeers_handshakes_total',
      'counter',
      'Handshakes ended, by outcome (ok, or why they failed).',
      Object.entries({ ok: 0, ...metrics.handshakes }).map(([k, v]) => [label('outcome', k), v]),
    );
    if (metrics.releaseMs !== undefined)
      metric('kubepeers_release_seconds', 'gauge', 'Time from the start of the barrier to the release.', [
        ['', metrics.releaseMs / 1000],
      ]);
  }
  return `${lines.join('\n')}\n`;
}

/** Options of {@link serveStatus}. */
export interface StatusServerOptions {
  /** Listen address. Default: `0.0.0.0`. */
  host?: string;
  /** Port (0: chosen by the OS). */
  port: number;
  /** Current state, read on every request. */
  status: () => BarrierStatus;
  /** Counters for `/metrics` (the object given to `waitForPeers`). Default: only the status's gauges. */
  metrics?: BarrierMetrics;
}

/** A running status server. */
export interface StatusServer {
  /** The port bound. */
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /barrier` (200 with the status as JSON once released, 503 before or after a failure),
 * `GET /metrics` (Prometheus text: {@link prometheusText}) and `GET /healthz` (200 while the process
 * lives). Bounded: small request timeouts, at most 64 connections.
 * Never keeps the process alive.
 */
export async function serveStatus(options: StatusServerOptions): Promise<StatusServer> {
  const host = options.host ?? '0.0.0.0';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/barrier') {
      const s = options.status();
      res
        .writeHead(s.released ? 200 : 503, { 'content-type': 'application/json' })
        .end(`${JSON.stringify(s)}\n`);
    } else if (path === '/metrics') {
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(prometheusText(options.status(), options.metrics));
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else {
      res.writeHead(404).end();
    }
  });
  server.maxConnections = 64;
  server.headersTimeout = 5000;
  server.requestTimeout = 5000;
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new ListenError(host, options.port, { cause: err, listener: 'the status server' })),
    );
    server.listen(options.port, host, () => resolve());
  });
  server.unref();
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Options of {@link probePeersHttp}. */
export interface HttpProbeOptions {
  /** Path to GET on every peer, e.g. `/healthz`. */
  path: string;
  /** Port of the peers' HTTP endpoint. */
  port: number;
  /** Give up after this long. */
  timeoutMs: number;
  /** Per-request timeout. Default: 2000. */
  requestTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * GETs `http://<peer ip>:<port><path>` on every other member until each answers 2xx, retrying with
 * jittered backoff (250 ms to 5 s). Rejects with a `TimeoutError` listing the peers that never did.
 */
export async function probePeersHttp(result: PeersResult, options: HttpProbeOptions): Promise<void> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const last = new Map<number, string>();
  const others = result.peers.filter((p) => p.index !== result.index);
  await Promise.all(
    others.map((peer) => {
      const url = `http://${peer.ip.includes(':') ? `[${peer.ip}]` : peer.ip}:${options.port}${options.path}`;
      return pRetry(
        async () => {
          const res = await fetch(url, {
            signal: AbortSignal.any([signal, AbortSignal.timeout(options.requestTimeoutMs ?? 2000)]),
          });
          await res.arrayBuffer().catch(() => {}); // drain (bounded by the request timeout)
          if (res.status < 200 || res.status > 299) throw new Error(`GET ${url} answered ${res.status}`);
          last.delete(peer.index);
        },
        {
          retries: Number.POSITIVE_INFINITY,
          minTimeout: 250,
          maxTimeout: 5000,
          randomize: true,
          unref: true,
          signal,
          onFailedAttempt: ({ error }) => {
            if (error.message.startsWith(`GET ${url} answered`))
              return void last.set(peer.index, error.message);
            const cause = (error as { cause?: { code?: string; message?: string } }).cause;
            last.set(peer.index, `GET ${url} failed: ${cause?.code ?? cause?.message ?? error.message}`);
          },
        },
      ).catch(() => {
        if (!last.has(peer.index)) last.set(peer.index, `GET ${url}: no answer`);
      });
    }),
  );
  if (options.signal?.aborted) throw new AbortedError({ cause: options.signal.reason });
  if (last.size > 0) {
    const missing: MissingPeer[] = [...last].map(([index, detail]) => ({
      index,
      fqdn: `${result.peers[index]!.fqdn}.`,
      reason: 'http-unhealthy',
      detail,
    }));
    throw new TimeoutError(
      options.timeoutMs,
      missing.sort((a, b) => a.index - b.index),
    );
  }
}
