/**
 * The kubepeers wire protocol: newline-delimited JSON frames over TCP, a mutual challenge-response
 * handshake keyed by the run's scope (and optional secret), then a few small control messages.
 * See docs/protocol.md.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import { HandshakeError, type HandshakeFailureReason } from './errors.js';
import type { Topology } from './options.js';

/** Protocol version. */
export const PROTOCOL_VERSION = 1;
/** Largest frame accepted before the peer is authenticated. */
export const MAX_HELLO_BYTES = 1024;
/** Largest frame accepted from an authenticated peer. */
export const MAX_FRAME_BYTES = 64 * 1024;

/** What every pod of one run agrees on. Two pods with different scopes never pass as each other's peers. */
export interface Scope {
  namespace: string;
  subdomain: string;
  clusterDomain: string;
  jobName: string;
  runId: string;
  size: number;
  topology: Topology;
}

export interface HelloMessage {
  t: 'hello';
  v: number;
  ns: string;
  svc: string;
  domain: string;
  job: string;
  run: string;
  size: number;
  topo: Topology;
  /** Sender's index. */
  from: number;
  /** Index the sender expects to reach, or -1 when probing an address of unknown owner. */
  to: number;
  /** Random id of the sender's process instance (a restarted pod has a new one). */
  inst: string;
  nonce: string;
}
export interface WelcomeMessage {
  t: 'welcome';
  from: number;
  inst: string;
  nonce: string;
  /** The server has already passed the barrier and only lingers for late or restarted peers. */
  released: boolean;
  proof: string;
}
export interface RejectMessage {
  t: 'reject';
  reason: 'mismatch' | 'busy' | 'protocol';
  detail: string;
}
export interface ConfirmMessage {
  t: 'confirm';
  proof: string;
}
/** The sender has resolved the receiver's name and verified it at that address. */
export interface VerifiedMessage {
  t: 'verified';
}
/** Addresses the sender newly saw in the Service's address set (gossip, so the others need not poll). */
export interface AddressesMessage {
  t: 'ips';
  ips: string[];
}
/** Star, coordinator to member: admitted; hang up, keep the responder open for the release, check in again within `ms`. */
export interface ParkMessage {
  t: 'park';
  ms: number;
}
/** Star, coordinator to member: too many members at once; connect again in about `ms`. */
export interface RetryMessage {
  t: 'retry';
  ms: number;
}
/**
 * Star, coordinator to member: everyone passed. `roster` is the verified address of every index, packed
 * by {@link packAddresses} (about 7 bytes per IPv4 pod instead of 18 as JSON strings).
 */
export interface ReleaseMessage {
  t: 'release';
  roster: string;
}
/** The sender is closing this connection on purpose (it was released, timed out or aborted). */
export interface ByeMessage {
  t: 'bye';
  reason: 'released' | 'timeout' | 'aborted';
}
export type ControlMessage =
  VerifiedMessage | AddressesMessage | ParkMessage | RetryMessage | ReleaseMessage | ByeMessage;
const CONTROL_TYPES = new Set(['verified', 'ips', 'park', 'retry', 'release']);
export type Message = HelloMessage | WelcomeMessage | RejectMessage | ConfirmMessage | ControlMessage;

/** Derives the MAC key of a run from its scope and optional secret. */
export function scopeKey(scope: Scope, secret: string | undefined): Buffer {
  const material = JSON.stringify([
    'kubepeers',
    PROTOCOL_VERSION,
    scope.namespace,
    scope.subdomain,
    scope.clusterDomain,
    scope.jobName,
    scope.runId,
    scope.size,
    scope.topology,
  ]);
  return createHmac('sha256', secret ?? '')
    .update(material)
    .digest();
}

function proof(key: Buffer, role: 'server' | 'client', parts: readonly (string | number)[]): string {
  return createHmac('sha256', key)
    .update(JSON.stringify([role, ...parts]))
    .digest('base64url');
}

