/**
 * The interface between the barrier's protocol core (no I/O: src/core/) and whatever runs it: the
 * sockets, resolver and clock of src/engine.ts, or the simulator under test/sim/. The core is driven like
 * quinn-proto or h11: the runtime hands it an {@link Input} with the current time, then takes the
 * {@link Output}s it produced and asks when it next wants to be called ({@link Machine.nextTimer}).
 */
import type { MissingPeer } from '../errors.js';
import type { Scope } from './wire.js';

/** Everything a pod's core needs to know; the runtime fills it in (src/options.ts for the library). */
export interface CoreConfig {
  scope: Scope;
  /** The run's MAC key (scopeKey). */
  key: Uint8Array;
  /** This pod's index. */
  index: number;
  /** Random id of this process instance. */
  instance: string;
  /** This pod's address as its peers see it (from /etc/hosts), canonical; '' when unknown. */
  selfAddress: string;
  /**
   * Absolute name (trailing dot) of member `index` (0 <= index < scope.size). A function, not a list: in a
   * star of 10 000 a member needs one name, and a list per pod cost O(N) memory each.
   */
  nameOf: (index: number) => string;
  /** Absolute name of the headless Service that lists the Ready members' addresses. */
  service: string;
  /** The index that discovers members and decides the release. */
  coordinator: number;
  /** The coordinator's Service poll interval while a member is missing (ms). */
  pollMs: number;
  /** Retry delays after a failure: exponential from min to max, jittered (ms). */
  retryMinMs: number;
  retryMaxMs: number;
  /** Connect plus handshake deadline (ms). */
  connectTimeoutMs: number;
  /** Random number in [0, 1): jitter. Seeded in the simulator. */
  random: () => number;
  /** A fresh handshake nonce. */
  nonce: () => string;
}

/** The outcome of one DNS lookup of a name (every configured record type merged by the runtime). */
export type DnsResult =
  | { status: 'ok'; addresses: string[]; ttlMs: number }
  | { status: 'nxdomain' | 'nodata'; ttlMs: number; detail: string }
  | { status: 'error'; detail: string; truncated?: boolean };

/** What the runtime tells the core. `now` is passed beside every input (ms, monotonic). */
export type Input =
  /** The answer to a `query` output. */
  | { type: 'dns'; id: number; result: DnsResult }
  /** An outbound connection (a `connect` output) is open. */
  | { type: 'connected'; conn: number }
  /** An outbound connection could not be opened (errno or `ETIMEDOUT`). */
  | { type: 'connect-failed'; conn: number; detail: string }
  /** An inbound connection was accepted; `conn` is chosen by the runtime and is negative. */
  | { type: 'accepted'; conn: number; remote: string }
  | { type: 'data'; conn: number; bytes: Uint8Array }
  /** The connection is gone (either side closed it, or it broke). */
  | { type: 'closed'; conn: number }
  /** A timer the core asked for is due (or the runtime just wants to advance time). */
  | { type: 'tick' };

/** What the core asks the runtime to do. */
export type Output =
  /** Look up `name` (absolute); answer with a `dns` input carrying `id`. */
  | { type: 'query'; id: number; name: string }
  /**
   * Open a TCP connection to `address` (the responder port); `conn` is positive. `fromSelf`: bind to this
   * pod's own address first (where the other side checks where we come from).
   */
  | { type: 'connect'; conn: number; address: string; fromSelf: boolean }
  | { type: 'send'; conn: number; data: string }
  /** Close after what was sent is flushed (`destroy`: at once). No `closed` input follows. */
  | { type: 'close'; conn: number; destroy: boolean }
  /** The barrier passed: every member's verified address, by index. */
  | { type: 'released'; roster: string[] }
  /** Progress changed: how many of the others passed, and who is missing. */
  | { type: 'progress'; ready: number; total: number; missing: number[] };

/** A pod's protocol core. */
export interface Machine {
  /** Starts the work (the runtime already listens). */
  start(now: number): void;
  handle(now: number, input: Input): void;
  /** Takes the outputs produced so far, in order. */
  poll(): Output[];
  /** When the core next needs a `tick` (absolute ms), or undefined. */
  nextTimer(): number | undefined;
  /** Whether the barrier has passed here. */
  readonly released: boolean;
  /** Released, and nothing is owed to anyone any more (every member acknowledged the release). */
  idle(): boolean;
  /** Who is missing and why, for a timeout error (one entry per missing member, causes first). */
  missing(): MissingPeer[];
  /** What else a timeout error should say (addresses that did not prove to be members, our own absence). */
  hint(): string | undefined;
  /**
   * Stops the barrier (timeout or abort): closes every connection, says `bye` with the reason. After a
   * release, `stop('released')` ends the linger: nothing more is answered.
   */
  stop(now: number, reason: 'timeout' | 'aborted' | 'released'): void;
}
