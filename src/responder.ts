/**
 * The TCP responder every pod runs: it answers handshakes so that peers can verify this pod, and hands
 * each authenticated connection to the barrier. It bounds what a stranger can make it do: a cap on
 * connections that have not authenticated yet, overall and per source address, with the oldest
 * connection of the source holding the most slots given up when a newcomer finds them all taken (so idle
 * strangers cannot starve a real peer); a size cap on frames before and after authentication; and a
 * deadline for the handshake.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { ListenError } from './errors.js';
import { Channel, serverHandshake, type HandshakeResult, type Scope } from './handshake.js';

/** Options of {@link Responder}. */
export interface ResponderOptions {
  address: string;
  port: number;
  scope: Scope;
  key: Buffer;
  index: number;
  instance: string;
  /** Handshake deadline for an incoming connection. */
  handshakeTimeoutMs: number;
  /** Connections that have not finished a handshake, at most. Default: 32. */
  maxPending?: number;
  /** Connections from one source address that have not finished a handshake, at most. Default: {@link MAX_PENDING_PER_SOURCE}. */
  maxPendingPerSource?: number;
  /** All connections, at most. Default: 2 × size + maxPending. */
  maxConnections?: number;
  /** Whether the barrier has released (answered in the welcome so that late peers need not wait for us). */
  released: () => boolean;
  /** Receives each authenticated connection. */
  onPeer: (channel: Channel, result: HandshakeResult) => void;
}

/**
 * Handshakes in progress from one address, at most, by default: a peer opens one or two connections to
 * us at once (one of its own, one answering ours).
 */
export const MAX_PENDING_PER_SOURCE = 8;

interface PendingConnection {
  source: string;
  socket: Socket;
}

/** See the module comment. Never keeps the process alive (server and sockets are unref'd). */
export class Responder {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Connections in their handshake, oldest first. */
  private readonly pending = new Set<PendingConnection>();
  private readonly pendingBySource = new Map<string, number>();
  private readonly maxPending: number;
  private readonly maxPendingPerSource: number;

  constructor(private readonly options: ResponderOptions) {
    this.maxPending = options.maxPending ?? 32;
    this.maxPendingPerSource = options.maxPendingPerSource ?? MAX_PENDING_PER_SOURCE;
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.maxConnections = options.maxConnections ?? 2 * options.scope.size + this.maxPending;
    this.server.on('error', () => {});
  }

  /** Starts listening; rejects with a {@link ListenError} (port in use, no permission, no such address). */
  listen(): Promise<void> {
    const { address, port } = this.options;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new ListenError(address, port, { cause: err }));
      this.server.once('error', onError);
      this.server.listen({ host: address, port, exclusive: true }, () => {
        this.server.off('error', onError);
        this.server.unref();
        resolve();
      });
    });
  }

  /** The port actually bound (useful with port 0 in tests). */
  get boundPort(): number {
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? a.port : this.options.port;
  }

  /** Stops accepting and destroys every connection still open. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    socket.unref();
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    const channel = new Channel(socket);
    const source = channel.remoteAddress;
    if ((this.pendingBySource.get(source) ?? 0) >= this.maxPendingPerSource) {
      channel.send({ t: 'reject', reason: 'busy' });
      channel.close();
      return;
    }
    if (this.pending.size >= this.maxPending) this.evict();
    const entry: PendingConnection = { source, socket };
    this.pending.add(entry);
    this.pendingBySource.set(source, (this.pendingBySource.get(source) ?? 0) + 1);
    const o = this.options;
    serverHandshake(
      channel,
      { scope: o.scope, key: o.key, index: o.index, instance: o.instance },
      o.released,
      o.handshakeTimeoutMs,
      o.port,
    )
      .then((result) => o.onPeer(channel, result))
      .catch(() => socket.destroy())
      .finally(() => this.settle(entry));
  }

  /** Frees the slot of a handshake that ended (or was evicted). */
  private settle(entry: PendingConnection): void {
    if (!this.pending.delete(entry)) return;
    const left = (this.pendingBySource.get(entry.source) ?? 1) - 1;
    if (left > 0) this.pendingBySource.set(entry.source, left);
    else this.pendingBySource.delete(entry.source);
  }

  /** Drops the oldest handshake of the source that holds the most, to make room for a newcomer. */
  private evict(): void {
    let most = 0;
    for (const n of this.pendingBySource.values()) most = Math.max(most, n);
    for (const entry of this.pending) {
      if (this.pendingBySource.get(entry.source) === most) {
        this.settle(entry);
        entry.socket.destroy();
        return;
      }
    }
  }
}
