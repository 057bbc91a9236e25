/**
 * A deliberately small stand-in for the barrier's core, used to test the simulator itself (not the
 * protocol): the coordinator polls the Service, connects to each new address, checks the owner's name and
 * pushes the roster when everyone is admitted; members only answer. It ignores the topology (a mesh run of
 * it must be caught by the mesh invariant) and knows nothing of restarts beyond reconnecting.
 */
import { ClientHandshake, ServerHandshake, type LocalIdentity } from '../../src/core/handshake.js';
import type { CoreConfig, Input, Machine, Output } from '../../src/core/types.js';
import {
  encodeFrame,
  FrameDecoder,
  MAX_HELLO_BYTES,
  maxFrameBytes,
  packAddresses,
  parseControl,
  unpackAddresses,
  type Message,
} from '../../src/core/wire.js';

interface StandInConn {
  address: string;
  decoder: FrameDecoder;
  client?: ClientHandshake;
  server?: ServerHandshake;
  peer?: number;
}

export interface StandInOptions {
  /** Release as soon as this many members are admitted (a broken barrier, for tests of the invariants). */
  releaseEarlyAt?: number;
  /** Put this address in the roster instead of the verified one for index 1 (a broken barrier). */
  forgeEntry?: string;
}

export function createStandIn(config: CoreConfig, options: StandInOptions = {}): Machine {
  const outputs: Output[] = [];
  const local: LocalIdentity = {
    scope: config.scope,
    key: config.key,
    index: config.index,
    instance: config.instance,
  };
  const size = config.scope.size;
  const isCoordinator = config.index === config.coordinator;
  const conns = new Map<number, StandInConn>();
  /** Coordinator: addresses connected to (or being), and the Service's latest answer. */
  const seen = new Set<string>();
  let listed = new Set<string>();
  /** Coordinator: members by index; `heard`: it sent `verified` (it has authenticated us too). */
  const member = new Map<
    number,
    { conn: number; address: string; admitted: boolean; named: boolean; heard: boolean }
  >();
  const queries = new Map<number, number>(); // id → index (-1: Service)
  let nextId = 1;
  let nextConn = 1;
  let pollAt = 0;
  let released = false;
  let roster: string[] | undefined;
  const retryAt = new Map<number, number>();
  /** Own name (coordinator) or the coordinator's name (member) resolves to the expected address. */
  let nameOk = false;
  /** Member: the roster received, waiting for the coordinator's name to check out; its address. */
  let pending: { roster: string[]; address: string } | undefined;
  const SELF = -2;

  const send = (conn: number, m: Message): void => {
    outputs.push({ type: 'send', conn, data: encodeFrame(m) });
  };
  const query = (name: string, index: number): void => {
    const id = nextId++;
    queries.set(id, index);
    outputs.push({ type: 'query', id, name });
  };
  const checkName = (k: number): void => {
    if ([...queries.values()].includes(k)) return;
    query(config.nameOf(k === SELF ? (isCoordinator ? config.index : config.coordinator) : k), k);
  };
  const sendRelease = (conn: number): void => {
    send(conn, { t: 'release', roster: packAddresses(roster!) });
  };
  const maybeRelease = (): void => {
    if (released) return;
    const admitted = [...member.values()].filter((m) => m.admitted).length;
    if (admitted < (options.releaseEarlyAt ?? size - 1)) return;
    if (!nameOk && options.releaseEarlyAt === undefined) return;
    roster = Array.from({ length: size }, (_, i) =>
      i === config.index ? config.selfAddress : (member.get(i)?.address ?? ''),
    );
    if (options.forgeEntry !== undefined && size > 1) roster[1 === config.index ? 0 : 1] = options.forgeEntry;
    for (const m of member.values()) if (m.admitted) sendRelease(m.conn);
    released = true;
    outputs.push({ type: 'released', roster: [...roster] });
  };

  const onFrames = (id: number, c: StandInConn): void => {
    for (;;) {
      const limit = c.peer === undefined ? MAX_HELLO_BYTES : maxFrameBytes(size);
      const d = c.decoder.next(limit);
      if (d === undefined) return;
      if (!('frame' in d)) return drop(id);
      if (c.peer === undefined) {
        const hs = c.client ?? c.server!;
        const step = hs.receive(d.frame);
        for (const m of step.send) send(id, m);
        if (step.failure) return drop(id);
        if (step.result) {
          c.peer = step.result.peerIndex;
          if (isCoordinator) {
            const old = member.get(c.peer);
            if (old && old.conn !== id) drop(old.conn);
            member.set(c.peer, { conn: id, address: c.address, admitted: false, named: false, heard: false });
            if (released) {
              // Lingering: a late or restarted member gets the roster with its address.
              roster![c.peer] = c.address;
              sendRelease(id);
            } else if (listed.has(c.address)) checkName(c.peer);
          } else {
            // Tell the coordinator we authenticated it.
            send(id, { t: 'verified' });
          }
        }
        continue;
      }
      const m = parseControl(d.frame);
      if (isCoordinator && m?.t === 'verified') {
        const e = member.get(c.peer);
        if (e && e.conn === id) {
          e.heard = true;
          e.admitted = e.named;
          maybeRelease();
        }
      }
      if (!isCoordinator && m?.t === 'release' && c.peer === config.coordinator && !released) {
        const r = unpackAddresses(m.roster, size);
        if (r === undefined) continue;
        pending = { roster: r, address: c.address };
        checkName(SELF);
      }
    }
  };
  const drop = (id: number): void => {
    const c = conns.get(id);
    if (c === undefined) return;
    conns.delete(id);
    outputs.push({ type: 'close', conn: id, destroy: false });
    forget(c);
  };
  const forget = (c: StandInConn): void => {
    if (!isCoordinator) return;
    seen.delete(c.address);
    if (c.peer !== undefined && member.get(c.peer)?.address === c.address && !released) member.delete(c.peer);
  };

  return {
    get released() {
      return released;
    },
    start(now) {
      if (isCoordinator) {
        pollAt = now;
        checkName(SELF);
      }
      this.handle(now, { type: 'tick' });
    },
    handle(now, input: Input) {
      switch (input.type) {
        case 'tick':
          break;
        case 'dns': {
          const k = queries.get(input.id);
          if (k === undefined) break;
          queries.delete(input.id);
          const r = input.result;
          if (k === -1) {
            if (r.status !== 'ok') break;
            listed = new Set(r.addresses);
            for (const a of r.addresses) {
              if (a === config.selfAddress || seen.has(a)) continue;
              seen.add(a);
              const id = nextConn++;
              conns.set(id, {
                address: a,
                decoder: new FrameDecoder(),
                client: new ClientHandshake(local, -1, config.nonce),
              });
              outputs.push({ type: 'connect', conn: id, address: a, fromSelf: false });
            }
            for (const [i, m] of member) if (!m.admitted && listed.has(m.address)) checkName(i);
          } else if (k === SELF) {
            const want = isCoordinator ? config.selfAddress : pending?.address;
            if (r.status === 'ok' && want !== undefined && r.addresses.includes(want)) {
              nameOk = true;
              if (isCoordinator) maybeRelease();
              else if (pending && !released) {
                released = true;
                outputs.push({ type: 'released', roster: pending.roster });
              }
            } else retryAt.set(SELF, now + Math.max(config.retryMinMs, r.status === 'error' ? 0 : r.ttlMs));
          } else {
            const m = member.get(k);
            if (m === undefined || m.admitted) break;
            if (r.status === 'ok' && r.addresses.includes(m.address)) {
              m.named = true;
              m.admitted = m.heard;
              maybeRelease();
            } else retryAt.set(k, now + Math.max(config.retryMinMs, r.status === 'error' ? 0 : r.ttlMs));
          }
          break;
        }
        case 'connected': {
          const c = conns.get(input.conn);
          if (c?.client) send(input.conn, c.client.hello());
          break;
        }
        case 'connect-failed': {
          const c = conns.get(input.conn);
          conns.delete(input.conn);
          if (c) forget(c);
          break;
        }
        case 'accepted':
          conns.set(input.conn, {
            address: input.remote,
            decoder: new FrameDecoder(),
            server: new ServerHandshake(local, () => released, config.nonce),
          });
          break;
        case 'data': {
          const c = conns.get(input.conn);
          if (c === undefined) break;
          c.decoder.push(input.bytes);
          onFrames(input.conn, c);
          break;
        }
        case 'closed': {
          const c = conns.get(input.conn);
          conns.delete(input.conn);
          if (c) forget(c);
          break;
        }
      }
      if (isCoordinator && now >= pollAt) {
        if (![...queries.values()].includes(-1)) query(config.service, -1);
        pollAt = now + config.pollMs;
      }
      for (const [k, at] of retryAt)
        if (now >= at) {
          retryAt.delete(k);
          if (k === SELF || member.get(k)?.admitted === false) checkName(k);
        }
    },
    poll() {
      return outputs.splice(0);
    },
    nextTimer() {
      let t = isCoordinator ? pollAt : Infinity;
      for (const at of retryAt.values()) t = Math.min(t, at);
      return t === Infinity ? undefined : t;
    },
    idle() {
      return released;
    },
    hint() {
      return undefined;
    },
    missing() {
      const out = [];
      for (let i = 0; i < size; i++)
        if (i !== config.index && !member.get(i)?.admitted)
          out.push({ index: i, fqdn: config.nameOf(i), reason: 'not-seen' as const, detail: 'stand-in' });
      return out;
    },
    stop() {
      for (const id of [...conns.keys()]) drop(id);
    },
  };
}
