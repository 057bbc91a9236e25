/**
 * The options of {@link waitForPeers}, their defaults (filled in here and nowhere else) and their
 * validation. Everything is checked before any network I/O; a bad value raises a {@link ConfigError}
 * naming the value, where it came from and what was expected.
 */
import {
  AUTO_MESH_MAX_SIZE,
  DEFAULT_LABELS_PATH,
  defaultPollMs,
  DEFAULTS,
  ENV,
  JOBSET_LABELS,
} from './settings.js';
import type { BarrierMetrics } from './status.js';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { ConfigError } from './errors.js';
import {
  isDnsLabel,
  isDnsName,
  peerHostname,
  parseHosts,
  parsePodInfo,
  parseResolvConf,
  type JobNames,
  type ReplicatedJobLayout,
  type HostsEntry,
  type ResolvConf,
} from './identity.js';

import { lwsEnv, resolveJobSet, trainerEnv } from './family.js';
import { integer, label, MAX_SIZE, pick, type Sourced } from './sources.js';

export { AUTO_MESH_MAX_SIZE, defaultPollMs, ENV } from './settings.js';

/** Default TCP port of the kubepeers responder (17293). Not used by torch (29400, 29500), Ray (6379), MPI/ssh (22, 2222) or PaddlePaddle (55527). */
export const DEFAULT_PORT = DEFAULTS.port;

/** How the pods check each other. See docs/protocol.md. */
export type Topology = 'mesh' | 'star';

/** Progress of the barrier, reported on every change. */
export interface Progress {
  /**
   * Pods this pod checks that passed: on the coordinator, members verified and done; on a mesh member,
   * the members it verified; on a star member, the coordinator (0 or 1).
   */
  ready: number;
  /** Number of pods this pod checks: `size - 1`, or 1 on a star member. */
  total: number;
  /** Indices still missing, ascending. */
  missing: number[];
  /** Milliseconds since `waitForPeers` was called. */
  elapsedMs: number;
  /**
   * Set on the first report only, when neither `runId` nor `secret` is set: any pod that knows the job's
   * public names (namespace, Service, job, size) can pass as a member, and a pod of an earlier run of a
   * Job with the same name is not told apart. See docs/protocol.md, "What the handshake proves".
   */
  warning?: string;
}

