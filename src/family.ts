/**
 * The Kubernetes job family around Indexed Jobs, as a pod sees it without the API: a Kubeflow Trainer v2
 * node (its `PET_*` env), a LeaderWorkerSet group (its `LWS_*` env) and a JobSet pod (its hostname, the
 * downward-API labels file, and the layout options Kubernetes cannot give). Each works out the pod's
 * identity and checks that every source agrees; src/options.ts combines them with the rest.
 */
import { ConfigError } from './errors.js';
import {
  isDnsLabel,
  isDnsName,
  jobSetPlace,
  layoutSize,
  rankOfPlace,
  type ReplicatedJobLayout,
} from './identity.js';
import type { WaitForPeersOptions } from './options.js';
import { ENV, JOBSET_LABELS } from './settings.js';
import { integer, label, MAX_SIZE, pick, type Sourced } from './sources.js';

/** What Kubeflow Trainer v2 tells a node of a TrainJob (its torch runtime sets these env variables). */
export interface TrainerEnv {
  nodes: number;
  nodesSource: string;
  rank: number;
  rankSource: string;
  master: string;
  masterSource: string;
}

/**
 * Whether env is a Kubeflow Trainer v2 node's: `PET_NNODES` and `PET_NODE_RANK` set, and `PET_MASTER_ADDR`
 * of the Trainer's own shape `<trainjob>-node-0-0.<trainjob>` (a pod of replicated job `node`). `PET_*` a user set in a plain Job (a
 * Service name, an IP, an elastic `2:4`) are the user's: kubepeers leaves them alone.
 */
export function isTrainerEnv(env: Readonly<Record<string, string | undefined>>): boolean {
  const master = (env.PET_MASTER_ADDR ?? '').toLowerCase().replace(/\.$/, '');
  // The Trainer's naming (`<trainjob>-node-<job>-<pod>.<subdomain>[.<ns>.svc...]`), whatever the values:
  // one that names the wrong pod or subdomain is then refused, naming both.
  return (
    !!env.PET_NNODES &&
    !!env.PET_NODE_RANK &&
    isDnsName(master) &&
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?-node-\d+-\d+\.[a-z0-9]/.test(master)
  );
}

/** The Trainer's `PET_NNODES`, `PET_NODE_RANK` and `PET_MASTER_ADDR` in a Trainer node (isTrainerEnv), checked. */
export function trainerEnv(env: Readonly<Record<string, string | undefined>>): TrainerEnv | undefined {
  if (!isTrainerEnv(env)) return undefined;
  const [nodes, rank, master] = [env.PET_NNODES!, env.PET_NODE_RANK!, env.PET_MASTER_ADDR!];
  const from = (name: string): string => `env ${name} (Kubeflow Trainer)`;
  const n = integer('PET_NNODES', { value: nodes, source: from('PET_NNODES') }, 1, MAX_SIZE);
  const r = integer('PET_NODE_RANK', { value: rank, source: from('PET_NODE_RANK') }, 0, n - 1);
  return {
    nodes: n,
    nodesSource: from('PET_NNODES'),
    rank: r,
    rankSource: from('PET_NODE_RANK'),
    master,
    masterSource: from('PET_MASTER_ADDR'),
  };
}

/** What LeaderWorkerSet tells each pod of a group. */
export interface LwsEnv {
  size: number;
  sizeSource: string;
  index: number;
  indexSource: string;
  /** The leader's hostname `<lws>-<group>`. */
  leader: string;
  leaderSource: string;
  subdomain?: string;
  namespace?: string;
}

