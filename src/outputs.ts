/**
 * Integration outputs computed from a released roster: environment variables and files in the exact
 * formats distributed frameworks parse. Pure functions, plus an atomic file writer.
 */
import { DEFAULTS } from './settings.js';
import { randomBytes } from 'node:crypto';
import { rename, writeFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { PeersResult } from './barrier.js';

/** Ports and counts the integrations need beyond the roster. */
export interface IntegrationOptions {
  /** torch `MASTER_PORT` / torchrun `PET_MASTER_PORT`. Default: 29500. */
  masterPort?: number;
  /** torchrun `PET_NPROC_PER_NODE`; also the slots per host in hostfiles and Horovod. Default: 1. */
  nprocPerNode?: number;
  /** Port of the JAX coordinator service on index 0. Default: 1234. */
  jaxPort?: number;
  /** Port of each TensorFlow worker in `TF_CONFIG`. Default: 2222. */
  tfPort?: number;
  /** Port of the Ray head (GCS). Default: 6379. */
  rayPort?: number;
}

/** Every env integration by name; `kubepeers` is the framework-neutral one. */
export const ENV_FORMATS = ['kubepeers', 'torch', 'torchrun', 'jax', 'tf', 'ray'] as const;
export type EnvFormat = (typeof ENV_FORMATS)[number];

function defaults(o: IntegrationOptions): Required<IntegrationOptions> {
  return {
    masterPort: o.masterPort ?? DEFAULTS.masterPort,
    nprocPerNode: o.nprocPerNode ?? DEFAULTS.nprocPerNode,
    jaxPort: o.jaxPort ?? DEFAULTS.jaxPort,
    tfPort: o.tfPort ?? DEFAULTS.tfPort,
    rayPort: o.rayPort ?? DEFAULTS.rayPort,
  };
}

/**
 * `KUBEPEERS_*`: index, size, coordinator, peer names, the Horovod `-H` value, and the roster as JSON.
 */
export function kubepeersEnv(r: PeersResult, o: IntegrationOptions = {}): Record<string, string> {
  return {
    KUBEPEERS_INDEX: String(r.index),
    KUBEPEERS_SIZE: String(r.size),
    KUBEPEERS_COORDINATOR: r.coordinator.fqdn,
    KUBEPEERS_PEERS: r.peers.map((p) => p.fqdn).join(' '),
    KUBEPEERS_HOROVOD_HOSTS: horovodHosts(r, o),
    KUBEPEERS_ROSTER: JSON.stringify(roster(r)),
  };
}

/** torch.distributed `init_method="env://"`: one process per pod. */
export function torchEnv(r: PeersResult, o: IntegrationOptions = {}): Record<string, string> {
  return {
    MASTER_ADDR: r.coordinator.fqdn,
    MASTER_PORT: String(defaults(o).masterPort),
    WORLD_SIZE: String(r.size),
    RANK: String(r.index),
  };
}

/** torchrun reads each flag from `PET_<FLAG>`: static rendezvous with this pod's node rank. */
export function torchrunEnv(r: PeersResult, o: IntegrationOptions = {}): Record<string, string> {
  const d = defaults(o);
  return {
    PET_NNODES: String(r.size),
    PET_NODE_RANK: String(r.index),
    PET_MASTER_ADDR: r.coordinator.fqdn,
    PET_MASTER_PORT: String(d.masterPort),
    PET_NPROC_PER_NODE: String(d.nprocPerNode),
  };
}

/** `jax.distributed.initialize()` picks these up (as set by Kubeflow Trainer). */
export function jaxEnv(r: PeersResult, o: IntegrationOptions = {}): Record<string, string> {
  return {
    JAX_COORDINATOR_ADDRESS: `${r.coordinator.fqdn}:${defaults(o).jaxPort}`,
    JAX_NUM_PROCESSES: String(r.size),
    JAX_PROCESS_ID: String(r.index),
  };
}

/** TensorFlow `TF_CONFIG` for MultiWorkerMirroredStrategy: every pod a worker. */
export function tfConfig(r: PeersResult, o: IntegrationOptions = {}): string {
  const port = defaults(o).tfPort;
  return JSON.stringify({
    cluster: { worker: r.peers.map((p) => `${p.fqdn}:${port}`) },
    task: { type: 'worker', index: r.index },
  });
}

/** The Ray head (index 0): `ray start --address=$RAY_ADDRESS` on the others. */
export function rayAddress(r: PeersResult, o: IntegrationOptions = {}): string {
  return `${r.coordinator.fqdn}:${defaults(o).rayPort}`;
}

/** One env integration. */
export function envFor(
  format: EnvFormat,
  r: PeersResult,
  o: IntegrationOptions = {},
): Record<string, string> {
  switch (format) {
    case 'kubepeers':
      return kubepeersEnv(r, o);
    case 'torch':
      return torchEnv(r, o);
    case 'torchrun':
      return torchrunEnv(r, o);
    case 'jax':
      return jaxEnv(r, o);
    case 'tf':
      return { TF_CONFIG: tfConfig(r, o) };
    case 'ray':
      return { RAY_ADDRESS: rayAddress(r, o) };
  }
}

/** Open MPI hostfile: `host slots=N`, one line per pod, in index order. */
export function openMpiHostfile(r: PeersResult, o: IntegrationOptions = {}): string {
  const slots = defaults(o).nprocPerNode;
  return r.peers.map((p) => `${p.fqdn} slots=${slots}\n`).join('');
}

/** MPICH / Intel MPI hostfile (machinefile): `host:N`. */
export function mpichHostfile(r: PeersResult, o: IntegrationOptions = {}): string {
  const slots = defaults(o).nprocPerNode;
  return r.peers.map((p) => `${p.fqdn}:${slots}\n`).join('');
}

/** The value of `horovodrun -H`: `h1:N,h2:N`. */
export function horovodHosts(r: PeersResult, o: IntegrationOptions = {}): string {
  const slots = defaults(o).nprocPerNode;
  return r.peers.map((p) => `${p.fqdn}:${slots}`).join(',');
}

/** The roster as plain data (what the JSON roster file holds). */
export function roster(r: PeersResult): Omit<PeersResult, never> {
  const { index, size, jobName, subdomain, namespace, clusterDomain, topology } = r;
  const { self, peers, coordinator, elapsedMs } = r;
  return {
    index,
    size,
    jobName,
    subdomain,
    namespace,
    clusterDomain,
    // A JobSet's layout or a LeaderWorkerSet group: the roster still names every pod (peerHostname).
    ...(r.replicatedJobs ? { replicatedJobs: r.replicatedJobs } : {}),
    ...(r.jobSetCoordinator !== undefined ? { jobSetCoordinator: r.jobSetCoordinator } : {}),
    ...(r.leaderWorkerSet ? { leaderWorkerSet: true } : {}),
    topology,
    self,
    peers,
    coordinator,
    elapsedMs,
  };
}

/** POSIX shell `export NAME='value'` lines that survive any value (single quotes escaped). */
export function shellExports(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'\n`)
    .join('');
}

/** Writes a file atomically: a temporary file in the same directory, then rename. */
export async function writeFileAtomic(path: string, content: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, content, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