function sameProof(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Packs addresses for a release frame, base64 of one entry per index: tag 0 (none), tag 4 and the four
 * bytes of an IPv4 address, or tag 6, a length byte and the text of an IPv6 address.
 */
export function packAddresses(ips: readonly string[]): string {
  const parts: Buffer[] = [];
  for (const ip of ips) {
    const family = isIP(ip);
    if (family === 4) parts.push(Buffer.from([4, ...ip.split('.').map(Number)]));
    else if (family === 6) parts.push(Buffer.from([6, ip.length]), Buffer.from(ip, 'latin1'));
    else parts.push(Buffer.from([0]));
  }
  return Buffer.concat(parts).toString('base64');
}

/** Inverse of {@link packAddresses}: exactly `count` valid entries, or undefined. */
export function unpackAddresses(packed: unknown, count: number): string[] | undefined {
  if (typeof packed !== 'string') return undefined;
  const bytes = Buffer.from(packed, 'base64');
  const ips: string[] = [];
  let at = 0;
  while (at < bytes.length && ips.length < count) {
    const tag = bytes[at++];
    if (tag === 0) {
      ips.push('');
    } else if (tag === 4 && at + 4 <= bytes.length) {
      ips.push(`${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`);
      at += 4;
    } else if (tag === 6 && at < bytes.length) {
      const len = bytes[at++]!;
      const ip = bytes.subarray(at, at + len).toString('latin1');
      if (ip.length !== len || isIP(ip) !== 6) return undefined;
      ips.push(ip);
      at += len;
    } else {
      return undefined;
    }
  }
  return ips.length === count && at === bytes.length ? ips : undefined;
}

/** A random 128-bit token, base64url. */
export function randomToken(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * A socket speaking newline-delimited JSON with a frame size limit. Before the handshake finishes,
 * frames are pulled with {@link Channel.read}; afterwards they are pushed to {@link Channel.onMessage}.
 */
export class Channel {
  /** Set after the handshake to receive control messages. */
  onMessage: ((message: ControlMessage) => void) | undefined;
  /** Called once when the socket closes, with whether a `bye` was received first. */
  onClose: ((bye: ByeMessage | undefined) => void) | undefined;
  maxFrameBytes = MAX_HELLO_BYTES;
  private buffer = '';
  private queue: unknown[] = [];
  private waiter: ((value: unknown) => void) | undefined;
  private closed = false;
  private bye: ByeMessage | undefined;

  constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closed = true;
      this.deliver(undefined);
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
    if (!this.closed && this.socket.writable) this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** Sends a message (or a frame serialized once for many receivers); resolves once the kernel has it. */
  sendFlushed(message: Message | string): Promise<void> {
    if (this.closed || !this.socket.writable) return Promise.resolve();
    const frame = typeof message === 'string' ? message : JSON.stringify(message);
    return new Promise((resolve) => this.socket.write(`${frame}\n`, () => resolve()));
  }

  /** Sends a `bye` and closes the connection once it is flushed. */
  close(reason?: ByeMessage['reason']): void {
    if (reason) this.send({ t: 'bye', reason });
    this.socket.end();
    this.socket.destroySoon?.();
    // Do not wait for the other side's FIN forever.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Next frame before the handshake completes; `undefined` when the socket closed. */
  read(): Promise<unknown> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift());
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  private deliver(frame: unknown): void {
    if (this.onMessage && frame !== undefined) {
      const msg = frame as Partial<ControlMessage>;
      if (msg.t === 'bye') this.bye = frame as ByeMessage;
      else if (typeof msg.t === 'string' && CONTROL_TYPES.has(msg.t)) this.onMessage(frame as ControlMessage);
      return;
    }
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter(frame);
    } else if (frame !== undefined) {
      this.queue.push(frame);
    }
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      let frame: unknown;
      try {
        frame = JSON.parse(line);
      } catch {
        this.socket.destroy();
        return;
      }
      if (typeof frame !== 'object' || frame === null) {
        this.socket.destroy();
        return;
      }
      this.deliver(frame);
    }
    if (Buffer.byteLength(this.buffer) > this.maxFrameBytes) this.socket.destroy();
  }

  /**
   * Moves frames that arrived with the last handshake message over to {@link onMessage}, and raises the
   * frame limit to `maxFrameBytes` (a star release carries every address of the job).
   */
  startMessages(handler: (message: ControlMessage) => void, maxFrameBytes = MAX_FRAME_BYTES): void {
    this.maxFrameBytes = maxFrameBytes;
    this.onMessage = handler;
    for (const frame of this.queue.splice(0)) this.deliver(frame);
  }
}

/** What each side proves and learns in a handshake. */
export interface HandshakeResult {
  /** The other side's index. */
  peerIndex: number;
  /** The other side's process instance. */
  peerInstance: string;
  /** The other side had already passed the barrier (client side only). */
  peerReleased: boolean;
}

interface Local {
  scope: Scope;
  key: Buffer;
  index: number;
  instance: string;
}

function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  channel: Channel,
  address: string,
  port: number,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      channel.socket.destroy();
      reject(new HandshakeError('timeout', address, port, `no handshake within ${ms} ms`));
    }, ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