/** Options of {@link waitForPeers}. Every option is optional where Kubernetes or the environment can supply it. */
export interface WaitForPeersOptions {
  /**
   * This pod's completion index (in a JobSet: in its child Job). Default: env `JOB_COMPLETION_INDEX`, else
   * the `batch.kubernetes.io/job-completion-index` label of the labels file, else env `PET_NODE_RANK`.
   */
  index?: number;
  /**
   * Number of pods in the job (`completions`). Default: env `KUBEPEERS_SIZE`. Required one way or the
   * other for an Indexed Job (else env `PET_NNODES`): Kubernetes does not tell a pod. In a JobSet it is
   * the layout's total and need not be set (when set, it must agree).
   *
   * Kubeflow Trainer v2: when env `PET_NNODES`, `PET_NODE_RANK` and `PET_MASTER_ADDR` are all set (its
   * torch runtime sets them), they are taken as size, rank and coordinator, and a size, rank or rank-0
   * pod that kubepeers works out otherwise and that differs is refused, naming both values.
   */
  size?: number;
  /**
   * The JobSet's name; setting it (or `replicatedJobs` or `podsPerJob`) makes this a JobSet pod, whose
   * peers are `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`. Default: env `KUBEPEERS_JOBSET_NAME`,
   * else the `jobset.sigs.k8s.io/jobset-name` label of the labels file, else from the hostname (the name
   * before `-<replicatedJob>-<jobIndex>-<podIndex>`, or the subdomain, which JobSet defaults to its name).
   */
  jobSetName?: string;
  /**
   * The JobSet's replicated jobs in the barrier, in the order of its spec: `name:REPLICASxPODS`
   * comma-separated (`driver:1x1,workers:2x4`; `xPODS` may be left out when `podsPerJob` gives it), or a
   * list. Global ranks count through them in this order, then by job index, then by pod index. Default:
   * env `KUBEPEERS_REPLICATED_JOBS`, else this pod's replicated job alone, with its replicas from the
   * labels file and `podsPerJob` pods each (refused when the labels say the JobSet has more child Jobs).
   */
  replicatedJobs?: string | readonly ReplicatedJobLayout[];
  /**
   * Pods per child Job (the replicated job's `completions`), for replicated jobs whose entry in
   * `replicatedJobs` does not say, or for this pod's when `replicatedJobs` is not set. Default: env
   * `KUBEPEERS_PODS_PER_JOB`, else (this pod's replicated job alone) `size` divided by its replicas, else
   * none: Kubernetes does not tell a pod.
   */
  podsPerJob?: number;
  /**
   * A downward API file of the pod's labels (`volumes[].downwardAPI.items[].fieldRef.fieldPath:
   * metadata.labels`); read when it exists, for the JobSet labels. Default: env `KUBEPEERS_LABELS_FILE`,
   * else `/etc/podinfo/labels`.
   */
  labelsPath?: string;
  /** Job name. Default: env `KUBEPEERS_JOB_NAME`, else derived from the hostname `<job>-<index>`. */
  jobName?: string;
  /** Headless Service name (the pod's `subdomain`). Default: env `KUBEPEERS_SUBDOMAIN`, else from the pod FQDN in `/etc/hosts`. */
  subdomain?: string;
  /** Namespace. Default: env `KUBEPEERS_NAMESPACE`, else `/etc/hosts`, else the `/etc/resolv.conf` search list. */
  namespace?: string;
  /** Cluster domain. Default: env `KUBEPEERS_CLUSTER_DOMAIN`, else `/etc/hosts`, else `/etc/resolv.conf`, else `cluster.local`. */
  clusterDomain?: string;
  /** Pod hostname. Default: `os.hostname()`. */
  hostname?: string;
  /**
   * Identifier shared by all pods of this run and no other, mixed into the handshake so that pods of a
   * re-created Job of the same name never pass as peers. Default: env `KUBEPEERS_RUN_ID`, else empty.
   * Set it from the downward API: `metadata.labels['batch.kubernetes.io/controller-uid']`. In a JobSet
   * whose labels file is mounted the default is `<jobset-uid>/<restart-attempt>` from its labels.
   */
  runId?: string;
  /**
   * Shared secret keying the handshake MAC. Without it the handshake proves job, namespace, run and
   * index against honest mistakes (stale or reused IPs, other jobs), not against a malicious pod that
   * knows those values. Default: env `KUBEPEERS_SECRET`, else none.
   */
  secret?: string;
  /** TCP port of the responder on every pod. Default: env `KUBEPEERS_PORT`, else {@link DEFAULT_PORT} (17293). */
  port?: number;
  /** Address the responder listens on. Default: the pod IP from `/etc/hosts`, else `0.0.0.0`. */
  listenAddress?: string;
  /** Nameservers (`addr`, `addr:port`, `[v6]:port`). Default: `nameserver` lines of `/etc/resolv.conf`. */
  nameservers?: string[];
  /** Address families to resolve. Default: `6` when the pod IP is IPv6, else `4`. `dual` queries both A and AAAA. */
  family?: 4 | 6 | 'dual';
  /** Give up after this long and reject with a `TimeoutError`. Default: env `KUBEPEERS_TIMEOUT` (a duration: `600000`, `90s`, `10m`), else 600000 (10 min). */
  timeoutMs?: number;
  /**
   * Mean interval between two polls of the Service name by the coordinator (index 0), jittered ±1/3,
   * while a member is missing; no other pod polls. Default: `size / 5` ms within [10, 2000] (about 80 KB
   * of answers a second whatever the size; a pod that turns Ready is seen within half of it on average).
   */
  pollIntervalMs?: number;
  /** First retry delay for a peer whose name or address failed (exponential, jittered). Default: 250. */
  retryMinDelayMs?: number;
  /** Cap of the retry delay, also the cap on honouring DNS negative TTLs. Default: 10000. */
  retryMaxDelayMs?: number;
  /** Timeout of one DNS query attempt (one server). Default: 1000. */
  dnsTimeoutMs?: number;
  /** Attempts per DNS query, rotating over the nameservers. Default: 3. */
  dnsAttempts?: number;
  /** Timeout of a TCP connect plus handshake. Default: 3000. */
  connectTimeoutMs?: number;
  /**
   * After release, keep answering handshakes (as "released") for this long so that a restarted or late
   * peer can still pass. The linger never keeps the process alive by itself; the coordinator's process is
   * kept alive until every member acknowledged the release (bounded: a connect timeout per 64 members, plus
   * two). 0 closes the responder at once (on the coordinator: once every member acknowledged). Default:
   * 600000.
   */
  lingerMs?: number;
  /**
   * `mesh`: every pod resolves and verifies every other pod and is verified by each (about N DNS queries
   * and N - 1 connections per pod, held until release). `star`: every pod resolves and verifies only the
   * coordinator (index 0), which verifies each pod by checking its name once (O(N) queries and
   * connections for the whole job; a bounded number of sockets on every pod). In both, the coordinator
   * discovers the members and releases everyone with its roster.
   * `auto`: mesh up to {@link AUTO_MESH_MAX_SIZE} (256) pods, star above. Every pod of a run must use the
   * same (the handshake rejects a mismatch). Default: env `KUBEPEERS_TOPOLOGY`, else `auto`.
   */
  topology?: Topology | 'auto';
  /** Called with the barrier's progress once the responder listens and whenever the number of ready peers changes. */
  onProgress?: (progress: Progress) => void;
  /** Aborts the wait; the promise rejects with an `AbortedError` whose `cause` is the signal's reason. */
  signal?: AbortSignal;
  /**
   * Counters the barrier keeps adding to (DNS answers and handshakes by outcome, the release time): an
   * object from `createMetrics()`, also given to `serveStatus({ metrics })` for `/metrics`. Default: none.
   */
  metrics?: BarrierMetrics;
  /** Environment to read `JOB_COMPLETION_INDEX` and `KUBEPEERS_*` from. Default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Path of the hosts file. Default: `/etc/hosts`. */
  hostsPath?: string;
  /** Path of the resolver configuration. Default: `/etc/resolv.conf`. */
  resolvConfPath?: string;
}

