/**
 * The kubepeers wire format, without I/O: newline-delimited JSON frames with a size limit that the
 * consumer sets frame by frame, the message types and their validation, and the packed roster.
 * Sockets live in src/engine.ts; a simulator can feed the same bytes in any segmentation.
 */
import { isIP } from 'node:net';

/** Protocol version, sent in every hello. Pods of different versions do not take each other as peers. */
export const PROTOCOL_VERSION = 3;
/** Largest frame accepted before the peer is authenticated. */
export const MAX_HELLO_BYTES = 1024;
/** Largest frame accepted from an authenticated peer in a job of one pod; see {@link maxFrameBytes}. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Room per pod in an authenticated frame: a star `release` packs up to 41 bytes per index, base64: 56. */
export const FRAME_BYTES_PER_POD = 56;
/**
 * Frames an authenticated connection may hold while nobody consumes them (the barrier has not attached
 * its handler yet, or lingers and has none): one more and the connection is closed.
 */
export const MAX_QUEUED_FRAMES = 64;
/** Bytes written but not yet taken by the kernel on one connection, at most: a peer that does not read is dropped. */
export const MAX_UNSENT_BYTES = 4 * 1024 * 1024;

/** Largest authenticated frame in a job of `size` pods (a star's `release` carries every address). */
export function maxFrameBytes(size: number): number {
  return MAX_FRAME_BYTES + FRAME_BYTES_PER_POD * size;
}

/** The topology of a run (part of its scope). */
export type Topology = 'mesh' | 'star';

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
/**
 * The responder does not take the client as a peer. It says only which kind of refusal this is, never
 * what its own scope is: `mismatch` (not a member of this run, or not the index asked for), `busy`,
 * `protocol` (not a kubepeers v{@link PROTOCOL_VERSION} hello).
 */
export interface RejectMessage {
  t: 'reject';
  reason: 'mismatch' | 'busy' | 'protocol';
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
/**
 * Coordinator to member: members listed in the Service, by index and address (the coordinator learned
 * the index in a handshake with that address). Evidence that their names exist; in a mesh, who to check.
 */
export interface PeersMessage {
  t: 'peers';
  p: [index: number, address: string][];
}
/**
 * Member to coordinator: the member has verified everyone it checks; `d` is the digest of what it
 * verified (index, instance, address of each, and its own index and instance). `d: ''`: no longer.
 */
export interface DoneMessage {
  t: 'done';
  d: string;
}
/** Member to coordinator: the release arrived. */
export interface AckMessage {
  t: 'ack';
}
/** The sender is closing this connection on purpose (it was released, timed out or aborted). */
export interface ByeMessage {
  t: 'bye';
  reason: 'released' | 'timeout' | 'aborted';
}
export type ControlMessage =
  | VerifiedMessage
  | AddressesMessage
  | ParkMessage
  | RetryMessage
  | ReleaseMessage
  | ByeMessage
  | PeersMessage
  | DoneMessage
  | AckMessage;
export type Message = HelloMessage | WelcomeMessage | RejectMessage | ConfirmMessage | ControlMessage;

/** A decoded frame: a JSON object, not yet checked against any message type. */
export type Frame = Record<string, unknown>;

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const BYE_REASONS = new Set(['released', 'timeout', 'aborted']);

/**
 * Checks an authenticated frame against the control messages: the message, or `undefined` for an
 * unknown or malformed one (ignored: a later version may add messages).
 */
export function parseControl(frame: Frame): ControlMessage | undefined {
  switch (frame.t) {
    case 'verified':
      return { t: 'verified' };
    case 'ips':
      return Array.isArray(frame.ips)
        ? { t: 'ips', ips: frame.ips.filter((ip) => typeof ip === 'string') }
        : undefined;
    case 'park':
    case 'retry':
      return finite(frame.ms) ? { t: frame.t, ms: frame.ms } : undefined;
    case 'release':
      return typeof frame.roster === 'string' ? { t: 'release', roster: frame.roster } : undefined;
    case 'peers':
      return Array.isArray(frame.p)
        ? {
            t: 'peers',
            p: frame.p.filter(
              (e): e is [number, string] =>
                Array.isArray(e) && Number.isInteger(e[0]) && typeof e[1] === 'string' && e[1].length <= 64,
            ),
          }
        : undefined;
    case 'done':
      return typeof frame.d === 'string' && frame.d.length <= 128 ? { t: 'done', d: frame.d } : undefined;
    case 'ack':
      return { t: 'ack' };
    case 'bye':
      return typeof frame.reason === 'string' && BYE_REASONS.has(frame.reason)
        ? { t: 'bye', reason: frame.reason as ByeMessage['reason'] }
        : undefined;
    default:
      return undefined;
  }
}

/** One message as it goes on the wire. */
export function encodeFrame(message: Message): string {
  return `${JSON.stringify(message)}\n`;
}

/** What {@link FrameDecoder.next} found. */
export type Decoded = { frame: Frame } | { error: 'oversize' | 'malformed'; detail: string };

const NEWLINE = 0x0a;
const EMPTY = Buffer.alloc(0);

/**
 * Splits a byte stream into frames. Bytes are only appended by {@link push}; frames are taken one at a
 * time by {@link next}, each checked against the limit the consumer gives at that moment, so a consumer
 * that finishes a handshake on one frame can raise the limit before the next frame of the same read is
 * looked at (a coordinator's confirm and its release often arrive in one segment).
 */
export class FrameDecoder {
  /** Bytes received, up to the last chunk that held a newline. */
  private buffer: Buffer = EMPTY;
  /** Chunks received after it, none holding a newline (joined only once one does: no O(n²) copying). */
  private tail: Buffer[] = [];
  private tailBytes = 0;
  /** Bytes of {@link buffer} known to hold no newline. */
  private scanned = 0;

  /** Bytes received and not yet returned as frames. */
  get buffered(): number {
    return this.buffer.length + this.tailBytes;
  }

  push(chunk: Uint8Array): void {
    const bytes = Buffer.from(chunk);
    if (this.buffer.length === 0 && this.tail.length === 0) {
      this.buffer = bytes;
    } else if (bytes.includes(NEWLINE)) {
      this.buffer = Buffer.concat([this.buffer, ...this.tail, bytes]);
      this.tail = [];
      this.tailBytes = 0;
    } else {
      this.tail.push(bytes);
      this.tailBytes += bytes.length;
    }
  }

  /**
   * The next complete frame if it is at most `limit` bytes; an error for a longer frame (even one not
   * complete yet) or one that is not a JSON object; `undefined` when more bytes are needed.
   */
  next(limit: number): Decoded | undefined {
    const newline = this.buffer.indexOf(NEWLINE, this.scanned);
    if (newline < 0) {
      this.scanned = this.buffer.length;
      if (this.buffered > limit) return { error: 'oversize', detail: `a frame longer than ${limit} bytes` };
      return undefined;
    }
    if (newline > limit)
      return { error: 'oversize', detail: `a frame of ${newline} bytes, more than ${limit}` };
    const line = this.buffer.subarray(0, newline).toString('utf8');
    // (An empty rest must not keep the whole received buffer alive.)
    this.buffer = newline + 1 < this.buffer.length ? this.buffer.subarray(newline + 1) : EMPTY;
    this.scanned = 0;
    let frame: unknown;
    try {
      frame = JSON.parse(line);
    } catch {
      return { error: 'malformed', detail: 'a frame that is not JSON' };
    }
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame))
      return { error: 'malformed', detail: 'a frame that is not a JSON object' };
    return { frame: frame as Frame };
  }
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
