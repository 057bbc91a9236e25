/**
 * A hostile stranger for the simulator: not a member of the run (it has the public scope but not the key),
 * it finds the job's pods through the Service and throws at them what a buggy or malicious neighbour could:
 * connections that stay silent, junk, frames over the pre-authentication limit, floods of control frames,
 * hellos for the wrong index, a handshake with a bad proof; it answers connections with silence, junk, a
 * reject or a welcome whose proof is wrong. Every choice comes from the simulator's seeded stream.
 */
import { ClientHandshake } from '../../src/core/handshake.js';
import type { CoreConfig, Input, Machine, Output } from '../../src/core/types.js';
import { encodeFrame, FrameDecoder, type Message } from '../../src/core/wire.js';
import type { Rng } from './prng.js';

type ClientPlay = 'silent' | 'junk' | 'oversize' | 'flood' | 'bad-confirm' | 'wrong-index' | 'drip';
type ServerPlay = 'silent' | 'junk' | 'reject' | 'bad-welcome' | 'oversize' | 'flood';

interface FloodConn {
  role: 'client' | 'server';
  play: ClientPlay | ServerPlay;
  decoder: FrameDecoder;
  handshake?: ClientHandshake;
  /** Hang up at this time. */
  until: number;
}

/** Connections the stranger keeps at once (so that it costs the simulation a bounded amount). */
const MAX_FLOOD_CONNS = 24;