/** `LWS_LEADER_ADDRESS` (`<lws>-<group>.<subdomain>.<ns>`), `LWS_GROUP_SIZE`, `LWS_WORKER_INDEX` when all are set. */
export function lwsEnv(env: Readonly<Record<string, string | undefined>>): LwsEnv | undefined {
  const [address, size, worker] = [env.LWS_LEADER_ADDRESS, env.LWS_GROUP_SIZE, env.LWS_WORKER_INDEX];
  if (!address || !size || !worker) return undefined;
  const from = (name: string): string => `env ${name} (LeaderWorkerSet)`;
  const n = integer('LWS_GROUP_SIZE', { value: size, source: from('LWS_GROUP_SIZE') }, 1, MAX_SIZE);
  const i = integer('LWS_WORKER_INDEX', { value: worker, source: from('LWS_WORKER_INDEX') }, 0, n - 1);
  const labels = address.toLowerCase().replace(/\.$/, '').split('.');
  if (!labels.every(isDnsLabel) || (labels.length > 3 && labels[3] !== 'svc')) {
    throw new ConfigError(
      'LWS_LEADER_ADDRESS',
      from('LWS_LEADER_ADDRESS'),
      address,
      'the leader pod\'s name "<lws>-<group>.<subdomain>.<namespace>" as LeaderWorkerSet sets it',
    );
  }
  return {
    size: n,
    sizeSource: from('LWS_GROUP_SIZE'),
    index: i,
    indexSource: from('LWS_WORKER_INDEX'),
    leader: labels[0]!,
    leaderSource: from('LWS_LEADER_ADDRESS'),
    ...(labels[1] ? { subdomain: labels[1] } : {}),
    ...(labels[2] ? { namespace: labels[2] } : {}),
  };
}

/** What a JobSet pod works out about its run. */
export interface JobSetIdentity {
  name: string;
  nameSrc: Sourced<unknown>;
  layout: ReplicatedJobLayout[];
  size: number;
  /** This pod's rank (the coordinator's is 0). */
  rank: number;
  /** The coordinator's place in the layout order. */
  coordinator: number;
  /** The coordinator label's text and subdomain, when it named one. */
  coordinatorText?: string;
  coordinatorSrc: string;
  coordinatorSubdomain?: string;
  runId?: Sourced<unknown>;
}

const LAYOUT_EXPECTED =
  'replicated jobs as "name:REPLICASxPODS" separated by commas, in the order of the JobSet spec (e.g. "driver:1x1,workers:2x4"; "xPODS" may be left out when podsPerJob is set)';

/** Parses and checks `replicatedJobs`. */
function parseLayout(s: Sourced<unknown>, podsPerJob: number | undefined): ReplicatedJobLayout[] {
  const fail = (why: string): never => {
    throw new ConfigError('replicatedJobs', s.source, s.value, `${LAYOUT_EXPECTED}${why}`);
  };
  let entries: { name: unknown; replicas: unknown; podsPerJob: unknown }[];
  if (typeof s.value === 'string') {
    entries = s.value
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e !== '')
      .map((e) => {
        const m = /^([^:\s]+):(\d+)(?:x(\d+))?$/.exec(e);
        if (!m) return fail(`; "${e}" is not of that form`);
        return {
          name: m[1],
          replicas: Number(m[2]),
          podsPerJob: m[3] === undefined ? podsPerJob : Number(m[3]),
        };
      });
  } else if (Array.isArray(s.value)) {
    entries = (s.value as unknown[]).map((e) =>
      typeof e === 'object' && e !== null
        ? {
            name: (e as ReplicatedJobLayout).name,
            replicas: (e as ReplicatedJobLayout).replicas,
            podsPerJob: (e as Partial<ReplicatedJobLayout>).podsPerJob ?? podsPerJob,
          }
        : fail(`; ${JSON.stringify(e)} is not an object { name, replicas, podsPerJob }`),
    );
  } else return fail('');
  if (entries.length === 0) fail('; it lists none');
  const seen = new Set<string>();
  const layout = entries.map((e) => {
    if (typeof e.name !== 'string' || !isDnsLabel(e.name))
      fail(`; ${JSON.stringify(e.name)} is not a DNS label`);
    const name = e.name as string;
    if (seen.has(name)) fail(`; "${name}" is listed twice`);
    seen.add(name);
    for (const [what, v] of [
      ['replicas', e.replicas],
      ['pods per job', e.podsPerJob],
    ] as const) {
      if (v === undefined) fail(`; "${name}" has no pod count and podsPerJob is not set`);
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_SIZE)
        fail(`; the ${what} of "${name}" must be an integer from 1 to ${MAX_SIZE}`);
    }
    return { name, replicas: e.replicas as number, podsPerJob: e.podsPerJob as number };
  });
  if (layoutSize(layout) > MAX_SIZE) fail(`; it makes ${layoutSize(layout)} pods, more than ${MAX_SIZE}`);
  return layout;
}

/**
 * The JobSet identity of this pod, or `undefined` when nothing says it is a JobSet pod. Reads the hostname
 * `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`, the labels file, and the options Kubernetes cannot
 * give (pods per child Job, the other replicated jobs); every source that says something must agree.
 */
