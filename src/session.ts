/**
 * What both topologies share: the run's scope and key, the stub resolver, the responder, the deadline and
 * abort wiring, retry loops (p-retry with jitter and a cap, woken early by new evidence), bounded TCP
 * connects with the client handshake, progress reports and the roster handed back on release.
 */
import { isIP, connect as tcpConnect, type Socket } from 'node:net';
import pRetry, { AbortError as PRetryAbort } from 'p-retry';
import {
  AbortedError,
  ConnectError,
  DnsError,
  KubepeersError,
  type MissingPeer,
  type TimeoutError,
} from './errors.js';
import {
  Channel,
  clientHandshake,
  randomToken,
  scopeKey,
  type HandshakeResult,
  type Scope,
} from './handshake.js';
import { peerFqdn, peerHostname } from './identity.js';
import type { Config } from './options.js';
import { Responder } from './responder.js';
import { StubResolver, type AddressType } from './resolver.js';

/** One member of the job in the released roster. */
export interface Peer {
  /** Completion index. */
  index: number;
  /** Pod hostname `<job>-<index>`. */
  hostname: string;
  /** `<job>-<index>.<svc>.<ns>.svc.<domain>`, without trailing dot. */
  fqdn: string;
  /**
   * The address its name resolved to and at which it proved its identity (to this pod in a mesh, to the
   * coordinator in a star).
   */
  ip: string;
  /** Its responder port. */
  port: number;
}

/** What {@link waitForPeers} resolves with once every peer has passed. */
export interface PeersResult {
  /** This pod's index. */
  index: number;
  /** Number of pods. */
  size: number;
  jobName: string;
  subdomain: string;
  namespace: string;
  clusterDomain: string;
  /** How the pods checked each other. */
  topology: Config['topology'];
  /** This pod's own entry. */
  self: Peer;
  /** Every member, this pod included, ordered by index. */
  peers: Peer[];
  /** The member with index 0 (what frameworks call master, head or coordinator). */
  coordinator: Peer;
  /** Milliseconds from the call to the release. */
  elapsedMs: number;
}

export type FailureReason = Exclude<MissingPeer['reason'], 'unconfirmed'>;

/** A retry loop; {@link Session.wake} cuts its current wait short. */
export interface Loop {
  controller: AbortController;
  sleeping: boolean;
  again: boolean;
}

/** A failure worth retrying, with the DNS-given minimum wait before the next try. */
export class RetryLater extends Error {
  constructor(
    readonly reason: FailureReason,
    message: string,
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

/** Outbound connects (each a socket plus a handshake) in flight at once, per pod. */
export const MAX_CONCURRENT_CONNECTS = 64;
/** DNS lookups (each one UDP or TCP socket) in flight at once, per pod. */
export const MAX_CONCURRENT_LOOKUPS = 64;

/** A counting semaphore: at most `slots` holders at once, the rest wait in order. */
class Limiter {
  private readonly queue: (() => void)[] = [];
  constructor(private slots: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.slots === 0) await new Promise<void>((r) => this.queue.push(r));
    else this.slots--;
    try {
      return await work();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.slots++;
    }
  }
}

export abstract class Session {
  protected readonly scope: Scope;
  protected readonly key: Buffer;
  protected readonly instance = randomToken();
  protected readonly resolver: StubResolver;
  /** Aborted when the barrier settles: stops polls, checks and connects. */
  protected readonly stop = new AbortController();
  /** Aborted when the responder closes (at once on failure, after the linger on release). */
  protected readonly lingering = new AbortController();
  protected readonly types: AddressType[];
  protected responder: Responder | undefined;
  protected released = false;
  protected settled = false;
  private lastReady = -1;
  private readonly connects = new Limiter(MAX_CONCURRENT_CONNECTS);
  private readonly lookups = new Limiter(MAX_CONCURRENT_LOOKUPS);
  private resolveRun!: (r: PeersResult) => void;
  private rejectRun!: (e: unknown) => void;

  constructor(
    protected readonly config: Config,
    private readonly started: number,
  ) {
    this.scope = {
      namespace: config.namespace,
      subdomain: config.subdomain,
      clusterDomain: config.clusterDomain,
      jobName: config.jobName,
      runId: config.runId,
      size: config.size,
      topology: config.topology,
    };
    this.key = scopeKey(this.scope, config.secret);
    this.resolver = new StubResolver({
      nameservers: config.nameservers,
      timeoutMs: config.dnsTimeoutMs,
      attempts: config.dnsAttempts,
    });
    this.types = config.family === 'dual' ? ['A', 'AAAA'] : [config.family === 6 ? 'AAAA' : 'A'];
  }

  /** Begins the work once the responder listens. */
  protected abstract start(): void;
  /** Receives each connection that passed the server handshake. */
  protected abstract onInbound(channel: Channel, hs: HandshakeResult): void;
  /** Indices still missing, for progress. */
  protected abstract missing(): number[];
  protected abstract timeoutError(): TimeoutError;
  /** Closes every held connection with a `bye` giving the reason. */
  protected abstract closeChannels(reason: 'released' | 'timeout' | 'aborted'): void;
  /** Caps of the responder: all connections, and handshakes in progress. */
  protected abstract responderLimits(): { maxConnections: number; maxPending: number };

