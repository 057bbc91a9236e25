/**
 * The runtime around the protocol core (src/core/): a TCP listener and sockets, the stub resolver, one
 * timer and the clock. It turns what happens on them into core inputs and carries out the core's
 * outputs; it decides nothing about the protocol. It also owns what belongs to the caller: the deadline,
 * the abort signal, progress reports and the linger after release.
 */
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect, createServer, isIP, type Server, type Socket } from 'node:net';
import { debuglog } from 'node:util';
import { setMaxListeners } from 'node:events';
import { canonicalIp } from './address.js';
import {
  createMachine,
  MAX_QUERIES,
  maxInbound,
  type DnsResult,
  type Machine,
  type Output,
  type PodConfig,
} from './core/machine.js';
import { scopeKey } from './core/handshake.js';
import { MAX_UNSENT_BYTES, type Scope } from './core/wire.js';
import { AbortedError, DnsError, KubepeersError, ListenError, TimeoutError } from './errors.js';
import { peerFqdn, peerHostname, scopeJobName, serviceFqdn, type JobNames } from './identity.js';
import type { Config } from './options.js';
import { StubResolver, type AddressType } from './resolver.js';

/** One member of the job in the released roster. */
export interface Peer {
  /** Completion index. */
  index: number;
  /** Pod hostname `<job>-<index>` (in a JobSet `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`). */
  hostname: string;
  /** `<hostname>.<svc>.<ns>.svc.<domain>`, without trailing dot. */
  fqdn: string;
  /** The address its name resolved to and at which it proved its identity to the coordinator. */
  ip: string;
  /** Its responder port. */
  port: number;
}

/** What {@link waitForPeers} resolves with once every peer has passed. */
export interface PeersResult extends JobNames {
  /** This pod's index (its rank). */
  index: number;
  /** Number of pods. */
  size: number;
  /** How the pods checked each other. */
  topology: Config['topology'];
  /** This pod's own entry. */
  self: Peer;
  /** Every member, this pod included, ordered by index. */
  peers: Peer[];
  /** The member with index 0, in a JobSet with `spec.coordinator` that pod (what frameworks call master, head or coordinator). */
  coordinator: Peer;
  /** Milliseconds from the call to the release. */
  elapsedMs: number;
}

/** `NODE_DEBUG=kubepeers` traces every core input and output on stderr. */
const trace = debuglog('kubepeers');

/** What the first progress report says when a run has neither a run id nor a secret. */
export const UNSCOPED_WARNING =
  "no run id and no secret: any pod that knows this job's namespace, Service, name and size can pass as a " +
  'member, and pods of an earlier run of a Job with the same name are not told apart; set KUBEPEERS_RUN_ID ' +
  "from an Indexed Job's controller-uid label (a JobSet: mount its labels file; the run id comes from it) and KUBEPEERS_SECRET to keep out pods that copy it";

/** The index that discovers members and decides the release (a JobSet's coordinator pod is given it). */
export const COORDINATOR_INDEX = 0;

/** Random 128-bit token, base64url. */
function token(): string {
  return randomBytes(16).toString('base64url');
}

/** Runs one pod's barrier until it settles; see {@link waitForPeers}. */
export class Engine {
  private readonly machine: ReturnType<typeof createMachine>;
  private readonly scope: Scope;
  private readonly resolver: StubResolver;
  private readonly types: AddressType[];
  private readonly sockets = new Map<number, Socket>();
  private readonly queries = new AbortController();
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private nextInbound = -1;
  private settled = false;
  private lingering = false;
  private resolveRun!: (r: PeersResult) => void;
  private rejectRun!: (e: unknown) => void;
  private readonly clock0 = performance.now();

  constructor(
    private readonly config: Config,
    private readonly started: number,
  ) {
    const scope: Scope = {
      namespace: config.namespace,
      subdomain: config.subdomain,
      clusterDomain: config.clusterDomain,
      jobName: scopeJobName(config),
      runId: config.runId,
      size: config.size,
      topology: config.topology,
    };
    const pod: PodConfig = {
      scope,
      key: scopeKey(scope, config.secret),
      index: config.index,
      instance: token(),
      selfAddress: canonicalIp(
        config.selfAddress ?? (isSpecific(config.listenAddress) ? config.listenAddress : ''),
      ),
      nameOf: (k) => `${peerFqdn(config, k)}.`,
      service: `${serviceFqdn(config)}.`,
      coordinator: COORDINATOR_INDEX,
      pollMs: config.pollIntervalMs,
      retryMinMs: config.retryMinDelayMs,
      retryMaxMs: config.retryMaxDelayMs,
      connectTimeoutMs: config.connectTimeoutMs,
      random: Math.random,
      nonce: token,
    };
    this.scope = scope;
    this.machine = createMachine(pod);
    // The core's own counts, read by /metrics as they grow.
    if (config.metrics) config.metrics.handshakes = this.machine.handshakes;
    this.resolver = new StubResolver({
      nameservers: config.nameservers,
      timeoutMs: config.dnsTimeoutMs,
      attempts: config.dnsAttempts,
    });
    this.types = config.family === 'dual' ? ['A', 'AAAA'] : [config.family === 6 ? 'AAAA' : 'A'];
    // Every lookup in flight listens to it: at most MAX_QUERIES at once, not a leak.
    setMaxListeners(MAX_QUERIES + 1, this.queries.signal);
  }

