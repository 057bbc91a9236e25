/**
 * A small authoritative DNS server on dns-packet, for the demo and the scale simulation: serves one zone
 * over UDP and TCP from records that can be added and removed at run time, answers NXDOMAIN/NODATA with
 * the SOA (so negative TTLs work as in CoreDNS), sets TC when a UDP answer does not fit, and counts the
 * queries it gets. Not part of the library API.
 */
import * as packet from 'dns-packet';
import { listenDns, type DnsListener } from './dns-listener.js';

export interface EmbeddedDnsOptions {
  /** Listen address. Default: 127.0.0.1. */
  address?: string;
  /** Port, 0 for one chosen by the OS (UDP and TCP share it). Default: 0. */
  port?: number;
  /** Zone served. Default: cluster.local. */
  zone?: string;
  /** TTL of records. Default: 5 (as CoreDNS). */
  ttl?: number;
  /** SOA minimum, the negative TTL. Default: 5 (as CoreDNS). */
  soaMinimum?: number;
}

/** Queries received, by type and transport. */
export interface EmbeddedDnsCounters {
  byType: Record<string, number>;
  udp: number;
  tcp: number;
  total: number;
}

export class EmbeddedDns {
  readonly counters: EmbeddedDnsCounters = { byType: {}, udp: 0, tcp: 0, total: 0 };
  private readonly records = new Map<string, Map<string, Set<string>>>();
  private readonly zone: string;
  private readonly ttl: number;
  private readonly soaMinimum: number;
  private listener: DnsListener | undefined;
  address = '';
  port = 0;

  constructor(options: EmbeddedDnsOptions = {}) {
    this.zone = (options.zone ?? 'cluster.local').toLowerCase();
    this.ttl = options.ttl ?? 5;
    this.soaMinimum = options.soaMinimum ?? 5;
    this.address = options.address ?? '127.0.0.1';
    this.port = options.port ?? 0;
  }

  /** Binds UDP and TCP on the same port. */
  async start(): Promise<void> {
    this.listener = await listenDns(this.address, this.port, (message, transport) => {
      const reply = this.answer(message, transport);
      return reply ? [reply] : [];
    });
    this.port = this.listener.port;
  }

  async stop(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    await listener?.close();
  }

  /** Adds an address record (`A` or `AAAA`) to `name` (absolute, trailing dot optional). */
  add(name: string, type: 'A' | 'AAAA', address: string): void {
    const key = name.toLowerCase().replace(/\.$/, '');
    let byType = this.records.get(key);
    if (!byType) this.records.set(key, (byType = new Map()));
    let set = byType.get(type);
    if (!set) byType.set(type, (set = new Set()));
    set.add(address);
  }

  /** Removes one address record; the name disappears with its last record. */
  remove(name: string, type: 'A' | 'AAAA', address: string): void {
    const key = name.toLowerCase().replace(/\.$/, '');
    const byType = this.records.get(key);
    byType?.get(type)?.delete(address);
    if (byType?.get(type)?.size === 0) byType.delete(type);
    if (byType?.size === 0) this.records.delete(key);
  }

  private soa(): packet.Answer {
    return {
      type: 'SOA',
      name: this.zone,
      ttl: this.soaMinimum,
      data: {
        mname: `ns.dns.${this.zone}`,
        rname: `hostmaster.${this.zone}`,
        serial: 1,
        refresh: 7200,
        retry: 1800,
        expire: 86400,
        minimum: this.soaMinimum,
      },
    };
  }

  /** Builds the reply to one query message, or undefined to stay silent (garbage in). */
  private answer(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    let query: packet.DecodedPacket;
    try {
      query = packet.decode(msg);
    } catch {
      return undefined;
    }
    const q = query.questions?.[0];
    if (query.type !== 'query' || !q || query.questions?.length !== 1) return undefined;
    this.counters.total++;
    this.counters[transport]++;
    this.counters.byType[q.type] = (this.counters.byType[q.type] ?? 0) + 1;
    const name = q.name.toLowerCase().replace(/\.$/, '');
    const base: packet.Packet = {
      type: 'response',
      id: query.id ?? 0,
      flags: packet.AUTHORITATIVE_ANSWER | ((query.flags ?? 0) & packet.RECURSION_DESIRED),
      questions: [q],
    };
    const opt = query.additionals?.find((r) => r.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const withOpt = (p: packet.Packet): packet.Packet =>
      opt ? { ...p, additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as packet.Answer] } : p;
    if (name !== this.zone && !name.endsWith(`.${this.zone}`)) {
      return packet.encode(withOpt({ ...base, flags: (base.flags ?? 0) | 5 })); // REFUSED
    }
    const byType = this.records.get(name);
    const set = byType?.get(q.type);
    if (set && set.size > 0 && (q.type === 'A' || q.type === 'AAAA')) {
      const full = withCompressedAnswers(packet.encode(withOpt(base)), q.type, [...set], this.ttl);
      const limit = Math.max(512, opt?.udpPayloadSize ?? 512);
      if (transport === 'udp' && full.length > limit) {
        return packet.encode(withOpt({ ...base, flags: (base.flags ?? 0) | packet.TRUNCATED_RESPONSE }));
      }
      return full;
    }
    // The zone apex and empty non-terminals exist (NODATA); anything else is NXDOMAIN.
    const exists =
      name === this.zone ||
      byType !== undefined ||
      [...this.records.keys()].some((k) => k.endsWith(`.${name}`));
    return packet.encode(
      withOpt({ ...base, flags: (base.flags ?? 0) | (exists ? 0 : 3), authorities: [this.soa()] }),
    );
  }
}

/**
 * Inserts A/AAAA answers for the question name into an encoded reply (header, question, optional OPT),
 * each owner name a compression pointer to the question (offset 12), as real servers do; dns-packet
 * itself does not compress, which would make answers of a big Service needlessly large.
 */
function withCompressedAnswers(reply: Buffer, type: 'A' | 'AAAA', addresses: string[], ttl: number): Buffer {
  let offset = 12;
  while (reply[offset] !== 0) offset += 1 + reply[offset]!;
  offset += 5; // root label, QTYPE, QCLASS
  const rrs = addresses.map((address) => {
    const rdata = type === 'A' ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
    const rr = Buffer.alloc(12 + rdata.length);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(type === 'A' ? 1 : 28, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(rdata.length, 10);
    rdata.copy(rr, 12);
    return rr;
  });
  const out = Buffer.concat([reply.subarray(0, offset), ...rrs, reply.subarray(offset)]);
  out.writeUInt16BE(addresses.length, 6); // ANCOUNT
  return out;
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]));
}