/** A nameserver to query. */
export interface Nameserver {
  /** IPv4 or IPv6 address (a zone after `%` allowed). */
  address: string;
  /** UDP and TCP port. Default: 53. */
  port: number;
}

/**
 * Every setting resolved, validated and defaulted: what `resolveConfig()` (kubepeers/internals) returns
 * and `waitForPeers()` runs with. The options of {@link WaitForPeersOptions} say where each comes from and
 * its default.
 */
export interface Config extends JobNames {
  /** This pod's rank: its completion index in an Indexed Job, its global rank in a JobSet. */
  index: number;
  /** Pods in the job. */
  size: number;
  /** This pod's hostname, `<job>-<index>` (in a JobSet `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`). */
  hostname: string;
  /** Run id bound into the handshake ('' when unset). */
  runId: string;
  /** Shared secret bound into the handshake, if any. */
  secret: string | undefined;
  /** The responder's TCP port, the same on every pod. */
  port: number;
  /** Where the responder listens. */
  listenAddress: string;
  /** This pod's own address (from /etc/hosts), if known. */
  selfAddress: string | undefined;
  /** Servers the stub resolver queries, in rotation. */
  nameservers: Nameserver[];
  /** Record types asked for: A (4), AAAA (6) or both. */
  family: 4 | 6 | 'dual';
  /** Give up after this long (ms). */
  timeoutMs: number;
  /** The coordinator's mean Service poll interval (ms). */
  pollIntervalMs: number;
  /** First retry delay (ms). */
  retryMinDelayMs: number;
  /** Retry delays never exceed this (ms). */
  retryMaxDelayMs: number;
  /** Timeout of one DNS attempt (ms). */
  dnsTimeoutMs: number;
  /** DNS attempts per query, each on the next server. */
  dnsAttempts: number;
  /** A connection must open and pass its handshake within this (ms). */
  connectTimeoutMs: number;
  /** How long the responder answers late peers after the release (ms). */
  lingerMs: number;
  /** The topology, `auto` resolved. */
  topology: Topology;
  /** The progress callback, if any. */
  onProgress: ((progress: Progress) => void) | undefined;
  /** Aborts the barrier, if given. */
  signal: AbortSignal | undefined;
  /** Counters to keep, if given. */
  metrics: BarrierMetrics | undefined;
}

