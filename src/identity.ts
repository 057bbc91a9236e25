/**
 * What a pod can learn about itself without the Kubernetes API: the names kubelet writes into
 * `/etc/hosts` and the search list and nameservers in `/etc/resolv.conf`. Pure parsers plus the
 * deterministic peer names built from them.
 */
import { isIP } from 'node:net';
import { canonicalIp } from './address.js';

/** The pod's own line in `/etc/hosts`, as kubelet writes it for a pod with `hostname` and `subdomain`. */
export interface HostsEntry {
  /** Pod IP on that line, in canonical text ({@link canonicalIp}). */
  address: string;
  /** `<svc>` from `<host>.<svc>.<ns>.svc.<domain>`, if the line has the long form. */
  subdomain?: string;
  namespace?: string;
  clusterDomain?: string;
}

/**
 * Finds the line of `hostname` in an `/etc/hosts` text. Prefers a line that carries the pod FQDN
 * `<hostname>.<svc>.<ns>.svc.<domain>` (kubelet writes it when the pod has a `subdomain`); otherwise the
 * first non-loopback line naming the short hostname. Returns `undefined` when the host is not there.
 */
export function parseHosts(text: string, hostname: string): HostsEntry | undefined {
  const host = hostname.toLowerCase();
  let short: HostsEntry | undefined;
  for (const raw of text.split('\n')) {
    const fields = raw.replace(/#.*/, '').trim().split(/\s+/);
    if (!fields[0] || fields.length < 2 || isIP(fields[0]) === 0) continue;
    const address = canonicalIp(fields[0]);
    for (const name of fields.slice(1).map((n) => n.toLowerCase().replace(/\.$/, ''))) {
      if (name === host) {
        if (!short && !isLoopback(address)) short = { address };
        continue;
      }
      if (!name.startsWith(`${host}.`)) continue;
      const labels = name.slice(host.length + 1).split('.');
      // <svc>.<ns>.svc.<domain...>
      if (labels.length >= 4 && labels[2] === 'svc' && labels.every((l) => l.length > 0)) {
        return {
          address,
          subdomain: labels[0]!,
          namespace: labels[1]!,
          clusterDomain: labels.slice(3).join('.'),
        };
      }
    }
  }
  return short;
}

/** `address` in canonical text. */
function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}

/** What kubepeers uses from `/etc/resolv.conf`. */
export interface ResolvConf {
  /** `nameserver` lines in order (IPv4 or IPv6 address, with its zone if any), in canonical text. */
  nameservers: string[];
  /** The last `search` (or `domain`) line's entries. */
  search: string[];
  /** `<ns>` and `<domain>` from the first `<ns>.svc.<domain>` search entry (ClusterFirst pods have it). */
  namespace?: string;
  clusterDomain?: string;
}

/** Parses an `/etc/resolv.conf` text the way glibc does for the parts kubepeers needs. */
export function parseResolvConf(text: string): ResolvConf {
  const nameservers: string[] = [];
  let search: string[] = [];
  for (const raw of text.split('\n')) {
    const fields = raw
      .replace(/[#;].*/, '')
      .trim()
      .split(/\s+/);
    const [key, ...rest] = fields;
    if (key === 'nameserver' && rest[0]) {
      // Allow a zone index on link-local IPv6 (fe80::1%eth0) but keep only well-formed addresses.
      const address = rest[0];
      if (isIP(address.replace(/%.*$/, '')) !== 0) nameservers.push(canonicalIp(address));
    } else if ((key === 'search' || key === 'domain') && rest.length > 0) {
      search = rest.map((d) => d.toLowerCase().replace(/\.$/, ''));
    }
  }
  const result: ResolvConf = { nameservers, search };
  for (const entry of search) {
    const m = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?)\.svc\.(.+)$/.exec(entry);
    if (m) {
      result.namespace = m[1]!;
      result.clusterDomain = m[3]!;
      break;
    }
  }
  return result;
}

/** The scope that makes the names of one Indexed Job run. */
export interface JobNames {
  jobName: string;
  subdomain: string;
  namespace: string;
  clusterDomain: string;
}

/** `<job>-<i>`: the pod hostname Kubernetes gives index `i`. */
export function peerHostname(names: JobNames, index: number): string {
  return `${names.jobName}-${index}`;
}

/** `<job>-<i>.<svc>.<ns>.svc.<domain>` without the trailing dot (what frameworks are given). */
export function peerFqdn(names: JobNames, index: number): string {
  return `${peerHostname(names, index)}.${names.subdomain}.${names.namespace}.svc.${names.clusterDomain}`;
}

/** `<svc>.<ns>.svc.<domain>`: the headless Service name whose A/AAAA set lists every ready pod. */
export function serviceFqdn(names: JobNames): string {
  return `${names.subdomain}.${names.namespace}.svc.${names.clusterDomain}`;
}

const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** RFC 1123 label, as Kubernetes requires for job names, services and namespaces. */
export function isDnsLabel(value: string): boolean {
  return value.length <= 63 && LABEL.test(value);
}

/** A lower-case DNS name of RFC 1123 labels, without a trailing dot. */
export function isDnsName(value: string): boolean {
  return value.length <= 253 && value.split('.').every(isDnsLabel);
}
