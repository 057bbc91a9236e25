/**
 * A small stub resolver on dns-packet, built for polling cluster DNS politely and telling failures apart.
 *
 * - Absolute names only: the name is sent as given, never walked through a search list.
 * - A fresh UDP socket (so a fresh OS-chosen source port) and a random 16-bit ID per query; a reply counts
 *   only if it comes from the server queried (the same address in whatever spelling, see
 *   {@link sameIp}), carries the ID and echoes the question. Malformed or mismatched datagrams are
 *   dropped and the wait goes on.
 * - TC set: the query is repeated over TCP to the same server. TC set on the TCP reply too (an answer over
 *   64 KiB): the query fails with reason `truncated`, since the addresses are not all there.
 * - Addresses come back in canonical text ({@link canonicalIp}), the text sockets give a peer's address.
 * - NXDOMAIN and NODATA are answers (with their negative TTL from the SOA, RFC 2308); SERVFAIL, REFUSED,
 *   FORMERR, NOTIMP and timeouts move on to the next nameserver. Servers rotate from query to query.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import { createRequire } from 'node:module';
import type * as packet from 'dns-packet';
import { canonicalIp, sameIp } from './address.js';
import { DnsError, formatHostPort, type DnsFailureReason } from './errors.js';
import type { Nameserver } from './options.js';

// dns-packet is CommonJS. Through require it loads in ~2 ms; imported as ESM, Node's CommonJS interop
// (parsing it for named exports) costs ~30 ms of CPU at every start of the CLI.
const codec = createRequire(import.meta.url)('dns-packet') as typeof packet;

/** Record types the resolver asks for. */
export type AddressType = 'A' | 'AAAA';

/** A usable answer: addresses, or a negative answer with how long it may be cached. */
export type DnsAnswer =
  | { status: 'ok'; addresses: string[]; ttl: number; server: string }
  | { status: 'nxdomain' | 'nodata'; negativeTtl: number; server: string };

/** Options of {@link StubResolver}. */
export interface ResolverOptions {
  /** Servers to query, rotated from query to query. */
  nameservers: readonly Nameserver[];
  /** Timeout of one attempt. Default: 1000 ms. */
  timeoutMs?: number;
  /** Attempts per query, each on the next server. Default: 3. */
  attempts?: number;
}

/** Counters of what the resolver sent, for benchmarks and tests. */
export interface ResolverStats {
  udpQueries: number;
  tcpQueries: number;
  byType: Record<AddressType, number>;
}

const RCODE_FAILURES: Record<number, DnsFailureReason> = {
  1: 'formerr',
  2: 'servfail',
  4: 'notimp',
  5: 'refused',
};
const EDNS_PAYLOAD = 1232;