/**
 * Parses a duration: whole milliseconds (`1500`), a number with a unit (`1500ms`, `90s`, `10m`, `1h`,
 * `2.5s`), or several as Go and kubectl write them (`1m30s`, `1h2m3.5s`). Returns undefined when the
 * text is not one.
 */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  let ms: number;
  if (/^\d+(?:\.\d+)?$/.test(t)) ms = Number(t);
  else {
    if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(t)) return undefined;
    const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
    ms = 0;
    for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
      ms += Number(m[1]) * factor[m[2] as keyof typeof factor];
  }
  ms = Math.round(ms);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** A duration from an option (milliseconds) or an env variable (`90s`, `10m`, `1500`). */
function duration(
  options: WaitForPeersOptions,
  key: 'timeoutMs' | 'pollIntervalMs' | 'lingerMs',
  env: Readonly<Record<string, string | undefined>>,
  fallback: number,
  min: number,
): number {
  const s = pick(options, key, env);
  if (!s) return fallback;
  const ms = typeof s.value === 'string' ? parseDuration(s.value) : s.value;
  const max = 2 ** 31 - 1;
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < min || ms > max) {
    throw new ConfigError(
      key,
      s.source,
      s.value,
      `a duration from ${min} ms to ${max} ms (e.g. 1500, 90s, 10m, 1m30s)`,
    );
  }
  return ms;
}

function optionMs(
  options: WaitForPeersOptions,
  key: keyof WaitForPeersOptions,
  fallback: number,
  min = 0,
): number {
  const v = options[key];
  if (v === undefined) return fallback;
  return integer(key, { value: v, source: `option ${key}` }, min, 2 ** 31 - 1);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return undefined;
    throw err;
  }
}

