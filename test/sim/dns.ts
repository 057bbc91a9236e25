/**
 * The simulated cluster DNS: an authoritative view (what CoreDNS's kubernetes plugin serves from the
 * EndpointSlices it watches) and caches in front of it (CoreDNS `cache`, NodeLocal DNSCache). Pure data
 * structures driven by the simulator's clock; the delays, losses and duplicates live in sim.ts.
 */
import type { DnsResult } from '../../src/core/types.js';

/** Largest DNS message over TCP: a Service answer that needs more comes back truncated even there. */
export const MAX_DNS_MESSAGE = 65_535;

/** Size of the answer listing `count` addresses of `family` for `name` (header, question, one RR each). */
export function answerBytes(name: string, count: number, family: 4 | 6): number {
  // Header 12; question: the name (labels with length bytes, ~ its text length + 1) + type + class;
  // each record: a 2-byte compression pointer, type, class, TTL, RDLENGTH and the address.
  return 12 + name.length + 1 + 4 + count * (2 + 2 + 2 + 4 + 2 + (family === 4 ? 4 : 16));
}

export interface AuthorityOptions {
  /** TTL of positive answers (kubernetes plugin `ttl`, 5 s by default). */
  ttlMs: number;
  /** SOA minimum of negative answers (the same `ttl` in CoreDNS). */
  negTtlMs: number;
  family: 4 | 6;
  /** What a Service with no address answers. */
  emptyService: 'nxdomain' | 'nodata';
}

/**
 * The authoritative records: each name's addresses, in the order they were added. The Service name is a
 * name like any other here (its addresses are every listed pod's).
 */
export class Authority {
  private readonly records = new Map<string, string[]>();
  /** First time each (name, address) was served: `${name} ${address}` → ms. */
  readonly firstServed = new Map<string, number>();

  constructor(
    readonly options: AuthorityOptions,
    private readonly service: string,
  ) {}

  add(now: number, name: string, address: string): void {
    let list = this.records.get(name);
    if (list === undefined) this.records.set(name, (list = []));
    if (!list.includes(address)) list.push(address);
    const key = `${name} ${address}`;
    if (!this.firstServed.has(key)) this.firstServed.set(key, now);
  }

  remove(name: string, address: string): void {
    const list = this.records.get(name);
    if (list === undefined) return;
    const at = list.indexOf(address);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.records.delete(name);
  }

  has(name: string, address: string): boolean {
    return this.records.get(name)?.includes(address) ?? false;
  }

  addresses(name: string): readonly string[] {
    return this.records.get(name) ?? [];
  }

  /** Whether `address` was ever served for `name` at or before `at`. */
  servedBy(name: string, address: string, at: number): boolean {
    const first = this.firstServed.get(`${name} ${address}`);
    return first !== undefined && first <= at;
  }

  /** The answer at this moment; `shuffle` reorders the records as servers do. */
  answer(name: string, shuffle: (list: string[]) => string[]): DnsResult {
    const { ttlMs, negTtlMs, family } = this.options;
    const list = this.records.get(name);
    if (list === undefined || list.length === 0) {
      if (name === this.service && this.options.emptyService === 'nodata')
        return { status: 'nodata', ttlMs: negTtlMs, detail: 'no records' };
      return { status: 'nxdomain', ttlMs: negTtlMs, detail: 'no such name' };
    }
    if (answerBytes(name, list.length, family) > MAX_DNS_MESSAGE)
      return {
        status: 'error',
        detail: `answer of ${list.length} records truncated over TCP`,
        truncated: true,
      };
    return { status: 'ok', addresses: shuffle([...list]), ttlMs };
  }
}

export interface CacheOptions {
  /** Longest time a positive answer is kept (`cache N` / `success CAP N`). */
  positiveCapMs: number;
  /** Longest time a negative answer is kept (`denial CAP N`). */
  negativeCapMs: number;
  /** Shortest time an answer is kept (CoreDNS cache MINTTL, 5 s by default; 0 to follow the TTL). */
  minTtlMs: number;
}

interface CacheEntry {
  result: DnsResult;
  storedAt: number;
  expires: number;
}

/** One caching resolver (a CoreDNS replica's cache, or a node's NodeLocal DNSCache). */
export class DnsCache {
  private readonly entries = new Map<string, CacheEntry>();
  hits = 0;
  misses = 0;

  constructor(readonly options: CacheOptions) {}

  /** The cached answer with its remaining TTL, or what `upstream` answers now (stored when cacheable). */
  lookup(now: number, name: string, upstream: () => DnsResult): DnsResult {
    const hit = this.entries.get(name);
    if (hit !== undefined && hit.expires > now) {
      this.hits++;
      return withTtl(hit.result, hit.expires - now);
    }
    this.misses++;
    const result = upstream();
    if (result.status === 'error') return result; // SERVFAIL, timeouts and truncation are not cached
    const { positiveCapMs, negativeCapMs, minTtlMs } = this.options;
    const cap = result.status === 'ok' ? positiveCapMs : negativeCapMs;
    const keep = Math.max(minTtlMs, Math.min(result.ttlMs, cap));
    if (keep > 0) this.entries.set(name, { result, storedAt: now, expires: now + keep });
    return withTtl(result, Math.min(result.ttlMs, keep));
  }

  /** Longest time any answer can be served from here after the records changed. */
  get staleness(): number {
    const { positiveCapMs, negativeCapMs, minTtlMs } = this.options;
    return Math.max(positiveCapMs, negativeCapMs, minTtlMs);
  }
}

function withTtl(result: DnsResult, ttlMs: number): DnsResult {
  if (result.status === 'error') return result;
  if (result.status === 'ok') return { status: 'ok', addresses: [...result.addresses], ttlMs };
  return { status: result.status, ttlMs, detail: result.detail };
}
