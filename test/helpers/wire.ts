/**
 * A kubepeers peer on a real socket, for tests: it speaks the protocol with the library's own codec
 * (src/core/wire.ts) and handshake machines (src/core/handshake.ts), and lets a test be a member, a fake
 * coordinator or a stranger: connect from a chosen local address, run the handshake as client or
 * server, write raw bytes or several frames in one write, read frames, see the connection close.
 *
 * Frames are decoded only when asked for ({@link Wire.next}), each under the limit in force at that
 * moment (1 KiB before the handshake passed, the job's frame limit after it), as a pod does.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { canonicalIp } from '../../src/address.js';
import {
  ClientHandshake,
  scopeKey,
  ServerHandshake,
  type HandshakeResult,
  type HandshakeStep,
  type LocalIdentity,
} from '../../src/core/handshake.js';
import {
  encodeFrame,
  FrameDecoder,
  MAX_HELLO_BYTES,
  maxFrameBytes,
  type Frame,
  type Message,
  type Scope,
} from '../../src/core/wire.js';
import { HandshakeError } from '../../src/errors.js';
import type { JobSpec } from './pods.js';

/** A random 128-bit token, base64url (nonces, instance ids). */
export function token(): string {
  return randomBytes(16).toString('base64url');
}

/** The scope of a run of the job `spec` (what its pods agree on). */
export function scopeOf(
  spec: Pick<JobSpec, 'job' | 'svc' | 'ns' | 'size'>,
  extra: { topology?: Scope['topology']; runId?: string } = {},
): Scope {
  return {
    namespace: spec.ns,
    subdomain: spec.svc,
    clusterDomain: 'cluster.local',
    jobName: spec.job,
    runId: extra.runId ?? '',
    size: spec.size,
    topology: extra.topology ?? 'mesh',
  };
}

/** Who a test peer claims to be: index `index` of `scope`, keyed with `secret`, a fresh instance. */
export function identity(scope: Scope, index: number, secret?: string, instance = token()): LocalIdentity {
  return { scope, key: scopeKey(scope, secret), index, instance };
}

/** Thrown by {@link Wire.next} when no frame comes. */
export class WireClosed extends Error {}

export class Wire {
  /** Every byte received, as text (what a stranger learns). */
  received = '';
  /** The frames {@link next} returned, in order. */
  readonly frames: Frame[] = [];
  /** Resolves once the socket is closed. */
  readonly closed: Promise<void>;
  private decoder = new FrameDecoder();
  /** Limit on the next frame; raised when a handshake passes. */
  private limit = MAX_HELLO_BYTES;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.received += chunk.toString('latin1');
      this.decoder.push(chunk);
      this.notify();
    });
    socket.on('error', () => socket.destroy());
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.notify();
        resolve();
      }),
    );
  }

  /** Connects to `host:port`, from `localAddress` when given. */
  static async connect(host: string, port: number, localAddress?: string): Promise<Wire> {
    const socket = connect({ host, port, ...(localAddress ? { localAddress } : {}) });
    const wire = new Wire(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return wire;
  }

  /** The other side's address (canonical) and port. */
  get remote(): { address: string; port: number } {
    return { address: canonicalIp(this.socket.remoteAddress ?? ''), port: this.socket.remotePort ?? 0 };
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Writes raw bytes in one write; resolves once the kernel took them (false: the socket is gone). */
  write(data: string | Uint8Array): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) return resolve(false);
      this.socket.write(data, (err) => resolve(!err));
    });
  }

  /** Writes frames (messages, or any JSON objects) in one write. */
  send(...frames: (Message | Frame)[]): Promise<boolean> {
    return this.write(frames.map((f) => encodeFrame(f as Message)).join(''));
  }

  /**
   * The next frame, decoded under the current limit; rejects with {@link WireClosed} when the
   * connection closes first, or after `timeoutMs`, or with the decoder's error (the socket is then
   * destroyed).
   */
  async next(timeoutMs = 5000): Promise<Frame> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const decoded = this.decoder.next(this.limit);
      if (decoded !== undefined) {
        if ('error' in decoded) {
          this.socket.destroy();
          throw new Error(`${decoded.error}: ${decoded.detail}`);
        }
        this.frames.push(decoded.frame);
        return decoded.frame;
      }
      if (this.ended) throw new WireClosed('closed before a frame');
      const left = deadline - performance.now();
      if (left <= 0) throw new WireClosed(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Frames until one of type `t` (returned; the others are in {@link frames}). */
  async until(t: string, timeoutMs = 5000): Promise<Frame> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const frame = await this.next(Math.max(1, deadline - performance.now()));
      if (frame.t === t) return frame;
    }
  }

  /**
   * Client side of the handshake as `local`, expecting index `expect` (-1: whoever answers). The
   * confirm goes in one write with `confirmWith` (raw bytes: frames the coordinator sends at once).
   * Rejects with a {@link HandshakeError} as a pod would see it.
   */
  async clientHandshake(
    local: LocalIdentity,
    expect: number,
    options: { timeoutMs?: number; confirmWith?: string } = {},
  ): Promise<HandshakeResult> {
    const machine = new ClientHandshake(local, expect, token);
    await this.send(machine.hello());
    return this.runHandshake(
      local,
      (frame) => machine.receive(frame),
      options.timeoutMs ?? 2000,
      'connection closed before a reply (not a kubepeers responder?)',
      options.confirmWith ?? '',
    );
  }

  /** Server side of the handshake as `local`; `released` goes into the welcome. */
  serverHandshake(
    local: LocalIdentity,
    released = false,
    options: { timeoutMs?: number } = {},
  ): Promise<HandshakeResult> {
    const machine = new ServerHandshake(local, () => released, token);
    return this.runHandshake(
      local,
      (frame) => machine.receive(frame),
      options.timeoutMs ?? 2000,
      'connection closed during the handshake',
      '',
    );
  }

  private async runHandshake(
    local: LocalIdentity,
    receive: (frame: Frame) => HandshakeStep,
    timeoutMs: number,
    closedDetail: string,
    after: string,
  ): Promise<HandshakeResult> {
    const { address, port } = this.remote;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      let frame: Frame;
      try {
        frame = await this.next(Math.max(1, deadline - performance.now()));
      } catch (err) {
        this.socket.destroy();
        if (!(err instanceof WireClosed))
          throw new HandshakeError('protocol', address, port, (err as Error).message);
        if (this.ended) throw new HandshakeError('closed', address, port, closedDetail);
        throw new HandshakeError('timeout', address, port, `no handshake within ${timeoutMs} ms`);
      }
      const step = receive(frame);
      const out = step.send.map(encodeFrame).join('') + (step.result ? after : '');
      if (out) await this.write(out);
      if (step.failure) {
        if (step.send.length > 0) this.socket.end();
        else this.socket.destroy();
        throw new HandshakeError(step.failure.reason, address, port, step.failure.detail);
      }
      if (step.result) {
        this.limit = maxFrameBytes(local.scope.size);
        return step.result;
      }
    }
  }

  /** Half-closes (FIN after what was written). */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