/** Parses `addr`, `addr:port` or `[v6]:port`. */
export function parseNameserver(text: string, source: string): Nameserver {
  let address = text;
  let port = 53;
  const bracket = /^\[(.+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    address = bracket[1]!;
    if (bracket[2]) port = Number(bracket[2]);
  } else if (isIP(text) === 0 && /^[^:]+:\d+$/.test(text)) {
    const i = text.lastIndexOf(':');
    address = text.slice(0, i);
    port = Number(text.slice(i + 1));
  }
  if (isIP(address.replace(/%.*$/, '')) === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError('nameserver', source, text, 'an IP address, "addr:port" or "[v6addr]:port"');
  }
  return { address, port };
}

/**
 * Resolves every setting from options, env, `/etc/hosts`, `/etc/resolv.conf` and the hostname, in that
 * order of precedence, and validates them all. Reads two small files; does no network I/O.
 */
export async function resolveConfig(options: WaitForPeersOptions = {}): Promise<Config> {
  const env = options.env ?? process.env;
  const hostsPath = options.hostsPath ?? '/etc/hosts';
  const resolvPath = options.resolvConfPath ?? '/etc/resolv.conf';

  const labelsSrc = pick(options, 'labelsPath', env) ?? { value: DEFAULT_LABELS_PATH, source: 'default' };
  if (typeof labelsSrc.value !== 'string' || labelsSrc.value === '') {
    throw new ConfigError('labelsPath', labelsSrc.source, labelsSrc.value, 'a file path');
  }
  const labelsPath = labelsSrc.value;

  const hostnameSrc: Sourced<unknown> =
    options.hostname !== undefined
      ? { value: options.hostname, source: 'option hostname' }
      : { value: osHostname(), source: 'os.hostname()' };
  const hostname = String(hostnameSrc.value).toLowerCase().split('.')[0] ?? '';
  if (!isDnsLabel(hostname))
    throw new ConfigError('hostname', hostnameSrc.source, hostnameSrc.value, 'a DNS label');

  const [hostsText, resolvText, labelsText] = await Promise.all([
    readOptional(hostsPath),
    readOptional(resolvPath),
    readOptional(labelsPath),
  ]);
  const hosts: HostsEntry | undefined = hostsText === undefined ? undefined : parseHosts(hostsText, hostname);
  const resolv: ResolvConf = parseResolvConf(resolvText ?? '');
  const labels = parsePodInfo(labelsText ?? '');

  const subdomainGiven =
    pick(options, 'subdomain', env) ??
    (hosts?.subdomain ? { value: hosts.subdomain, source: `${hostsPath} (pod FQDN)` } : undefined);

  const trainer = trainerEnv(env);
  const lws = lwsEnv(env);
  const jobSet = lws
    ? undefined
    : resolveJobSet(options, env, labels, labelsPath, hostname, hostnameSrc.source, subdomainGiven, trainer);

  let size: number;
  let index: number;
  let jobName: string;
  let jobSrc: Sourced<unknown>;
  let sizeFrom: string;
  let indexFrom: string;
  if (jobSet) {
    ({ size, rank: index } = jobSet);
    jobSrc = jobSet.nameSrc;
    jobName = jobSet.name;
    const layout = jobSet.layout.map((r) => `${r.name}:${r.replicas}x${r.podsPerJob}`).join(',');
    sizeFrom = `the JobSet's replicated jobs ${layout}`;
    indexFrom = `the place of ${JSON.stringify(hostname)} in ${layout}`;
  } else if (lws) {
    // A LeaderWorkerSet group is the barrier: LWS told us its size, our index and its leader.
    size = lws.size;
    index = lws.index;
    sizeFrom = lws.sizeSource;
    indexFrom = lws.indexSource;
    for (const [key, value, from] of [
      ['size', size, sizeFrom],
      ['index', index, indexFrom],
    ] as const) {
      const given = pick(options, key, env);
      if (given && String(given.value).trim() !== String(value))
        throw new ConfigError(key, given.source, given.value, `nothing, or ${value} as ${from} says`);
    }
    for (const key of ['jobName', 'replicatedJobs', 'podsPerJob', 'jobSetName'] as const) {
      const given = pick(options, key, env);
      if (given && !(key === 'jobName' && given.value === lws.leader))
        throw new ConfigError(
          key,
          given.source,
          given.value,
          key === 'jobName'
            ? `nothing, or "${lws.leader}": in a LeaderWorkerSet the group (its leader, ${lws.leaderSource}) is the barrier`
            : `nothing: a LeaderWorkerSet group (${lws.leaderSource}) is the barrier, not a JobSet`,
        );
    }
    jobSrc = { value: lws.leader, source: lws.leaderSource };
    jobName = label('jobName', jobSrc);
    const expected = index === 0 ? jobName : `${jobName}-${index}`;
    if (hostname !== expected) {
      throw new ConfigError(
        'hostname',
        hostnameSrc.source,
        hostname,
        `"${expected}", the ${index === 0 ? 'leader' : `worker ${index}`} of the group whose leader ${lws.leaderSource} names`,
      );
    }
  } else {
    const sizeSrc =
      pick(options, 'size', env) ??
      (trainer ? { value: trainer.nodes, source: trainer.nodesSource } : undefined);
    if (!sizeSrc) {
      throw new ConfigError(
        'size',
        `option size or env ${ENV.size}`,
        undefined,
        'the number of pods in the job (its completions); Kubernetes does not expose it to pods',
      );
    }
    size = integer('size', sizeSrc, 1, MAX_SIZE);
    sizeFrom = sizeSrc.source;

    const indexSrc =
      pick(options, 'index', env) ??
      (trainer ? { value: trainer.rank, source: trainer.rankSource } : undefined);
    if (!indexSrc) {
      throw new ConfigError(
        'index',
        `option index or env ${ENV.index}`,
        undefined,
        'the completion index (set by Kubernetes for Jobs with completionMode: Indexed)',
      );
    }
    index = integer('index', indexSrc, 0, size - 1);
    indexFrom = indexSrc.source;

    const named = pick(options, 'jobName', env);
    if (named) jobSrc = named;
    else {
      const suffix = `-${index}`;
      if (!hostname.endsWith(suffix) || hostname.length === suffix.length) {
        throw new ConfigError(
          'jobName',
          `hostname (${hostnameSrc.source})`,
          hostname,
          `a hostname "<job>${suffix}" as Kubernetes gives Indexed Job pods, or set option jobName or env ${ENV.jobName}`,
        );
      }
      jobSrc = { value: hostname.slice(0, -suffix.length), source: `hostname ${JSON.stringify(hostname)}` };
    }
    jobName = label('jobName', jobSrc);
    if (`${jobName}-${size - 1}`.length > 63) {
      throw new ConfigError(
        'jobName',
        jobSrc.source,
        jobName,
        `a name short enough that "${jobName}-${size - 1}" fits a 63-character DNS label`,
      );
    }
  }

  if (lws?.subdomain && subdomainGiven && subdomainGiven.value !== lws.subdomain) {
    throw new ConfigError(
      'subdomain',
      subdomainGiven.source,
      subdomainGiven.value,
      `"${lws.subdomain}", the leader's subdomain in ${lws.leaderSource}`,
    );
  }
  const subdomainSrc =
    subdomainGiven ??
    (lws?.subdomain ? { value: lws.subdomain, source: lws.leaderSource } : undefined) ??
    (jobSet ? { value: jobSet.name, source: `${jobSrc.source} (JobSet's default subdomain)` } : undefined);
  if (!subdomainSrc) {
    throw new ConfigError(
      'subdomain',
      `option subdomain, env ${ENV.subdomain} or ${hostsPath}`,
      undefined,
      `the headless Service named in the pod's spec.subdomain (${hostsPath} has no "${hostname}.<svc>.<ns>.svc.<domain>" line)`,
    );
  }
  const subdomain = label('subdomain', subdomainSrc);
  if (jobSet?.coordinatorSubdomain !== undefined && jobSet.coordinatorSubdomain !== subdomain) {
    throw new ConfigError(
      'coordinator',
      jobSet.coordinatorSrc,
      jobSet.coordinatorText,
      `a pod of subdomain "${subdomain}" (from ${subdomainSrc.source}), as JobSet writes it: <pod hostname>.<subdomain>`,
    );
  }

  if (trainer) {
    // Kubeflow Trainer set them: take them, and refuse to run a barrier that disagrees with them.
    // Only the hostnames are compared: namespace and domain do not matter to them.
    const names: JobNames = {
      jobName,
      subdomain,
      namespace: '',
      clusterDomain: '',
      ...(jobSet ? { replicatedJobs: jobSet.layout, jobSetCoordinator: jobSet.coordinator } : {}),
      ...(lws ? { leaderWorkerSet: true } : {}),
    };
    if (trainer.nodes !== size)
      throw new ConfigError(
        'size',
        sizeFrom,
        size,
        `${trainer.nodes}, the node count in ${trainer.nodesSource}`,
      );
    if (trainer.rank !== index)
      throw new ConfigError(
        'index',
        indexFrom,
        index,
        `${trainer.rank}, this node's rank in ${trainer.rankSource}`,
      );
    const [host, sub] = trainer.master.toLowerCase().replace(/\.$/, '').split('.');
    const first = peerHostname(names, 0);
    if (host !== first || (sub !== undefined && sub !== subdomain)) {
      throw new ConfigError(
        'coordinator',
        trainer.masterSource,
        trainer.master,
        `the pod that kubepeers finds at rank 0, "${first}.${subdomain}" (its name from ${jobSrc.source}, its subdomain from ${subdomainSrc.source})`,
      );
    }
  }

  const namespaceSrc =
    pick(options, 'namespace', env) ??
    (hosts?.namespace ? { value: hosts.namespace, source: `${hostsPath} (pod FQDN)` } : undefined) ??
    (lws?.namespace ? { value: lws.namespace, source: lws.leaderSource } : undefined) ??
    (resolv.namespace ? { value: resolv.namespace, source: `${resolvPath} (search list)` } : undefined);
  if (lws?.namespace && namespaceSrc && namespaceSrc.value !== lws.namespace) {
    throw new ConfigError(
      'namespace',
      namespaceSrc.source,
      namespaceSrc.value,
      `"${lws.namespace}", the leader's namespace in ${lws.leaderSource}`,
    );
  }
  if (!namespaceSrc) {
    throw new ConfigError(
      'namespace',
      `option namespace, env ${ENV.namespace}, ${hostsPath} or ${resolvPath}`,
      undefined,
      'the pod namespace (downward API metadata.namespace)',
    );
  }
  const namespace = label('namespace', namespaceSrc);

  const domainSrc = pick(options, 'clusterDomain', env) ??
    (hosts?.clusterDomain ? { value: hosts.clusterDomain, source: `${hostsPath} (pod FQDN)` } : undefined) ??
    (resolv.clusterDomain
      ? { value: resolv.clusterDomain, source: `${resolvPath} (search list)` }
      : undefined) ?? {
      value: 'cluster.local',
      source: 'default',
    };
  const clusterDomain =
    typeof domainSrc.value === 'string' ? domainSrc.value.toLowerCase().replace(/\.$/, '') : '';
  if (!isDnsName(clusterDomain)) {
    throw new ConfigError(
      'clusterDomain',
      domainSrc.source,
      domainSrc.value,
      'a DNS name such as cluster.local',
    );
  }

  const runSrc = pick(options, 'runId', env) ?? jobSet?.runId ?? { value: '', source: 'default' };
  if (typeof runSrc.value !== 'string' || runSrc.value.length > 256 || !/^[\x21-\x7e]*$/.test(runSrc.value)) {
    throw new ConfigError('runId', runSrc.source, runSrc.value, 'up to 256 printable ASCII characters');
  }
  const childJobUid = labels.get('batch.kubernetes.io/controller-uid') ?? labels.get('controller-uid');
  if (jobSet && runSrc.value !== '' && runSrc.value === childJobUid) {
    // The Indexed Job advice: in a JobSet every child Job has its own uid, so no two would ever match.
    throw new ConfigError(
      'runId',
      runSrc.source,
      runSrc.value,
      `one value for the whole JobSet: this is the child Job's uid (${labelsPath}, label batch.kubernetes.io/controller-uid), which differs per child Job; leave it unset (the JobSet's uid and restart attempt are the default) or use label ${JOBSET_LABELS.uid}`,
    );
  }
  const secretSrc = pick(options, 'secret', env);
  if (secretSrc && (typeof secretSrc.value !== 'string' || secretSrc.value.length > 4096)) {
    throw new ConfigError('secret', secretSrc.source, '<redacted>', 'a string of at most 4096 characters');
  }

  const portSrc = pick(options, 'port', env) ?? { value: DEFAULT_PORT, source: 'default' };
  const port = integer('port', portSrc, 1, 65535);

  const timeoutMs = duration(options, 'timeoutMs', env, DEFAULTS.timeoutMs, 1);

  let nameservers: Nameserver[];
  if (options.nameservers !== undefined) {
    if (!Array.isArray(options.nameservers) || options.nameservers.length === 0) {
      throw new ConfigError('nameservers', 'option nameservers', options.nameservers, 'a non-empty array');
    }
    nameservers = options.nameservers.map((n) => parseNameserver(String(n), 'option nameservers'));
  } else {
    nameservers = resolv.nameservers.map((n) => parseNameserver(n, resolvPath));
    if (nameservers.length === 0) {
      throw new ConfigError(
        'nameservers',
        resolvText === undefined ? `${resolvPath} (unreadable)` : resolvPath,
        undefined,
        'at least one "nameserver" line, or option nameservers',
      );
    }
  }

  const selfAddress = hosts?.address;
  const listenAddress = options.listenAddress ?? selfAddress ?? '0.0.0.0';
  if (isIP(listenAddress) === 0) {
    throw new ConfigError(
      'listenAddress',
      options.listenAddress !== undefined ? 'option listenAddress' : hostsPath,
      listenAddress,
      'an IP address',
    );
  }
  const family = options.family ?? (selfAddress !== undefined && isIP(selfAddress) === 6 ? 6 : 4);
  if (family !== 4 && family !== 6 && family !== 'dual') {
    throw new ConfigError('family', 'option family', family, '4, 6 or "dual"');
  }

  const retryMinDelayMs = optionMs(options, 'retryMinDelayMs', DEFAULTS.retryMinDelayMs, 1);
  const retryMaxDelayMs = optionMs(options, 'retryMaxDelayMs', DEFAULTS.retryMaxDelayMs, 1);
  if (retryMaxDelayMs < retryMinDelayMs) {
    throw new ConfigError(
      'retryMaxDelayMs',
      'option retryMaxDelayMs',
      retryMaxDelayMs,
      `at least retryMinDelayMs (${retryMinDelayMs})`,
    );
  }
  const topologySrc = pick(options, 'topology', env) ?? { value: 'auto', source: 'default' };
  if (topologySrc.value !== 'mesh' && topologySrc.value !== 'star' && topologySrc.value !== 'auto') {
    throw new ConfigError('topology', topologySrc.source, topologySrc.value, '"mesh", "star" or "auto"');
  }
  const topology: Topology =
    topologySrc.value === 'auto' ? (size <= AUTO_MESH_MAX_SIZE ? 'mesh' : 'star') : topologySrc.value;
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function') {
    throw new ConfigError('onProgress', 'option onProgress', typeof options.onProgress, 'a function');
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new ConfigError('signal', 'option signal', typeof options.signal, 'an AbortSignal');
  }
  const m = options.metrics as Partial<BarrierMetrics> | undefined;
  if (
    m !== undefined &&
    (typeof m !== 'object' || typeof m.dnsQueries !== 'object' || typeof m.handshakes !== 'object')
  ) {
    throw new ConfigError('metrics', 'option metrics', typeof m, 'an object from createMetrics()');
  }

  return {
    index,
    size,
    jobName,
    ...(jobSet ? { replicatedJobs: jobSet.layout, jobSetCoordinator: jobSet.coordinator } : {}),
    ...(lws ? { leaderWorkerSet: true } : {}),
    subdomain,
    namespace,
    clusterDomain,
    hostname,
    runId: runSrc.value,
    secret: secretSrc?.value as string | undefined,
    port,
    listenAddress,
    selfAddress,
    nameservers,
    family,
    timeoutMs,
    pollIntervalMs: duration(options, 'pollIntervalMs', env, defaultPollMs(size), 1),
    retryMinDelayMs,
    retryMaxDelayMs,
    dnsTimeoutMs: optionMs(options, 'dnsTimeoutMs', DEFAULTS.dnsTimeoutMs, 1),
    dnsAttempts: optionMs(options, 'dnsAttempts', DEFAULTS.dnsAttempts, 1),
    connectTimeoutMs: optionMs(options, 'connectTimeoutMs', DEFAULTS.connectTimeoutMs, 1),
    lingerMs: duration(options, 'lingerMs', env, DEFAULTS.lingerMs, 0),
    topology,
    onProgress: options.onProgress,
    signal: options.signal,
    metrics: options.metrics,
  };
}
