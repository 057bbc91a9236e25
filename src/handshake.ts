/**
 * The kubepeers wire protocol on real sockets: {@link Channel} feeds a socket's bytes to the sans-I/O
 * frame decoder and handshake machines of src/core/ and writes what they answer. See docs/protocol.md.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  ClientHandshake,
  ServerHandshake,
  type HandshakeResult,
  type HandshakeStep,
  type LocalIdentity,
} from './core/handshake.js';
import {
  encodeFrame,
  FrameDecoder,
  MAX_HELLO_BYTES,
  MAX_QUEUED_FRAMES,
  MAX_UNSENT_BYTES,
  maxFrameBytes,
  parseControl,
  type ByeMessage,
  type ControlMessage,
  type Frame,
  type Message,
} from './core/wire.js';
import { HandshakeError } from './errors.js';

export { scopeKey, type HandshakeResult, type LocalIdentity } from './core/handshake.js';
export {
  MAX_FRAME_BYTES,
  MAX_HELLO_BYTES,
  maxFrameBytes,
  packAddresses,
  PROTOCOL_VERSION,
  unpackAddresses,
  type AddressesMessage,
  type ByeMessage,
  type ConfirmMessage,
  type ControlMessage,
  type HelloMessage,
  type Message,
  type ParkMessage,
  type RejectMessage,
  type ReleaseMessage,
  type RetryMessage,
  type Scope,
  type VerifiedMessage,
  type WelcomeMessage,
} from './core/wire.js';

/** A random 128-bit token, base64url. */
export function randomToken(): string {
  return randomBytes(16).toString('base64url');
}

/** The handshake running on a channel. */
interface Running {
  receive: (frame: Frame) => HandshakeStep;
  /** The connection closed before the handshake ended. */
  closed: () => void;
}

/**
 * A socket speaking kubepeers frames. A handshake runs on it first ({@link clientHandshake},
 * {@link serverHandshake}); after it, control messages go to {@link Channel.onMessage}, or wait for it in a
 * bounded queue. Frames are decoded one at a time, each under the limit in force when it is reached: the
 * pre-authentication limit up to the last handshake frame, the job's frame limit after it, even within
 * one read.
 */
export class Channel {
  /** Set after the handshake to receive control messages. */
  onMessage: ((message: ControlMessage) => void) | undefined;
  /** Called once when the socket closes, with the `bye` received before, if any. */
  onClose: ((bye: ByeMessage | undefined) => void) | undefined;
  private readonly decoder = new FrameDecoder();
  private limit = MAX_HELLO_BYTES;
  private running: Running | undefined;
  private authenticated = false;
  private readonly queue: ControlMessage[] = [];
  private closed = false;
  /** {@link close} was called: nothing more is read or written. */
  private ending = false;
  private bye: ByeMessage | undefined;

  constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closed = true;
      const running = this.running;
      this.running = undefined;
      running?.closed();
      this.onClose?.(this.bye);
    });
  }

  get remoteAddress(): string {
    return (this.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(message: Message): void {
    this.write(encodeFrame(message));
  }

  /**
   * Sends a message (or a frame serialized once for many receivers, without its newline); resolves with
   * whether the kernel took it (not whether the other side read it).
   */
  sendFlushed(message: Message | string): Promise<boolean> {
    const frame = typeof message === 'string' ? `${message}\n` : encodeFrame(message);
    return new Promise((resolve) => {
      if (!this.write(frame, (err) => resolve(!err))) resolve(false);
    });
  }

  /** Sends a `bye` and closes the connection once it is flushed; reads nothing more. */
  close(reason?: ByeMessage['reason']): void {
    if (this.ending) return;
    if (reason) this.send({ t: 'bye', reason });
    this.ending = true;
    this.socket.end();
    this.socket.destroySoon();
    // Do not wait for the other side's FIN forever.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /**
   * Moves frames that arrived with or after the last handshake message over to {@link onMessage}, and
   * sets the frame limit (default: the job's, given by the handshake).
   */
  startMessages(handler: (message: ControlMessage) => void, maxBytes?: number): void {
    if (maxBytes !== undefined) this.limit = maxBytes;
    this.onMessage = handler;
    for (const message of this.queue.splice(0)) {
      if (this.ending || this.closed) return;
      handler(message);
    }
  }

  /**
   * Runs a handshake machine on this channel: `first` is sent at once (the client's hello). Resolves with
   * the result; rejects with a {@link HandshakeError} on failure, close or after `timeoutMs`.
   */
  handshake(
    first: Message | undefined,
    receive: (frame: Frame) => HandshakeStep,
    size: number,
    timeoutMs: number,
    port: number,
    closedDetail: string,
  ): Promise<HandshakeResult> {
    const address = this.remoteAddress;
    return new Promise((resolve, reject) => {
      const finish = (err: HandshakeError | undefined, result?: HandshakeResult): void => {
        clearTimeout(timer);
        this.running = undefined;
        if (err) reject(err);
        else resolve(result!);
      };
      const timer = setTimeout(() => {
        this.socket.destroy();
        finish(new HandshakeError('timeout', address, port, `no handshake within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      if (this.closed) return finish(new HandshakeError('closed', address, port, closedDetail));
      this.running = {
        closed: () => finish(new HandshakeError('closed', address, port, closedDetail)),
        receive: (frame) => {
          const step = receive(frame);
          for (const message of step.send) this.send(message);
          if (step.failure) {
            if (step.send.length > 0) this.close();
            else this.socket.destroy();
            finish(new HandshakeError(step.failure.reason, address, port, step.failure.detail));
          } else if (step.result) {
            this.authenticated = true;
            this.limit = maxFrameBytes(size);
            finish(undefined, step.result);
          }
          return step;
        },
      };
      if (first) this.send(first);
    });
  }

  private write(frame: string, done?: (err?: Error | null) => void): boolean {
    if (this.closed || this.ending || !this.socket.writable) return false;
    if (this.socket.writableLength > MAX_UNSENT_BYTES) {
      // The other side does not read: nothing it is owed can be delivered anyway.
      this.socket.destroy();
      return false;
    }
    this.socket.write(frame, done);
    return true;
  }

  private onData(chunk: Buffer): void {
    if (this.ending) return;
    this.decoder.push(chunk);
    while (!this.closed && !this.ending && !this.socket.destroyed) {
      const decoded = this.decoder.next(this.limit);
      if (decoded === undefined) return;
      if ('error' in decoded) {
        this.socket.destroy();
        return;
      }
      this.dispatch(decoded.frame);
    }
  }

  private dispatch(frame: Frame): void {
    if (this.running) {
      this.running.receive(frame);
      return;
    }
    if (!this.authenticated) {
      // A frame with no handshake running: before it started (nobody speaks first but the client) or
      // after it failed.
      this.socket.destroy();
      return;
    }
    const message = parseControl(frame);
    if (message === undefined) return;
    if (message.t === 'bye') this.bye = message;
    else if (this.onMessage) this.onMessage(message);
    else if (this.queue.length < MAX_QUEUED_FRAMES) this.queue.push(message);
    else this.socket.destroy();
  }
}

/**
 * Client side: says who we are and whom we expect (`expect`, or -1 for any member), checks the server's
 * proof, then proves ourselves. Rejects with a {@link HandshakeError}.
 */
export function clientHandshake(
  channel: Channel,
  local: LocalIdentity,
  expect: number,
  timeoutMs: number,
  port: number,
): Promise<HandshakeResult> {
  const machine = new ClientHandshake(local, expect, randomToken);
  return channel.handshake(
    machine.hello(),
    (frame) => machine.receive(frame),
    local.scope.size,
    timeoutMs,
    port,
    'connection closed before a reply (not a kubepeers responder?)',
  );
}

/**
 * Server side: checks the hello against our scope and index, proves ourselves, then checks the client's
 * proof. A hello that is not for us gets a one-word `reject` that says nothing of our scope.
 */
export function serverHandshake(
  channel: Channel,
  local: LocalIdentity,
  released: () => boolean,
  timeoutMs: number,
  port: number,
): Promise<HandshakeResult> {
  const machine = new ServerHandshake(local, released, randomToken);
  return channel.handshake(
    undefined,
    (frame) => machine.receive(frame),
    local.scope.size,
    timeoutMs,
    port,
    'connection closed during the handshake',
  );
}