class AttemptFailure extends Error {
  constructor(
    /** `udp-truncated`: TC on a UDP reply, for the caller to ask again over TCP. */
    readonly reason: DnsFailureReason | 'udp-truncated',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** See the module comment. One instance per barrier; it holds no socket between queries. */
export class StubResolver {
  readonly stats: ResolverStats = { udpQueries: 0, tcpQueries: 0, byType: { A: 0, AAAA: 0 } };
  private readonly servers: readonly Nameserver[];
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private rotation = 0;

  constructor(options: ResolverOptions) {
    if (options.nameservers.length === 0) throw new TypeError('StubResolver needs at least one nameserver');
    // Canonical text: labels in answers and errors read the same whatever the configured spelling.
    this.servers = options.nameservers.map((s) => ({ ...s, address: canonicalIp(s.address) }));
    this.timeoutMs = options.timeoutMs ?? 1000;
    this.attempts = options.attempts ?? 3;
  }

  /**
   * Asks for `type` records of the absolute name `hostname` (a trailing dot is optional and implied).
   * Resolves with an answer, including NXDOMAIN/NODATA; rejects with a {@link DnsError} only when no
   * server gave a usable answer within the attempts, or with the signal's reason when aborted.
   */
  async query(
    hostname: string,
    type: AddressType,
    options: { signal?: AbortSignal } = {},
  ): Promise<DnsAnswer> {
    const name = hostname.replace(/\.$/, '').toLowerCase();
    const start = this.rotation++ % this.servers.length;
    const tried: string[] = [];
    let last: AttemptFailure | undefined;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      options.signal?.throwIfAborted();
      const server = this.servers[(start + attempt) % this.servers.length]!;
      const label = formatHostPort(server.address, server.port);
      if (!tried.includes(label)) tried.push(label);
      try {
        let reply: packet.DecodedPacket;
        try {
          reply = await this.exchange('udp', server, name, type, options.signal);
        } catch (err) {
          if (!(err instanceof AttemptFailure) || err.reason !== 'udp-truncated') throw err;
          reply = await this.exchange('tcp', server, name, type, options.signal);
        }
        return interpret(reply, name, type, label);
      } catch (err) {
        if (!(err instanceof AttemptFailure)) throw err;
        last = err;
        // Too big for any DNS message: another server holds the same records, so asking it is no use.
        if (err.reason === 'truncated') break;
      }
    }
    const reason = last?.reason === 'udp-truncated' || last === undefined ? 'network' : last.reason;
    throw new DnsError(reason, `${name}.`, type, tried, last?.message ?? 'no attempt made', { cause: last });
  }

  private exchange(
    transport: 'udp' | 'tcp',
    server: Nameserver,
    name: string,
    type: AddressType,
    signal: AbortSignal | undefined,
  ): Promise<packet.DecodedPacket> {
    const id = randomInt(0, 65536);
    const query: packet.Packet = {
      type: 'query',
      id,
      flags: codec.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_PAYLOAD } as packet.Answer],
    };
    this.stats.byType[type]++;
    const label = formatHostPort(server.address, server.port);
    const accept = (buf: Buffer): packet.DecodedPacket | undefined => {
      let reply: packet.DecodedPacket;
      try {
        reply = codec.decode(buf);
      } catch {
        return undefined; // malformed: drop
      }
      const q = reply.questions?.[0];
      if (
        !reply.flag_qr ||
        reply.id !== id ||
        reply.questions?.length !== 1 ||
        q?.type !== type ||
        (q.class ?? 'IN') !== 'IN' ||
        q.name.toLowerCase().replace(/\.$/, '') !== name
      ) {
        return undefined; // not the answer to our question: drop
      }
      return reply;
    };

    return new Promise<packet.DecodedPacket>((resolve, reject) => {
      let cleanup = (): void => {};
      const finish = (err: Error | undefined, reply?: packet.DecodedPacket): void => {
        cleanup();
        cleanup = () => {};
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(reply!);
      };
      const onAbort = (): void => finish(signal!.reason as Error);
      const timer = setTimeout(
        () =>
          finish(
            new AttemptFailure(
              'timeout',
              `no ${transport.toUpperCase()} reply from ${label} in ${this.timeoutMs} ms`,
            ),
          ),
        this.timeoutMs,
      );
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });

      if (transport === 'udp') {
        this.stats.udpQueries++;
        const socket = createSocket(isIP(server.address) === 6 ? 'udp6' : 'udp4');
        cleanup = () => socket.close();
        socket.on('error', (err) =>
          finish(
            new AttemptFailure(
              'network',
              `UDP to ${label}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
              { cause: err },
            ),
          ),
        );
        socket.on('message', (buf, rinfo) => {
          // Compared as addresses, not as text: the server may be configured as 0:0:0:0:0:0:0:1 or ::0001
          // while the socket says ::1. The zone is left out: Node names it (fe80::1%eth0) where
          // resolv.conf may give a number (fe80::1%2), and the socket only hears its own link's replies to
          // a link-local destination anyway.
          if (rinfo.port !== server.port || !sameIp(rinfo.address.replace(/%.*$/, ''), server.address))
            return;
          const reply = accept(buf);
          if (!reply) return;
          if (reply.flag_tc) finish(new AttemptFailure('udp-truncated', `truncated reply from ${label}`));
          else finish(undefined, reply);
        });
        socket.send(codec.encode(query), server.port, server.address);
      } else {
        this.stats.tcpQueries++;
        const socket = connect({ host: server.address, port: server.port });
        cleanup = () => socket.destroy();
        let buffered = Buffer.alloc(0);
        socket.on('error', (err) =>
          finish(
            new AttemptFailure(
              'network',
              `TCP to ${label}: ${(err as NodeJS.ErrnoException).code ?? err.message}`,
              { cause: err },
            ),
          ),
        );
        socket.on('connect', () => socket.write(codec.streamEncode(query)));
        socket.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (buffered.length < 2) return;
          const length = buffered.readUInt16BE(0);
          if (buffered.length < 2 + length) return;
          const reply = accept(buffered.subarray(2, 2 + length));
          if (!reply)
            finish(new AttemptFailure('network', `malformed or mismatched TCP reply from ${label}`));
          else if (reply.flag_tc) {
            finish(
              new AttemptFailure(
                'truncated',
                `the answer from ${label} did not fit even over TCP (TC set on the TCP reply: over the 64 KiB of a DNS message)`,
              ),
            );
          } else finish(undefined, reply);
        });
        socket.on('end', () =>
          finish(new AttemptFailure('network', `TCP connection closed by ${label} before a reply`)),
        );
      }
    });
  }
}

/** Turns a matched reply into an answer, or throws the attempt failure for server-side errors. */
function interpret(reply: packet.DecodedPacket, name: string, type: AddressType, server: string): DnsAnswer {
  const rcode = (reply.flags ?? 0) & 0xf;
  if (rcode === 3) return { status: 'nxdomain', negativeTtl: negativeTtl(reply), server };
  if (rcode !== 0) {
    const reason = RCODE_FAILURES[rcode] ?? 'servfail';
    throw new AttemptFailure(reason, `rcode ${reason.toUpperCase()} from ${server}`);
  }
  // Follow a CNAME chain inside the answer section (bounded), collecting records of the asked type.
  let target = name;
  const addresses: string[] = [];
  const seen = new Set<string>();
  let ttl = Number.POSITIVE_INFINITY;
  for (let hops = 0; hops < 8; hops++) {
    let next: string | undefined;
    for (const rr of reply.answers ?? []) {
      const owner = rr.name.toLowerCase().replace(/\.$/, '');
      if (owner !== target) continue;
      if (rr.type === type && typeof rr.data === 'string' && isIP(rr.data) === (type === 'A' ? 4 : 6)) {
        // dns-packet writes fd00:0:0:1::a as fd00::1:0:0:0:a: return the text a socket would show.
        const address = canonicalIp(rr.data);
        if (!seen.has(address)) {
          seen.add(address);
          addresses.push(address);
        }
        ttl = Math.min(ttl, rr.ttl ?? 0);
      } else if (rr.type === 'CNAME' && typeof rr.data === 'string') {
        next = rr.data.toLowerCase().replace(/\.$/, '');
        ttl = Math.min(ttl, rr.ttl ?? 0);
      }
    }
    if (addresses.length > 0 || next === undefined) break;
    target = next;
  }
  if (addresses.length === 0) return { status: 'nodata', negativeTtl: negativeTtl(reply), server };
  return { status: 'ok', addresses, ttl: Number.isFinite(ttl) ? ttl : 0, server };
}

/** RFC 2308: a negative answer may be cached for min(SOA TTL, SOA minimum); 0 when there is no SOA. */
function negativeTtl(reply: packet.DecodedPacket): number {
  for (const rr of reply.authorities ?? []) {
    if (rr.type === 'SOA' && typeof rr.data === 'object' && rr.data !== null && 'minimum' in rr.data) {
      return Math.min(rr.ttl ?? 0, (rr.data as { minimum: number }).minimum);
    }
  }
  return 0;
}