  async run(): Promise<PeersResult> {
    const { config } = this;
    const result = new Promise<PeersResult>((resolve, reject) => {
      this.resolveRun = resolve;
      this.rejectRun = reject;
    });
    // The one handle that keeps the process alive while we wait.
    const deadline = setTimeout(
      () =>
        this.fail(new TimeoutError(config.timeoutMs, this.machine.missing(), this.machine.hint()), 'timeout'),
      config.timeoutMs,
    );
    const onAbort = (): void => {
      if (this.settled) this.endLinger();
      else this.fail(new AbortedError({ cause: config.signal?.reason }), 'aborted');
    };
    config.signal?.addEventListener('abort', onAbort, { once: true });
    void result.then(
      () => clearTimeout(deadline),
      () => clearTimeout(deadline),
    );
    this.onEnd = () => config.signal?.removeEventListener('abort', onAbort);

    if (config.size === 1) {
      this.release([this.machineSelf()]);
      return result;
    }
    try {
      await this.listen();
    } catch (err) {
      this.fail(err, 'aborted');
      return result;
    }
    if (this.settled) return result;
    this.machine.start(this.now());
    this.flush();
    return result;
  }

  /** Called once the responder is closed and nothing more will happen. */
  private onEnd: () => void = () => {};

  private now(): number {
    return performance.now() - this.clock0;
  }

  private machineSelf(): string {
    return this.config.selfAddress ?? this.config.listenAddress;
  }