export function createFlooder(config: CoreConfig, rng: Rng): Machine {
  const outputs: Output[] = [];
  const conns = new Map<number, FloodConn>();
  let targets: string[] = [];
  let nextConn = 1;
  let nextQuery = 1;
  let nextAct = 0;
  let stopped = false;
  const send = (conn: number, m: Message | string): void => {
    outputs.push({ type: 'send', conn, data: typeof m === 'string' ? m : encodeFrame(m) });
  };
  const hangUp = (conn: number): void => {
    if (!conns.delete(conn)) return;
    outputs.push({ type: 'close', conn, destroy: rng.chance(0.5) });
  };
  const junk = (): string => {
    const kinds = [
      '{"t":"verified"}\n',
      '{"t":"release","roster":"AAAA"}\n',
      'not json\n',
      '[1,2]\n',
      '{"t":"bye","reason":"released"}\n',
    ];
    let s = '';
    const n = rng.int(1, 200);
    for (let i = 0; i < n; i++) s += rng.pick(kinds);
    return s;
  };
  const flood = (conn: number): void => {
    // Control frames as if authenticated, many at once.
    const frames = ['{"t":"verified"}\n', '{"t":"ips","ips":["10.9.9.9"]}\n', '{"t":"park","ms":1}\n'];
    send(conn, rng.pick(frames).repeat(rng.int(100, 2000)));
  };
  const play = (now: number, conn: number, c: FloodConn): void => {
    switch (c.play) {
      case 'silent':
        break;
      case 'junk':
        send(conn, junk());
        break;
      case 'oversize':
        send(conn, 'x'.repeat(rng.int(1100, 70_000)));
        break;
      case 'flood':
        flood(conn);
        break;
      case 'bad-confirm':
      case 'wrong-index': {
        const expect = c.play === 'wrong-index' ? rng.int(0, config.scope.size - 1) : -1;
        const local = {
          scope: config.scope,
          key: config.key,
          index: rng.int(0, config.scope.size - 1),
          instance: rng.token(12),
        };
        c.handshake = new ClientHandshake(local, expect, () => rng.token());
        send(conn, c.handshake.hello());
        break;
      }
      case 'drip':
        send(conn, '{"t":"hel');
        c.until = now + rng.real(1000, 20_000);
        break;
      case 'reject':
        break;
      case 'bad-welcome':
        break;
    }
  };
  const act = (now: number): void => {
    if (targets.length > 0 && conns.size < MAX_FLOOD_CONNS) {
      const n = rng.int(1, 4);
      for (let i = 0; i < n; i++) {
        const conn = nextConn++;
        const p = rng.pick<ClientPlay>([
          'silent',
          'junk',
          'oversize',
          'flood',
          'bad-confirm',
          'wrong-index',
          'drip',
        ]);
        conns.set(conn, {
          role: 'client',
          play: p,
          decoder: new FrameDecoder(),
          until: now + rng.real(500, 15_000),
        });
        outputs.push({ type: 'connect', conn, address: rng.pick(targets), fromSelf: rng.chance(0.5) });
      }
    }
    if (rng.chance(0.2)) outputs.push({ type: 'query', id: nextQuery++, name: config.service });
  };
  return {
    get released() {
      return false;
    },
    start(now) {
      outputs.push({ type: 'query', id: nextQuery++, name: config.service });
      nextAct = now + rng.real(0, 200);
    },
    handle(now, input: Input) {
      if (stopped) return;
      switch (input.type) {
        case 'dns':
          if (input.result.status === 'ok') targets = input.result.addresses;
          break;
        case 'connected': {
          const c = conns.get(input.conn);
          if (c) play(now, input.conn, c);
          break;
        }
        case 'connect-failed':
        case 'closed':
          conns.delete(input.conn);
          break;
        case 'accepted': {
          if (conns.size >= MAX_FLOOD_CONNS) {
            outputs.push({ type: 'close', conn: input.conn, destroy: true });
            break;
          }
          const p = rng.pick<ServerPlay>(['silent', 'junk', 'reject', 'bad-welcome', 'oversize', 'flood']);
          conns.set(input.conn, {
            role: 'server',
            play: p,
            decoder: new FrameDecoder(),
            until: now + rng.real(500, 15_000),
          });
          break;
        }
        case 'data': {
          const c = conns.get(input.conn);
          if (!c) break;
          c.decoder.push(input.bytes);
          for (;;) {
            const d = c.decoder.next(1 << 20);
            if (d === undefined) break;
            if (!('frame' in d)) {
              hangUp(input.conn);
              break;
            }
            const f = d.frame;
            if (c.role === 'client' && c.handshake && f.t === 'welcome') {
              // Our proof cannot be right (wrong key): send a confirm with a made-up proof, then a flood.
              send(input.conn, { t: 'confirm', proof: rng.token(32) });
              if (rng.chance(0.5)) flood(input.conn);
              delete c.handshake;
            } else if (c.role === 'server' && f.t === 'hello') {
              if (c.play === 'reject')
                send(input.conn, {
                  t: 'reject',
                  reason: rng.pick(['mismatch', 'busy', 'protocol'] as const),
                });
              else if (c.play === 'bad-welcome') {
                const to = typeof f.to === 'number' && f.to >= 0 ? f.to : rng.int(0, config.scope.size - 1);
                send(input.conn, {
                  t: 'welcome',
                  from: to,
                  inst: rng.token(12),
                  nonce: rng.token(),
                  released: rng.chance(0.5),
                  proof: rng.token(32),
                });
              } else if (c.play !== 'silent') play(now, input.conn, c);
            }
            if (!conns.has(input.conn)) break;
          }
          break;
        }
        case 'tick':
          break;
      }
      if (now >= nextAct) {
        act(now);
        nextAct = now + rng.real(20, 300);
      }
      for (const [conn, c] of conns) if (now >= c.until) hangUp(conn);
    },
    poll() {
      return outputs.splice(0);
    },
    nextTimer() {
      if (stopped) return undefined;
      let t = nextAct;
      for (const c of conns.values()) t = Math.min(t, c.until);
      return t;
    },
    hint() {
      return undefined;
    },
    idle() {
      return false;
    },
    missing() {
      return [];
    },
    stop() {
      stopped = true;
      for (const conn of [...conns.keys()]) hangUp(conn);
    },
  };
}
