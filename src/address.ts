/**
 * One text per IP address. The same IPv6 address has many spellings (`fd00:0:0:1::a`, `fd00::1:0:0:0:a`,
 * `FD00:0000:0:1:0:0:0:A`): dns-packet, sockets, `/etc/hosts` and `/etc/resolv.conf` each write it their
 * own way, so addresses from different sources must be compared through {@link canonicalIp} or
 * {@link sameIp}, never as they come.
 */
import { isIP } from 'node:net';

/**
 * The canonical text of an IP address:
 * - IPv6 as RFC 5952 says: lower case, leading zeros of each group dropped, the longest run of two or
 *   more zero groups (the first of equally long runs) written `::`;
 * - an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, in any spelling) as the IPv4 address `a.b.c.d`, the
 *   way a dual-stack socket's peer is the IPv4 peer (a zone on it is dropped: IPv4 has none);
 * - a zone (`fe80::1%eth0`) kept as it is written after the `%`;
 * - IPv4 as its dotted quad (Node accepts no other spelling of IPv4, so it comes back as it is; with a
 *   zone it is not an address).
 *
 * Text that is not an IP address comes back unchanged.
 */
export function canonicalIp(ip: string): string {
  const percent = ip.indexOf('%');
  const bare = percent === -1 ? ip : ip.slice(0, percent);
  const zone = percent === -1 ? '' : ip.slice(percent);
  // A zone is any non-empty text (interface names may hold characters Node's isIP refuses), IPv6 only.
  if (isIP(bare) !== 6 || zone === '%') return ip;
  const groups = ipv6Groups(bare);
  if (groups === undefined) return ip;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi, lo] = [groups[6]!, groups[7]!];
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  // Longest run of zero groups, the first one on a tie; a single zero group is not compressed.
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  const text =
    best.length < 2
      ? hex.join(':')
      : `${hex.slice(0, best.start).join(':')}::${hex.slice(best.start + best.length).join(':')}`;
  return text + zone;
}

/**
 * Whether `a` and `b` are the same IP address, whatever their spelling. Zones are compared (as written:
 * `%2` and `%eth0` differ) only when both have one; an address without a zone matches the same address
 * with any zone. Text that is not an IP address is compared as it is.
 */
export function sameIp(a: string, b: string): boolean {
  const [ca, za] = splitZone(canonicalIp(a));
  const [cb, zb] = splitZone(canonicalIp(b));
  return ca === cb && (za === undefined || zb === undefined || za === zb);
}

function splitZone(ip: string): [string, string | undefined] {
  const percent = ip.indexOf('%');
  return percent === -1 ? [ip, undefined] : [ip.slice(0, percent), ip.slice(percent + 1)];
}

/** The eight 16-bit groups of an IPv6 address without zone (already accepted by `isIP`). */
function ipv6Groups(text: string): number[] | undefined {
  let body = text.toLowerCase();
  const tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    const octets = body
      .slice(lastColon + 1)
      .split('.')
      .map(Number);
    tail.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
    // Keep a trailing colon pair intact ("::1.2.3.4" -> "::"), drop a single separator ("::ffff:1.2.3.4").
    body = body.slice(0, lastColon + 1);
    if (!body.endsWith('::')) body = body.slice(0, -1);
  }
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const gap = body.indexOf('::');
  let groups: number[];
  if (gap === -1) {
    groups = [...parse(body), ...tail];
  } else {
    const head = parse(body.slice(0, gap));
    const rest = [...parse(body.slice(gap + 2)), ...tail];
    const zeros = 8 - head.length - rest.length;
    if (zeros < 1) return undefined;
    groups = [...head, ...new Array<number>(zeros).fill(0), ...rest];
  }
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : undefined;
}