const isStr = (v: unknown, max = 128): v is string => typeof v === 'string' && v.length <= max;
const isIndex = (v: unknown, size: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < size;

/**
 * Client side: says who we are and whom we expect (`expect`, or -1 for any member), checks the server's
 * proof, then proves ourselves. Rejects with a {@link HandshakeError}.
 */
export function clientHandshake(
  channel: Channel,
  local: Local,
  expect: number,
  timeoutMs: number,
  port: number,
): Promise<HandshakeResult> {
  const address = channel.remoteAddress;
  const fail = (reason: HandshakeFailureReason, detail: string): HandshakeError => {
    channel.socket.destroy();
    return new HandshakeError(reason, address, port, detail);
  };
  const run = async (): Promise<HandshakeResult> => {
    const nonce = randomToken();
    const { scope } = local;
    channel.send({
      t: 'hello',
      v: PROTOCOL_VERSION,
      ns: scope.namespace,
      svc: scope.subdomain,
      domain: scope.clusterDomain,
      job: scope.jobName,
      run: scope.runId,
      size: scope.size,
      topo: scope.topology,
      from: local.index,
      to: expect,
      inst: local.instance,
      nonce,
    });
    const reply = (await channel.read()) as Partial<WelcomeMessage | RejectMessage> | undefined;
    if (reply === undefined)
      throw fail('closed', 'connection closed before a reply (not a kubepeers responder?)');
    if (reply.t === 'reject') {
      const r = reply as Partial<RejectMessage>;
      const reason = r.reason === 'busy' || r.reason === 'protocol' ? r.reason : 'mismatch';
      throw fail(reason, isStr(r.detail, 300) ? r.detail : 'rejected');
    }
    const w = reply as Partial<WelcomeMessage>;
    if (
      w.t !== 'welcome' ||
      !isIndex(w.from, scope.size) ||
      !isStr(w.inst) ||
      !isStr(w.nonce) ||
      !isStr(w.proof) ||
      typeof w.released !== 'boolean'
    ) {
      throw fail('protocol', 'malformed welcome');
    }
    if (expect >= 0 && w.from !== expect)
      throw fail('mismatch', `answered as index ${w.from}, expected ${expect}`);
    if (w.from === local.index) throw fail('mismatch', `answered as our own index ${w.from}`);
    const expected = proof(local.key, 'server', [
      w.from,
      local.index,
      nonce,
      w.nonce,
      w.inst,
      w.released ? 1 : 0,
    ]);
    if (!sameProof(w.proof, expected)) {
      throw fail(
        'bad-proof',
        'proof does not match this run (another run of the job, or a different secret)',
      );
    }
    channel.send({
      t: 'confirm',
      proof: proof(local.key, 'client', [local.index, w.from, w.nonce, nonce, local.instance]),
    });
    return { peerIndex: w.from, peerInstance: w.inst, peerReleased: w.released };
  };
  return withTimeout(run(), timeoutMs, channel, address, port);
}

/**
 * Server side: checks the hello against our scope and index, proves ourselves, then checks the client's
 * proof. Mismatches are answered with a `reject` naming the first differing field (never the secret).
 */
export function serverHandshake(
  channel: Channel,
  local: Local,
  released: () => boolean,
  timeoutMs: number,
  port: number,
): Promise<HandshakeResult> {
  const address = channel.remoteAddress;
  const reject = (reason: RejectMessage['reason'], detail: string): HandshakeError => {
    channel.send({ t: 'reject', reason, detail });
    channel.close();
    return new HandshakeError(reason === 'busy' ? 'busy' : reason, address, port, detail);
  };
  const run = async (): Promise<HandshakeResult> => {
    const h = (await channel.read()) as Partial<HelloMessage> | undefined;
    if (h === undefined) throw new HandshakeError('closed', address, port, 'closed before hello');
    if (h.t !== 'hello' || h.v !== PROTOCOL_VERSION)
      throw reject('protocol', 'expected a kubepeers v1 hello');
    const { scope } = local;
    const fields: [string, unknown, string | number][] = [
      ['namespace', h.ns, scope.namespace],
      ['subdomain', h.svc, scope.subdomain],
      ['cluster domain', h.domain, scope.clusterDomain],
      ['job', h.job, scope.jobName],
    ];
    for (const [what, theirs, ours] of fields) {
      if (theirs !== ours)
        throw reject(
          'mismatch',
          `${what} differs: peer has ${JSON.stringify(theirs)}, responder has ${JSON.stringify(ours)}`,
        );
    }
    if (h.run !== scope.runId) throw reject('mismatch', 'run id differs (a pod of another run of this job)');
    if (h.size !== scope.size)
      throw reject('mismatch', `size differs: peer has ${String(h.size)}, responder has ${scope.size}`);
    if (h.topo !== scope.topology)
      throw reject(
        'mismatch',
        `topology differs: peer has ${JSON.stringify(h.topo)}, responder has "${scope.topology}"`,
      );
    if (!isIndex(h.from, scope.size) || h.from === local.index || !isStr(h.inst) || !isStr(h.nonce)) {
      throw reject('protocol', 'malformed hello');
    }
    if (h.to !== -1 && h.to !== local.index) {
      throw reject('mismatch', `this is index ${local.index}, not ${String(h.to)}`);
    }
    const nonce = randomToken();
    const isReleased = released();
    channel.send({
      t: 'welcome',
      from: local.index,
      inst: local.instance,
      nonce,
      released: isReleased,
      proof: proof(local.key, 'server', [
        local.index,
        h.from,
        h.nonce,
        nonce,
        local.instance,
        isReleased ? 1 : 0,
      ]),
    });
    const c = (await channel.read()) as Partial<ConfirmMessage> | undefined;
    if (c === undefined) throw new HandshakeError('closed', address, port, 'closed before confirm');
    const expected = proof(local.key, 'client', [h.from, local.index, nonce, h.nonce, h.inst]);
    if (c.t !== 'confirm' || !isStr(c.proof) || !sameProof(c.proof, expected)) {
      channel.socket.destroy();
      throw new HandshakeError('bad-proof', address, port, 'client proof does not match this run');
    }
    return { peerIndex: h.from, peerInstance: h.inst, peerReleased: false };
  };
  return withTimeout(run(), timeoutMs, channel, address, port);
}