  private listen(): Promise<void> {
    const { config } = this;
    const { listenAddress: address, port } = config;
    const server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    // Beyond this Node closes a connection as soon as it is accepted: a crowd cannot exhaust descriptors.
    server.maxConnections = maxInbound(this.scope, config.index === COORDINATOR_INDEX);
    this.server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void =>
        reject(
          new ListenError(address, port, {
            cause: err,
            listener: 'the barrier responder (option port, env KUBEPEERS_PORT)',
          }),
        );
      server.once('error', onError);
      server.listen({ host: address, port, exclusive: true }, () => {
        server.off('error', onError);
        // Aborted while it was binding: shutdown() could not close it then.
        if (this.down) server.close();
        server.on('error', () => {});
        server.unref();
        resolve();
      });
    });
  }

  private accept(socket: Socket): void {
    socket.unref();
    if (this.settled && !this.lingering) {
      socket.destroy();
      return;
    }
    const id = this.nextInbound--;
    this.track(id, socket);
    this.input({ type: 'accepted', conn: id, remote: canonicalIp(socket.remoteAddress ?? '') });
  }

  private track(id: number, socket: Socket): void {
    this.sockets.set(id, socket);
    socket.setNoDelay(true);
    socket.on('data', (bytes: Buffer) => this.input({ type: 'data', conn: id, bytes }));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.sockets.get(id) !== socket) return;
      this.sockets.delete(id);
      this.input({ type: 'closed', conn: id });
    });
  }

  private input(input: Parameters<Machine['handle']>[1]): void {
    if (this.settled && !this.lingering) return;
    if (trace.enabled)
      trace(
        '%d %d in %j',
        this.config.index,
        Date.now(), // wall clock: comparable across processes (timeOrigin may be off)
        input.type === 'data' ? { ...input, bytes: Buffer.from(input.bytes).toString() } : input,
      );
    this.machine.handle(this.now(), input);
    this.flush();
  }

  /** Without a linger: end as soon as nothing more is owed to anyone. */
  private quiet = false;
  /** After the release, until every member has acknowledged it: keeps the process alive (bounded). */
  private delivering: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;

  /** Carries out what the core asked for, then arms the timer it wants. */
  private flush(): void {
    for (const output of this.machine.poll()) this.perform(output);
    if (this.delivering && this.machine.idle()) {
      clearTimeout(this.delivering);
      this.delivering = undefined;
    }
    if (this.quiet && this.lingering && this.machine.idle()) {
      this.endLinger();
      return;
    }
    const at = this.settled && !this.lingering ? undefined : this.machine.nextTimer();
    // Most inputs leave the core's next deadline where it was: keep the armed timer then.
    if (at === this.timerAt && (at === undefined || this.timer !== undefined)) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (at !== undefined) {
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          this.timerAt = undefined;
          this.input({ type: 'tick' });
        },
        Math.max(0, at - this.now()),
      );
      this.timer.unref();
    }
  }
  /** The core's deadline the armed timer is for. */
  private timerAt: number | undefined;

  private perform(output: Output): void {
    // A user's progress callback may have aborted the run in the middle of a batch.
    if (this.down && (output.type === 'connect' || output.type === 'query')) return;
    if (trace.enabled)
      trace(
        '%d %d out %j',
        this.config.index,
        Date.now(), // wall clock: comparable across processes (timeOrigin may be off)
        output,
      );
    switch (output.type) {
      case 'query':
        this.lookup(output.name).then(
          (result) => this.input({ type: 'dns', id: output.id, result }),
          () => {}, // aborted: the barrier settled (lookup rejects only then)
        );
        break;
      case 'connect':
        this.connect(output.conn, output.address, output.fromSelf);
        break;
      case 'send': {
        const socket = this.sockets.get(output.conn);
        if (!socket || !socket.writable) break;
        if (socket.writableLength > MAX_UNSENT_BYTES) socket.destroy();
        else socket.write(output.data);
        break;
      }
      case 'close': {
        const socket = this.sockets.get(output.conn);
        this.sockets.delete(output.conn);
        if (!socket) break;
        if (output.destroy) socket.destroy();
        else {
          socket.end();
          // Do not wait for the other side's FIN forever.
          setTimeout(() => socket.destroy(), 1000).unref();
        }
        break;
      }
      case 'progress':
        this.progress(output.ready, output.total, output.missing);
        break;
      case 'released':
        this.release(output.roster);
        break;
    }
  }

  private connect(id: number, address: string, fromSelf: boolean): void {
    const own = this.config.listenAddress;
    const bind = fromSelf && isSpecific(own) && isIP(own) === isIP(address) ? { localAddress: own } : {};
    const socket = tcpConnect({ host: address, port: this.config.port, ...bind });
    socket.unref();
    let opened = false;
    socket.once('connect', () => {
      opened = true;
      this.track(id, socket);
      this.input({ type: 'connected', conn: id });
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      socket.destroy();
      if (!opened) this.input({ type: 'connect-failed', conn: id, detail: e.code ?? e.message });
    });
    // Until it opens, `close` outputs for it find no socket: keep it reachable for them.
    this.sockets.set(id, socket);
  }

  /** Looks a name up for every configured record type and merges the answers. */
  private async lookup(name: string): Promise<DnsResult> {
    const addresses: string[] = [];
    let ttl = Number.POSITIVE_INFINITY;
    let negative: DnsResult | undefined;
    let error: DnsResult | undefined;
    for (const type of this.types) {
      try {
        const answer = await this.resolver.query(name, type, { signal: this.queries.signal });
        if (this.config.metrics) this.config.metrics.dnsQueries[answer.status]++;
        if (answer.status === 'ok') {
          addresses.push(...answer.addresses);
          ttl = Math.min(ttl, answer.ttl * 1000);
        } else {
          negative = {
            status: answer.status,
            ttlMs: answer.negativeTtl * 1000,
            detail: `${name} ${type}: ${answer.status.toUpperCase()} from ${answer.server}`,
          };
        }
      } catch (err) {
        if (this.queries.signal.aborted) throw err;
        if (this.config.metrics) this.config.metrics.dnsQueries.error++;
        // Anything else the lookup threw is a failed answer too: the core must hear back (it holds one
        // query per name, and one Service lookup, in flight).
        error =
          err instanceof DnsError
            ? { status: 'error', detail: err.message, truncated: err.reason === 'truncated' }
            : {
                status: 'error',
                detail: `${name} ${type}: ${err instanceof Error ? err.message : String(err)}`,
              };
      }
    }
    if (addresses.length > 0) return { status: 'ok', addresses: addresses.map(canonicalIp), ttlMs: ttl };
    // NXDOMAIN holds for every type; NODATA for one type says nothing of the type that failed.
    if (error && negative?.status !== 'nxdomain') return error;
    return negative ?? { status: 'nodata', ttlMs: 0, detail: `${name}: no address` };
  }

  private warned = false;

  private progress(ready: number, total: number, missing: number[]): void {
    const { onProgress, runId, secret } = this.config;
    if (!onProgress || this.settled) return;
    const warn = !this.warned && runId === '' && secret === undefined;
    this.warned = true;
    try {
      onProgress({
        ready,
        total,
        missing,
        elapsedMs: Math.round(performance.now() - this.started),
        ...(warn ? { warning: UNSCOPED_WARNING } : {}),
      });
    } catch {
      // A throwing progress callback must not break the barrier.
    }
  }

  private release(ips: readonly string[]): void {
    if (this.settled) return;
    const { config } = this;
    this.settled = true;
    if (config.metrics) config.metrics.releaseMs = Math.round(performance.now() - this.started);
    const roster: Peer[] = [];
    for (let k = 0; k < config.size; k++) {
      roster.push({
        index: k,
        hostname: peerHostname(config, k),
        fqdn: peerFqdn(config, k),
        ip: k === config.index ? (config.selfAddress ?? ips[k] ?? '') || (ips[k] ?? '') : (ips[k] ?? ''),
        port: config.port,
      });
    }
    // Late and restarted peers still get the roster while we linger (an unref'd timer: the linger never
    // keeps the process alive by itself).
    this.lingering = this.server !== undefined;
    // The coordinator owes every member the release: the process stays up until each acknowledged it,
    // at most a connect timeout per round of pushes (64 at a time) and two more.
    const delivery = config.connectTimeoutMs * (2 + Math.ceil(config.size / 64));
    if (this.lingering && !this.machine.idle())
      this.delivering = setTimeout(() => (this.delivering = undefined), delivery);
    const linger = Math.max(config.lingerMs, this.machine.idle() ? 0 : delivery);
    if (this.lingering) {
      this.lingerTimer = setTimeout(() => this.endLinger(), linger || config.connectTimeoutMs);
      this.lingerTimer.unref();
    } else this.endLinger();
    this.quiet = config.lingerMs === 0;
    const resolve = this.resolveRun;
    this.dropSettlers();
    resolve({
      index: config.index,
      size: config.size,
      jobName: config.jobName,
      subdomain: config.subdomain,
      namespace: config.namespace,
      clusterDomain: config.clusterDomain,
      // The rest of JobNames, so that peerHostname(result, i) names a JobSet's or a group's pods too.
      ...(config.replicatedJobs ? { replicatedJobs: config.replicatedJobs } : {}),
      ...(config.jobSetCoordinator !== undefined ? { jobSetCoordinator: config.jobSetCoordinator } : {}),
      ...(config.leaderWorkerSet ? { leaderWorkerSet: true } : {}),
      topology: config.topology,
      self: roster[config.index]!,
      peers: roster,
      coordinator: roster[COORDINATOR_INDEX]!,
      elapsedMs: Math.round(performance.now() - this.started),
    });
  }

  private fail(err: unknown, reason: 'timeout' | 'aborted'): void {
    if (this.settled) return;
    this.settled = true;
    this.machine.stop(this.now(), reason);
    for (const output of this.machine.poll())
      if (output.type === 'send' || output.type === 'close') this.perform(output);
    this.shutdown();
    const reject = this.rejectRun;
    this.dropSettlers();
    reject(err instanceof KubepeersError ? err : new AbortedError({ cause: err }));
  }

  private endLinger(): void {
    if (this.down) return;
    this.lingering = false;
    this.machine.stop(this.now(), 'released');
    for (const output of this.machine.poll())
      if (output.type === 'send' || output.type === 'close') this.perform(output);
    this.shutdown();
  }

  private down = false;

  /** Closes the listener and every socket; nothing more happens after it. */
  private shutdown(): void {
    if (this.down) return;
    this.down = true;
    clearTimeout(this.timer);
    clearTimeout(this.delivering);
    clearTimeout(this.lingerTimer);
    this.timer = undefined;
    this.timerAt = undefined;
    this.queries.abort();
    for (const socket of this.sockets.values()) socket.destroySoon();
    this.sockets.clear();
    this.server?.close();
    this.server = undefined;
    this.onEnd();
  }

  /** A settled run must not keep the caller's result (the whole roster) reachable. */
  private dropSettlers(): void {
    this.resolveRun = () => {};
    this.rejectRun = () => {};
  }
}

function isSpecific(address: string): boolean {
  return isIP(address) !== 0 && address !== '0.0.0.0' && address !== '::';
}