export function resolveJobSet(
  options: WaitForPeersOptions,
  env: Readonly<Record<string, string | undefined>>,
  labels: ReadonlyMap<string, string>,
  labelsPath: string,
  hostname: string,
  hostnameSource: string,
  subdomainHint: Sourced<unknown> | undefined,
  trainer: TrainerEnv | undefined,
): JobSetIdentity | undefined {
  const fromLabel = (key: string): Sourced<unknown> | undefined => {
    const v = labels.get(key);
    return v === undefined ? undefined : { value: v, source: `${labelsPath} (label ${key})` };
  };
  const givenName = pick(options, 'jobSetName', env);
  const labelName = fromLabel(JOBSET_LABELS.name);
  const layoutSrc = pick(options, 'replicatedJobs', env);
  const podsSrc = pick(options, 'podsPerJob', env);
  if (!givenName && !labelName && !layoutSrc && !podsSrc) return undefined;

  const podsPerJob = podsSrc ? integer('podsPerJob', podsSrc, 1, MAX_SIZE) : undefined;
  const given = layoutSrc ? parseLayout(layoutSrc, podsPerJob) : undefined;

  const podSrc = pick(options, 'index', env) ?? fromLabel(JOBSET_LABELS.completionIndex);
  if (!podSrc) {
    throw new ConfigError(
      'index',
      `option index or env ${ENV.index}`,
      undefined,
      `the pod's completion index in its child Job (set by Kubernetes: JobSet's child Jobs are Indexed), or the labels file (${labelsPath}) with label ${JOBSET_LABELS.completionIndex}`,
    );
  }
  const podIndex = integer('index', podSrc, 0, MAX_SIZE - 1);
  const podLabel = fromLabel(JOBSET_LABELS.completionIndex);
  if (podLabel && podLabel !== podSrc && podLabel.value !== String(podIndex)) {
    throw new ConfigError(
      'index',
      podSrc.source,
      podSrc.value,
      `the completion index ${JSON.stringify(podLabel.value)} that ${podLabel.source} says`,
    );
  }

  // <jobset>-<replicatedJob>-<jobIndex>-<podIndex>
  const shape = `a JobSet pod hostname "<jobset>-<replicatedJob>-<jobIndex>-${podIndex}"`;
  const m = new RegExp(`^(.+)-(\\d+)-${podIndex}$`).exec(hostname);
  if (!m) throw new ConfigError('hostname', hostnameSource, hostname, shape);
  const prefix = m[1]!;
  const hostJobIndex = Number(m[2]);

  const ownLabelRj = fromLabel(JOBSET_LABELS.replicatedJob);
  let nameSrc = givenName ?? labelName;
  if (!nameSrc) {
    // The name is what is left of the hostname once the replicated job is known.
    const rjs = ownLabelRj ? [String(ownLabelRj.value)] : (given ?? []).map((r) => r.name);
    const fits = rjs.filter((r) => prefix.endsWith(`-${r}`) && prefix.length > r.length + 1);
    if (fits.length === 1) {
      nameSrc = {
        value: prefix.slice(0, -fits[0]!.length - 1),
        source: `hostname ${JSON.stringify(hostname)} (${ownLabelRj ? ownLabelRj.source : 'option replicatedJobs'})`,
      };
    } else if (
      fits.length === 0 &&
      subdomainHint &&
      typeof subdomainHint.value === 'string' &&
      prefix.startsWith(`${subdomainHint.value}-`)
    ) {
      nameSrc = {
        value: subdomainHint.value,
        source: `${subdomainHint.source} (JobSet's default subdomain, the start of hostname ${JSON.stringify(hostname)})`,
      };
    } else {
      throw new ConfigError(
        'jobSetName',
        `option jobSetName or env ${ENV.jobSetName}`,
        undefined,
        fits.length > 1
          ? `the JobSet's name: hostname "${hostname}" ends in more than one listed replicated job (${fits.join(', ')})`
          : `the JobSet's name: hostname "${hostname}" does not say where it ends (mount the pod labels at ${labelsPath}, or set it)`,
      );
    }
  }
  const name = label('jobSetName', nameSrc);
  if (labelName && labelName.value !== name) {
    throw new ConfigError(
      'jobSetName',
      nameSrc.source,
      name,
      `the JobSet's name, which ${labelName.source} says is ${JSON.stringify(labelName.value)}`,
    );
  }
  const jobNameSrc = pick(options, 'jobName', env);
  if (jobNameSrc && jobNameSrc.value !== name) {
    throw new ConfigError(
      'jobName',
      jobNameSrc.source,
      jobNameSrc.value,
      `nothing, or the JobSet's name "${name}" (from ${nameSrc.source}): in a JobSet the barrier spans the JobSet`,
    );
  }
  if (!prefix.startsWith(`${name}-`) || prefix.length === name.length + 1) {
    throw new ConfigError(
      'hostname',
      hostnameSource,
      hostname,
      `${shape} whose JobSet is "${name}" (from ${nameSrc.source})`,
    );
  }
  const hostRj = prefix.slice(name.length + 1);
  const rj = ownLabelRj ? String(ownLabelRj.value) : hostRj;
  const jobIndexSrc = fromLabel(JOBSET_LABELS.jobIndex);
  const jobIndex = jobIndexSrc ? integer('jobIndex', jobIndexSrc, 0, MAX_SIZE - 1) : hostJobIndex;
  const expected = `${name}-${rj}-${jobIndex}-${podIndex}`;
  if (hostname !== expected) {
    throw new ConfigError(
      'hostname',
      hostnameSource,
      hostname,
      `"${expected}", the pod that ${labelsPath} and ${podSrc.source} describe`,
    );
  }

  const replicasSrc = fromLabel(JOBSET_LABELS.replicas);
  const replicasLabel = replicasSrc ? integer('replicas', replicasSrc, 1, MAX_SIZE) : undefined;
  const globalSrc = fromLabel(JOBSET_LABELS.globalReplicas);
  const globalReplicas = globalSrc ? integer('globalReplicas', globalSrc, 1, MAX_SIZE) : undefined;
  let layout: ReplicatedJobLayout[];
  if (given) {
    layout = given;
    const own = layout.find((r) => r.name === rj);
    if (!own) {
      throw new ConfigError(
        'replicatedJobs',
        layoutSrc!.source,
        layoutSrc!.value,
        `a list that includes this pod's replicated job "${rj}" (from ${ownLabelRj?.source ?? `hostname ${JSON.stringify(hostname)}`})`,
      );
    }
    if (replicasLabel !== undefined && own.replicas !== replicasLabel) {
      throw new ConfigError(
        'replicatedJobs',
        layoutSrc!.source,
        layoutSrc!.value,
        `${replicasLabel} replicas for "${rj}", as ${replicasSrc!.source} says`,
      );
    }
    const jobs = layout.reduce((n, r) => n + r.replicas, 0);
    if (globalReplicas !== undefined && jobs > globalReplicas) {
      throw new ConfigError(
        'replicatedJobs',
        layoutSrc!.source,
        layoutSrc!.value,
        `at most ${globalReplicas} child Jobs in all, as ${globalSrc!.source} says (it lists ${jobs})`,
      );
    }
    const globalIndexSrc = fromLabel(JOBSET_LABELS.jobGlobalIndex);
    if (globalIndexSrc && jobs === globalReplicas) {
      // Every replicated job is listed: JobSet's global job index must be ours.
      let before = 0;
      for (const r of layout) {
        if (r.name === rj) break;
        before += r.replicas;
      }
      if (String(before + jobIndex) !== globalIndexSrc.value) {
        throw new ConfigError(
          'replicatedJobs',
          layoutSrc!.source,
          layoutSrc!.value,
          `the replicated jobs in the order of the JobSet spec: ${globalIndexSrc.source} is ${JSON.stringify(globalIndexSrc.value)}, this order makes it ${before + jobIndex}`,
        );
      }
    }
  } else {
    if (replicasLabel === undefined) {
      throw new ConfigError(
        'replicatedJobs',
        `option replicatedJobs or env ${ENV.replicatedJobs}`,
        undefined,
        `every replicated job as "name:REPLICASxPODS" in spec order, or the labels file (${labelsPath}) with the replicas of replicated job "${rj}" (label ${JOBSET_LABELS.replicas})`,
      );
    }
    // Kubeflow Trainer's JobSet has initializer jobs beside its nodes: PET_NNODES says who trains.
    if (globalReplicas !== undefined && globalReplicas !== replicasLabel && !trainer) {
      throw new ConfigError(
        'replicatedJobs',
        `option replicatedJobs or env ${ENV.replicatedJobs}`,
        undefined,
        `the replicated jobs of the barrier as "name:REPLICASxPODS" in spec order: JobSet "${name}" has ${globalReplicas} child Jobs (${globalSrc!.source}), replicated job "${rj}" only ${replicasLabel}`,
      );
    }
    // The pods in all, where something gives them (KUBEPEERS_SIZE, PET_NNODES), make the pods per child Job.
    const sizeGiven = pick(options, 'size', env);
    const total = sizeGiven ? integer('size', sizeGiven, 1, MAX_SIZE) : trainer?.nodes;
    const pods =
      podsPerJob ?? (total !== undefined && total % replicasLabel === 0 ? total / replicasLabel : undefined);
    if (pods === undefined) {
      throw new ConfigError(
        'podsPerJob',
        `option podsPerJob or env ${ENV.podsPerJob}`,
        undefined,
        `the pods per child Job of replicated job "${rj}" (its completions; or the size, all pods of its ${replicasLabel} child Jobs); Kubernetes does not expose it to pods`,
      );
    }
    layout = [{ name: rj, replicas: replicasLabel, podsPerJob: pods }];
  }
  for (const r of layout) {
    const longest = `${name}-${r.name}-${r.replicas - 1}-${r.podsPerJob - 1}`;
    if (longest.length > 63) {
      throw new ConfigError(
        'jobSetName',
        nameSrc.source,
        name,
        `a name short enough that pod hostname "${longest}" fits a 63-character DNS label`,
      );
    }
  }
  const size = layoutSize(layout);
  const sizeSrc = pick(options, 'size', env);
  if (sizeSrc && integer('size', sizeSrc, 1, MAX_SIZE) !== size) {
    throw new ConfigError(
      'size',
      sizeSrc.source,
      sizeSrc.value,
      `nothing, or ${size}: the pods of the JobSet's replicated jobs ${layout.map((r) => `${r.name}:${r.replicas}x${r.podsPerJob}`).join(',')}`,
    );
  }
  const place = jobSetPlace(layout, { replicatedJob: rj, jobIndex, podIndex });
  if (place === undefined) {
    const own = layout.find((r) => r.name === rj)!;
    throw new ConfigError(
      'hostname',
      hostnameSource,
      hostname,
      `a pod of replicated job "${rj}" with ${own.replicas} child Jobs of ${own.podsPerJob} pods (job index below ${own.replicas}, pod index below ${own.podsPerJob})`,
    );
  }

  const identity: JobSetIdentity = {
    name,
    nameSrc,
    layout,
    size,
    rank: place,
    coordinator: 0,
    coordinatorSrc: `${labelsPath} (label ${JOBSET_LABELS.coordinator})`,
  };
  const coordinatorText = labels.get(JOBSET_LABELS.coordinator);
  if (coordinatorText !== undefined) {
    const [host = '', sub, ...more] = coordinatorText.split('.');
    const c = new RegExp(`^(.+)-(\\d+)-(\\d+)$`).exec(host);
    const k =
      c && host.startsWith(`${name}-`)
        ? jobSetPlace(layout, {
            replicatedJob: c[1]!.slice(name.length + 1),
            jobIndex: Number(c[2]),
            podIndex: Number(c[3]),
          })
        : undefined;
    if (k === undefined || more.length > 0) {
      throw new ConfigError(
        'coordinator',
        identity.coordinatorSrc,
        coordinatorText,
        `"<pod hostname>.<subdomain>" naming a pod of the barrier (${layout.map((r) => `${r.name}:${r.replicas}x${r.podsPerJob}`).join(',')} of JobSet "${name}")`,
      );
    }
    identity.coordinator = k;
    identity.rank = rankOfPlace({ jobSetCoordinator: k }, place);
    identity.coordinatorText = coordinatorText;
    if (sub !== undefined) identity.coordinatorSubdomain = sub;
  }
  const uid = labels.get(JOBSET_LABELS.uid);
  if (uid !== undefined) {
    const attempt = labels.get(JOBSET_LABELS.restartAttempt) ?? '0';
    identity.runId = {
      value: `${uid}/${attempt}`,
      source: `${labelsPath} (labels ${JOBSET_LABELS.uid} and ${JOBSET_LABELS.restartAttempt})`,
    };
  }
  return identity;
}
