/**
 * What a pod can learn about itself without the Kubernetes API: the names kubelet writes into
 * `/etc/hosts` and the search list and nameservers in `/etc/resolv.conf`. Pure parsers plus the
 * deterministic peer names built from them.
 */
import { createHash } from 'node:crypto';
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

/**
 * One replicated job of a JobSet as the barrier counts it: `replicas` child Jobs named
 * `<jobset>-<name>-<jobIndex>`, each with `podsPerJob` pods (its parallelism = completions).
 */
export interface ReplicatedJobLayout {
  /** `spec.replicatedJobs[].name`. */
  name: string;
  /** `spec.replicatedJobs[].replicas`: child Jobs. */
  replicas: number;
  /** Pods per child Job (`template.spec.completions`, equal to its parallelism). */
  podsPerJob: number;
}

/** Where a global rank sits in a JobSet: `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`. */
export interface JobSetPosition {
  replicatedJob: string;
  /** The child Job's index in its replicated job (label `jobset.sigs.k8s.io/job-index`). */
  jobIndex: number;
  /** The pod's completion index in its child Job (`JOB_COMPLETION_INDEX`). */
  podIndex: number;
}

/**
 * The scope that makes the names of one run: an Indexed Job (`<job>-<i>`), or, with `replicatedJobs`, a
 * JobSet named `jobName` whose pods are `<jobName>-<replicatedJob>-<jobIndex>-<podIndex>`.
 */
export interface JobNames {
  /** The Indexed Job's name, or the JobSet's name when `replicatedJobs` is set. */
  jobName: string;
  subdomain: string;
  namespace: string;
  clusterDomain: string;
  /**
   * A JobSet's replicated jobs in the barrier, in the order of its spec: global rank `k` counts through
   * them in that order, then by job index, then by pod index. Default: none (an Indexed Job).
   */
  replicatedJobs?: readonly ReplicatedJobLayout[];
  /**
   * The JobSet's coordinator pod (`spec.coordinator`), as its place in the layout order: that pod takes
   * rank 0 (torch's `MASTER_ADDR` and JAX's coordinator must be rank 0's) and the pods before it move up
   * by one. Default: 0 (the first pod of the first replicated job, which is rank 0 anyway).
   */
  jobSetCoordinator?: number;
  /**
   * A LeaderWorkerSet group: rank 0 is the leader, whose hostname is `jobName` itself (`<lws>-<group>`),
   * and worker `i` is `<jobName>-<i>`. Default: false.
   */
  leaderWorkerSet?: boolean;
}

/** The place in the layout order of rank `index`, the JobSet's coordinator moved to the front. */
export function layoutPlace(names: Pick<JobNames, 'jobSetCoordinator'>, index: number): number {
  const c = names.jobSetCoordinator ?? 0;
  return index === 0 ? c : index <= c ? index - 1 : index;
}

/** The rank of the pod at `place` in the layout order: the inverse of {@link layoutPlace}. */
export function rankOfPlace(names: Pick<JobNames, 'jobSetCoordinator'>, place: number): number {
  const c = names.jobSetCoordinator ?? 0;
  return place === c ? 0 : place < c ? place + 1 : place;
}

/** Pods in the run: `replicas * podsPerJob` summed over the replicated jobs. */
export function layoutSize(layout: readonly ReplicatedJobLayout[]): number {
  return layout.reduce((n, r) => n + r.replicas * r.podsPerJob, 0);
}

/** The JobSet position of place `index` in the layout order (0 <= index < layoutSize(layout)). */
export function jobSetPosition(layout: readonly ReplicatedJobLayout[], index: number): JobSetPosition {
  let k = index;
  for (const r of layout) {
    const pods = r.replicas * r.podsPerJob;
    if (k < pods) {
      return { replicatedJob: r.name, jobIndex: Math.floor(k / r.podsPerJob), podIndex: k % r.podsPerJob };
    }
    k -= pods;
  }
  throw new RangeError(`rank ${index} is beyond the ${layoutSize(layout)} pods of the JobSet layout`);
}

/** The place in the layout order of a JobSet position, or `undefined` when the layout has no such pod. */
export function jobSetPlace(
  layout: readonly ReplicatedJobLayout[],
  position: JobSetPosition,
): number | undefined {
  let offset = 0;
  for (const r of layout) {
    if (r.name === position.replicatedJob) {
      const { jobIndex, podIndex } = position;
      if (jobIndex < 0 || jobIndex >= r.replicas || podIndex < 0 || podIndex >= r.podsPerJob)
        return undefined;
      return offset + jobIndex * r.podsPerJob + podIndex;
    }
    offset += r.replicas * r.podsPerJob;
  }
  return undefined;
}

/**
 * The pod hostname of rank `i`: `<job>-<i>`; in a JobSet `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`;
 * in a LeaderWorkerSet group `<lws>-<group>` for the leader and `<lws>-<group>-<i>` for workers.
 */
export function peerHostname(names: JobNames, index: number): string {
  if (names.leaderWorkerSet && index === 0) return names.jobName;
  if (names.replicatedJobs === undefined) return `${names.jobName}-${index}`;
  const p = jobSetPosition(names.replicatedJobs, layoutPlace(names, index));
  return `${names.jobName}-${p.replicatedJob}-${p.jobIndex}-${p.podIndex}`;
}

/** `<hostname>.<svc>.<ns>.svc.<domain>` without the trailing dot (what frameworks are given). */
export function peerFqdn(names: JobNames, index: number): string {
  return `${peerHostname(names, index)}.${names.subdomain}.${names.namespace}.svc.${names.clusterDomain}`;
}

/**
 * `<svc>.<ns>.svc.<domain>`: the headless Service name whose A/AAAA set lists every ready pod (with
 * `publishNotReadyAddresses`, as JobSet and LeaderWorkerSet create it, every pod that has an address).
 */
export function serviceFqdn(names: JobNames): string {
  return `${names.subdomain}.${names.namespace}.svc.${names.clusterDomain}`;
}

/**
 * Parses a downward API labels or annotations file (`key="value"` a line, the value quoted as Go's `%q`
 * writes it). Lines that are not of that form are skipped.
 */
export function parsePodInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([^=\s]+)=(".*")\s*$/.exec(line);
    if (!m) continue;
    let value: string;
    try {
      value = JSON.parse(m[2]!) as string;
    } catch {
      value = m[2]!.slice(1, -1);
    }
    out.set(m[1]!, value);
  }
  return out;
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

/**
 * The job name bound into the handshake: the Job's name, or for a JobSet its name with the layout and the
 * coordinator, so that pods that number the JobSet differently never pass as each other's peers (a long
 * layout is bound by its SHA-256, to keep the hello small).
 */
export function scopeJobName(
  config: Pick<JobNames, 'jobName' | 'replicatedJobs' | 'jobSetCoordinator'>,
): string {
  if (config.replicatedJobs === undefined) return config.jobName;
  const layout = config.replicatedJobs.map((r) => `${r.name}:${r.replicas}x${r.podsPerJob}`).join(',');
  const text = `${layout};c${config.jobSetCoordinator ?? 0}`;
  return `${config.jobName}/${text.length <= 160 ? text : `sha256:${createHash('sha256').update(text).digest('hex').slice(0, 32)}`}`;
}