  async run(): Promise<PeersResult> {
    const { config } = this;
    const result = new Promise<PeersResult>((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
    // The one handle that keeps the process alive while we wait.
    const deadline = setTimeout(() => this.fail(this.timeoutError()), config.timeoutMs);
    const onAbort = (): void => {
      if (this.settled) void this.closeResponder();
      else this.fail(new AbortedError({ cause: config.signal?.reason }));
    };
    config.signal?.addEventListener('abort', onAbort, { once: true });
    // Once the responder is closed (failure, abort, or the end of the linger) nothing needs the signal.
    this.lingering.signal.addEventListener(
      'abort',
      () => config.signal?.removeEventListener('abort', onAbort),
      { once: true },
    );
    result.then(
      () => clearTimeout(deadline),
      () => {
        clearTimeout(deadline);
        config.signal?.removeEventListener('abort', onAbort);
      },
    );

    if (config.size === 1) {
      this.settle([config.selfAddress ?? config.listenAddress]);
      return result;
    }
    this.responder = new Responder({
      address: config.listenAddress,
      port: config.port,
      scope: this.scope,
      key: this.key,
      index: config.index,
      instance: this.instance,
      handshakeTimeoutMs: config.connectTimeoutMs,
      ...this.responderLimits(),
      released: () => this.released,
      onPeer: (channel, hs) => this.onInbound(channel, hs),
    });
    try {
      await this.responder.listen();
    } catch (err) {
      this.fail(err);
      return result;
    }
    this.report();
    this.start();
    return result;
  }

  /**
   * Runs `tick` now and then every `intervalMs`, jittered uniformly over [2/3, 4/3] × interval, until the
   * barrier settles: p-retry as a poller (every attempt "fails"; factor 1 and randomize give the jitter).
   */
  protected async every(intervalMs: number, tick: () => Promise<void>): Promise<void> {
    await pRetry(
      async () => {
        await tick();
        throw new Error('tick again');
      },
      {
        retries: Number.POSITIVE_INFINITY,
        factor: 1,
        minTimeout: (intervalMs * 2) / 3,
        maxTimeout: (intervalMs * 4) / 3,
        randomize: true,
        unref: true,
        signal: this.stop.signal,
      },
    ).catch(() => {});
  }

  /**
   * Runs `attempt` under p-retry until it succeeds or `retry` says stop: exponential, jittered, capped
   * delays, lengthened to the DNS-given minimum. {@link wake} skips the current wait. Stops with `stop`
   * unless another signal is given.
   */
  protected loop(
    attempt: (signal: AbortSignal) => Promise<void>,
    retry: (err: unknown) => boolean,
    done: () => void,
    until: AbortSignal = this.stop.signal,
  ): Loop {
    const state: Loop = { controller: new AbortController(), sleeping: false, again: false };
    const run = (): void => {
      const signal = AbortSignal.any([state.controller.signal, until]);
      let succeeded = false;
      pRetry(
        async () => {
          state.sleeping = false;
          state.again = false;
          await attempt(signal);
        },
        {
          retries: Number.POSITIVE_INFINITY,
          factor: 2,
          minTimeout: this.config.retryMinDelayMs,
          maxTimeout: this.config.retryMaxDelayMs,
          randomize: true,
          unref: true,
          signal,
          shouldRetry: ({ error }) => !until.aborted && retry(error),
          onFailedAttempt: async ({ error }) => {
            if (state.again) {
              state.controller.abort();
              return;
            }
            state.sleeping = true;
            const extra = error instanceof RetryLater ? error.retryAfterMs - this.config.retryMinDelayMs : 0;
            if (extra > 0) await sleep(extra, signal);
          },
        },
      )
        .then(() => {
          succeeded = true;
        })
        .catch((err: unknown) => {
          if (!(err instanceof Error) || err instanceof PRetryAbort) return;
          if (!signal.aborted) retry(err);
        })
        .finally(() => {
          if (state.again && !succeeded && !until.aborted) {
            state.controller = new AbortController();
            run();
          } else {
            done();
          }
        });
    };
    run();
    return state;
  }

  /** New evidence: retry now rather than after the backoff. */
  protected wake(loop: Loop): void {
    loop.again = true;
    if (loop.sleeping) loop.controller.abort();
  }

  /**
   * Resolves `fqdn` (every configured type). Returns the addresses and smallest TTL, or throws a
   * {@link RetryLater} for NXDOMAIN/NODATA (honouring the negative TTL up to the retry cap) and DNS errors.
   */
  protected async lookup(fqdn: string, signal: AbortSignal): Promise<{ addresses: string[]; ttl: number }> {
    const addresses: string[] = [];
    let ttl = Number.POSITIVE_INFINITY;
    let negative: RetryLater | undefined;
    for (const type of this.types) {
      try {
        const answer = await this.lookups.run(() => this.resolver.query(fqdn, type, { signal }));
        if (answer.status === 'ok') {
          addresses.push(...answer.addresses);
          ttl = Math.min(ttl, answer.ttl);
        } else {
          negative = new RetryLater(
            answer.status,
            `${fqdn} ${type}: ${answer.status.toUpperCase()} from ${answer.server}`,
            Math.min(answer.negativeTtl * 1000, this.config.retryMaxDelayMs),
          );
        }
      } catch (err) {
        if (err instanceof DnsError) negative = new RetryLater('dns-error', err.message);
        else throw err;
      }
    }
    if (addresses.length === 0) throw negative ?? new RetryLater('nodata', `${fqdn}: no address`);
    return { addresses, ttl };
  }

  /**
   * Connects to `ip` and runs the client handshake expecting index `expect` (-1: any member). With
   * `fromOwnAddress`, the socket is bound to the pod's address first (only where the other side checks
   * where we come from: binding before connecting takes an ephemeral port per connection).
   */
  protected async connectPeer(
    ip: string,
    expect: number,
    signal: AbortSignal,
    fromOwnAddress = false,
  ): Promise<{ channel: Channel; hs: HandshakeResult }> {
    return this.connects.run(async () => {
      signal.throwIfAborted();
      const { port, connectTimeoutMs } = this.config;
      const socket = await new Promise<Socket>((resolve, reject) => {
        const own = this.config.listenAddress;
        const bind =
          fromOwnAddress && isIP(own) === isIP(ip) && own !== '0.0.0.0' && own !== '::'
            ? { localAddress: own }
            : {};
        const s = tcpConnect({ host: ip, port, timeout: connectTimeoutMs, ...bind });
        s.unref();
        const onAbort = (): void => {
          s.destroy();
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const done = (err?: Error): void => {
          signal.removeEventListener('abort', onAbort);
          s.setTimeout(0);
          if (err) {
            s.destroy();
            reject(err);
          } else resolve(s);
        };
        s.once('connect', () => done());
        s.once('timeout', () => done(new ConnectError(ip, port, 'ETIMEDOUT')));
        s.once('error', (e: NodeJS.ErrnoException) =>
          done(new ConnectError(ip, port, e.code ?? e.message, { cause: e })),
        );
      });
      const channel = new Channel(socket);
      const local = { scope: this.scope, key: this.key, index: this.config.index, instance: this.instance };
      const hs = await clientHandshake(channel, local, expect, connectTimeoutMs, port);
      return { channel, hs };
    });
  }

  protected report(): void {
    const { onProgress } = this.config;
    if (!onProgress || this.settled) return;
    const missing = this.missing();
    const total = this.config.size - 1;
    const ready = total - missing.length;
    if (ready === this.lastReady) return;
    this.lastReady = ready;
    try {
      onProgress({ ready, total, missing, elapsedMs: Math.round(performance.now() - this.started) });
    } catch {
      // A throwing progress callback must not break the barrier.
    }
  }

  /** Releases: `ips[k]` is the verified address of index k ('' when unknown). Lingers if configured. */
  protected settle(ips: readonly string[]): void {
    const { config } = this;
    this.released = true;
    this.settled = true;
    this.stop.abort();
    const roster: Peer[] = [];
    for (let k = 0; k < config.size; k++) {
      roster.push({
        index: k,
        hostname: peerHostname(config, k),
        fqdn: peerFqdn(config, k),
        ip: ips[k] ?? '',
        port: config.port,
      });
    }
    this.closeChannels('released');
    if (this.responder && config.lingerMs > 0)
      setTimeout(() => void this.closeResponder(), config.lingerMs).unref();
    else void this.closeResponder();
    const resolve = this.resolveRun;
    this.dropSettlers();
    resolve({
      index: config.index,
      size: config.size,
      jobName: config.jobName,
      subdomain: config.subdomain,
      namespace: config.namespace,
      clusterDomain: config.clusterDomain,
      topology: config.topology,
      self: roster[config.index]!,
      peers: roster,
      coordinator: roster[0]!,
      elapsedMs: Math.round(performance.now() - this.started),
    });
  }

  protected fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    // Goodbyes first: aborting `stop` closes connections still being set up, without a reason.
    this.closeChannels(err instanceof AbortedError ? 'aborted' : 'timeout');
    this.stop.abort();
    void this.closeResponder();
    const reject = this.rejectRun;
    this.dropSettlers();
    reject(err instanceof KubepeersError ? err : new AbortedError({ cause: err }));
  }

  /** A lingering session must not keep the caller's result (the whole roster) reachable. */
  private dropSettlers(): void {
    this.resolveRun = () => {};
    this.rejectRun = () => {};
  }

  protected closeResponder(): Promise<void> {
    const r = this.responder;
    this.responder = undefined;
    this.lingering.abort();
    return r ? r.close() : Promise.resolve();
  }
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
