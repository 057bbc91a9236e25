/**
 * A loopback DNS responder for resolver tests that can misbehave on purpose: it hands every query to a
 * handler that returns the datagrams (or TCP messages) to send back, possibly none, possibly garbage.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import * as packet from 'dns-packet';

export interface Query {
  id: number;
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
  rinfo?: RemoteInfo;
  packet: packet.DecodedPacket;
}

/** Returns the buffers to send back, in order; [] means silence. */
export type Handler = (q: Query) => Buffer[] | Promise<Buffer[]>;

export interface FakeDns {
  address: string;
  port: number;
  queries: Query[];
  udp: UdpSocket;
  close(): Promise<void>;
}

export async function startFakeDns(handler: Handler, address = '127.0.0.1'): Promise<FakeDns> {
  for (let tries = 0; tries < 20; tries++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, address, resolve));
    const port = udp.address().port;
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, address, () => resolve(true));
    });
    if (!ok) {
      udp.close();
      continue;
    }
    return wire(udp, tcp, address, port, handler);
  }
  throw new Error('could not bind UDP and TCP on one port');
}

function wire(udp: UdpSocket, tcp: Server, address: string, port: number, handler: Handler): FakeDns {
  const queries: Query[] = [];
  const sockets = new Set<import('node:net').Socket>();
  udp.on('message', (buf, rinfo) => {
    let p: packet.DecodedPacket;
    try {
      p = packet.decode(buf);
    } catch {
      return;
    }
    const q = p.questions?.[0];
    const query: Query = {
      id: p.id ?? 0,
      name: q?.name ?? '',
      type: q?.type ?? '',
      transport: 'udp',
      rinfo,
      packet: p,
    };
    queries.push(query);
    void Promise.resolve(handler(query)).then((bufs) => {
      for (const b of bufs) udp.send(b, rinfo.port, rinfo.address);
    });
  });
  tcp.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const len = buffered.readUInt16BE(0);
        const body = buffered.subarray(2, 2 + len);
        buffered = buffered.subarray(2 + len);
        const p = packet.decode(body);
        const q = p.questions?.[0];
        const query: Query = {
          id: p.id ?? 0,
          name: q?.name ?? '',
          type: q?.type ?? '',
          transport: 'tcp',
          packet: p,
        };
        queries.push(query);
        void Promise.resolve(handler(query)).then((bufs) => {
          for (const b of bufs) {
            const framed = Buffer.alloc(2 + b.length);
            framed.writeUInt16BE(b.length, 0);
            b.copy(framed, 2);
            socket.write(framed);
          }
        });
      }
    });
  });
  return {
    address,
    port,
    queries,
    udp,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        udp.close(() => tcp.close(() => resolve()));
      }),
  };
}

/** Builds a reply to `q` with the given sections and rcode (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED). */
export function reply(
  q: Query,
  init: {
    answers?: packet.Answer[];
    authorities?: packet.Answer[];
    rcode?: number;
    tc?: boolean;
    id?: number;
    name?: string;
    type?: string;
  } = {},
): Buffer {
  const flags = (init.rcode ?? 0) | (init.tc ? packet.TRUNCATED_RESPONSE : 0) | packet.RECURSION_DESIRED;
  return packet.encode({
    type: 'response',
    id: init.id ?? q.id,
    flags,
    questions: [{ name: init.name ?? q.name, type: (init.type ?? q.type) as packet.RecordType, class: 'IN' }],
    answers: init.answers ?? [],
    authorities: init.authorities ?? [],
  });
}

export const a = (name: string, ip: string, ttl = 5): packet.Answer => ({ type: 'A', name, ttl, data: ip });
export const aaaa = (name: string, ip: string, ttl = 5): packet.Answer => ({
  type: 'AAAA',
  name,
  ttl,
  data: ip,
});
export const soa = (zone: string, ttl: number, minimum: number): packet.Answer => ({
  type: 'SOA',
  name: zone,
  ttl,
  data: {
    mname: `ns.${zone}`,
    rname: `hostmaster.${zone}`,
    serial: 1,
    refresh: 3600,
    retry: 600,
    expire: 86400,
    minimum,
  },
});
