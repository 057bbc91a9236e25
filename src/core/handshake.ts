/**
 * The kubepeers handshake as two state machines without I/O: each takes the frames of its connection one
 * at a time and says what to send and whether the other side has proved who it is. Mutual
 * challenge-response: both sides bind their fresh nonces and the run's key (derived from the scope and
 * the optional secret), so a recorded welcome cannot be replayed and a pod of another run cannot pass.
 * Before the client has proved itself the server reveals nothing about its scope: a refusal is one word.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { HandshakeFailureReason } from '../errors.js';
import {
  PROTOCOL_VERSION,
  type ConfirmMessage,
  type Frame,
  type HelloMessage,
  type Message,
  type RejectMessage,
  type Scope,
  type WelcomeMessage,
} from './wire.js';

/** Who this side is. */
export interface LocalIdentity {
  scope: Scope;
  /** {@link scopeKey} of the scope and secret. */
  key: Uint8Array;
  index: number;
  /** Random id of this process instance. */
  instance: string;
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

/** One step of a handshake: frames to send, then at most one of an outcome. */
export interface HandshakeStep {
  send: Message[];
  /** The handshake passed. */
  result?: HandshakeResult;
  /** The handshake failed; the connection is to be closed once `send` is written. */
  failure?: { reason: HandshakeFailureReason; detail: string };
}

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

function proof(key: Uint8Array, role: 'server' | 'client', parts: readonly (string | number)[]): string {
  return createHmac('sha256', key)
    .update(JSON.stringify([role, ...parts]))
    .digest('base64url');
}

function sameProof(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const isStr = (v: unknown, max = 128): v is string => typeof v === 'string' && v.length <= max;
const isIndex = (v: unknown, size: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < size;

const fail = (reason: HandshakeFailureReason, detail: string, send: Message[] = []): HandshakeStep => ({
  send,
  failure: { reason, detail },
});

/**
 * Client side: says who we are and whom we expect (`expect`, or -1 for any member), checks the server's
 * proof, then proves ourselves.
 */
export class ClientHandshake {
  private readonly nonce: string;
  private done = false;

  constructor(
    private readonly local: LocalIdentity,
    private readonly expect: number,
    nonce: () => string,
  ) {
    this.nonce = nonce();
  }

  /** The first frame, to send as soon as the connection is open. */
  hello(): HelloMessage {
    const { scope } = this.local;
    return {
      t: 'hello',
      v: PROTOCOL_VERSION,
      ns: scope.namespace,
      svc: scope.subdomain,
      domain: scope.clusterDomain,
      job: scope.jobName,
      run: scope.runId,
      size: scope.size,
      topo: scope.topology,
      from: this.local.index,
      to: this.expect,
      inst: this.local.instance,
      nonce: this.nonce,
    };
  }

  receive(frame: Frame): HandshakeStep {
    if (this.done) return fail('protocol', 'a frame after the handshake ended');
    this.done = true;
    const { local, expect } = this;
    if (frame.t === 'reject') {
      const reason = (frame as Partial<RejectMessage>).reason;
      if (reason === 'busy') return fail('busy', 'too many handshakes in progress there');
      if (reason === 'protocol')
        return fail('protocol', `it does not speak kubepeers protocol v${PROTOCOL_VERSION}`);
      return fail(
        'mismatch',
        `it is not ${expect >= 0 ? `index ${expect} of this run` : 'a member of this run'} ` +
          '(another job, namespace, Service, cluster domain, run id, size or topology, or another index)',
      );
    }
    const w = frame as Partial<WelcomeMessage>;
    const size = local.scope.size;
    if (
      w.t !== 'welcome' ||
      !isIndex(w.from, size) ||
      !isStr(w.inst) ||
      !isStr(w.nonce) ||
      !isStr(w.proof) ||
      typeof w.released !== 'boolean'
    ) {
      return fail('protocol', 'malformed welcome');
    }
    if (expect >= 0 && w.from !== expect)
      return fail('mismatch', `answered as index ${w.from}, expected ${expect}`);
    if (w.from === local.index) return fail('mismatch', `answered as our own index ${w.from}`);
    const expected = proof(local.key, 'server', [
      w.from,
      local.index,
      this.nonce,
      w.nonce,
      w.inst,
      w.released ? 1 : 0,
    ]);
    if (!sameProof(w.proof, expected))
      return fail(
        'bad-proof',
        'proof does not match this run (another run of the job, or a different secret)',
      );
    const confirm: ConfirmMessage = {
      t: 'confirm',
      proof: proof(local.key, 'client', [local.index, w.from, w.nonce, this.nonce, local.instance]),
    };
    return { send: [confirm], result: { peerIndex: w.from, peerInstance: w.inst, peerReleased: w.released } };
  }
}

/**
 * Server side: checks the hello against our scope and index, proves ourselves, then checks the client's
 * proof. A hello that is not for us is answered `reject mismatch` and nothing else.
 */
export class ServerHandshake {
  private hello: HelloMessage | undefined;
  private nonce = '';
  private done = false;

  constructor(
    private readonly local: LocalIdentity,
    /** Whether this pod has passed the barrier (said in the welcome, under the proof). */
    private readonly released: () => boolean,
    private readonly newNonce: () => string,
  ) {}

  receive(frame: Frame): HandshakeStep {
    if (this.done) return fail('protocol', 'a frame after the handshake ended');
    return this.hello === undefined ? this.onHello(frame) : this.onConfirm(frame, this.hello);
  }

  private onHello(frame: Frame): HandshakeStep {
    const h = frame as Partial<HelloMessage>;
    const reject = (reason: RejectMessage['reason'], detail: string): HandshakeStep => {
      this.done = true;
      return fail(reason, detail, [{ t: 'reject', reason }]);
    };
    if (h.t !== 'hello' || h.v !== PROTOCOL_VERSION)
      return reject('protocol', `not a kubepeers v${PROTOCOL_VERSION} hello`);
    const { scope, index } = this.local;
    const fields: [string, unknown, string | number][] = [
      ['namespace', h.ns, scope.namespace],
      ['subdomain', h.svc, scope.subdomain],
      ['cluster domain', h.domain, scope.clusterDomain],
      ['job', h.job, scope.jobName],
      ['run id', h.run, scope.runId],
      ['size', h.size, scope.size],
      ['topology', h.topo, scope.topology],
    ];
    for (const [what, theirs, ours] of fields) {
      // Said to the other side as one word; the detail stays on this side (our own error and logs).
      if (theirs !== ours)
        return reject(
          'mismatch',
          `${what} differs: peer has ${JSON.stringify(theirs)}, we have ${JSON.stringify(ours)}`,
        );
    }
    if (!isIndex(h.from, scope.size) || h.from === index || !isStr(h.inst) || !isStr(h.nonce))
      return reject('protocol', 'malformed hello');
    if (h.to !== -1 && h.to !== index) return reject('mismatch', `asked for index ${String(h.to)}`);
    this.hello = h as HelloMessage;
    this.nonce = this.newNonce();
    const released = this.released();
    const welcome: WelcomeMessage = {
      t: 'welcome',
      from: index,
      inst: this.local.instance,
      nonce: this.nonce,
      released,
      proof: proof(this.local.key, 'server', [
        index,
        h.from,
        h.nonce,
        this.nonce,
        this.local.instance,
        released ? 1 : 0,
      ]),
    };
    return { send: [welcome] };
  }

  private onConfirm(frame: Frame, h: HelloMessage): HandshakeStep {
    this.done = true;
    const expected = proof(this.local.key, 'client', [h.from, this.local.index, this.nonce, h.nonce, h.inst]);
    if (frame.t !== 'confirm' || !isStr(frame.proof) || !sameProof(frame.proof, expected))
      return fail('bad-proof', 'client proof does not match this run');
    return { send: [], result: { peerIndex: h.from, peerInstance: h.inst, peerReleased: false } };
  }
}
