/**
 * A loopback DNS responder for resolver tests that can misbehave on purpose: it hands every query to a
 * handler that returns the datagrams (or TCP messages) to send back, possibly none, possibly garbage.
 */
import type { RemoteInfo } from 'node:dgram';
import * as packet from 'dns-packet';
import { listenDns } from '../../src/demo/dns-listener.js';

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
  close(): Promise<void>;
}

export async function startFakeDns(handler: Handler, address = '127.0.0.1'): Promise<FakeDns> {
  const queries: Query[] = [];
  const listener = await listenDns(address, 0, (message, transport, rinfo) => {
    let p: packet.DecodedPacket;
    try {
      p = packet.decode(message);
    } catch {
      return [];
    }
    const q = p.questions?.[0];
    const query: Query = { id: p.id ?? 0, name: q?.name ?? '', type: q?.type ?? '', transport, packet: p };
    if (rinfo) query.rinfo = rinfo;
    queries.push(query);
    return handler(query);
  });
  return { address, port: listener.port, queries, close: () => listener.close() };
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
