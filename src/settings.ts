/**
 * Every default and env variable name of kubepeers, written once. The library's resolution
 * (src/options.ts), the integration formats (src/outputs.ts), the CLI's flags, its `--help` and the option
 * table of docs/cli.md (src/cli/flags.ts, checked by test/cli.test.ts) all take them from here.
 */

/** Defaults of the library's options and of the integration formats' ports. */
export const DEFAULTS = {
  /** The responder's TCP port. Not used by torch (29400, 29500), Ray (6379), MPI/ssh (22, 2222) or PaddlePaddle (55527). */
  port: 17293,
  timeoutMs: 600_000,
  lingerMs: 600_000,
  retryMinDelayMs: 250,
  retryMaxDelayMs: 10_000,
  dnsTimeoutMs: 1000,
  dnsAttempts: 3,
  connectTimeoutMs: 3000,
  /** torch `MASTER_PORT` / torchrun `PET_MASTER_PORT`. */
  masterPort: 29500,
  /** Processes per pod (torchrun, hostfile slots, Horovod). */
  nprocPerNode: 1,
  /** The JAX coordinator service on index 0. */
  jaxPort: 1234,
  /** Each TensorFlow worker in `TF_CONFIG`. */
  tfPort: 2222,
  /** The Ray head (GCS). */
  rayPort: 6379,
  /**
   * The CLI's env formats when `--format` is not given: kubepeers' own variables and torch's (`env://`
   * and torchrun's `PET_*`), which only torch reads. `RAY_ADDRESS`, `TF_CONFIG` and `JAX_*` are exported
   * only when asked for (`--format ray`, ..., or `all`): a bare `ray.init()` dials `RAY_ADDRESS`, and
   * TensorFlow builds its cluster from `TF_CONFIG`, in programs that never asked for a Ray or TF cluster.
   */
  formats: ['kubepeers', 'torch', 'torchrun'],
} as const;

/** Largest job that `topology: 'auto'` checks as a full mesh; bigger jobs use the star. */
export const AUTO_MESH_MAX_SIZE = 256;

/**
 * The coordinator's Service poll interval by default: `size / 5` ms within [10, 2000]. An answer holds
 * about 16 bytes per Ready pod, so this is about 80 KB of answers a second whatever the size (100 polls a
 * second up to 50 pods, 5 at 1 000), and only while a member is missing.
 */
export function defaultPollMs(size: number): number {
  return Math.min(2000, Math.max(10, Math.round(size / 5)));
}
/** {@link defaultPollMs} in words, for `--help` and the docs. */
export const DEFAULT_POLL_TEXT = 'size / 5 ms in [10ms, 2s]';

/** Env variables read by the library. */
export const ENV = {
  index: 'JOB_COMPLETION_INDEX',
  size: 'KUBEPEERS_SIZE',
  jobName: 'KUBEPEERS_JOB_NAME',
  subdomain: 'KUBEPEERS_SUBDOMAIN',
  namespace: 'KUBEPEERS_NAMESPACE',
  clusterDomain: 'KUBEPEERS_CLUSTER_DOMAIN',
  runId: 'KUBEPEERS_RUN_ID',
  secret: 'KUBEPEERS_SECRET',
  port: 'KUBEPEERS_PORT',
  timeoutMs: 'KUBEPEERS_TIMEOUT',
  pollIntervalMs: 'KUBEPEERS_POLL_INTERVAL',
  lingerMs: 'KUBEPEERS_LINGER',
  topology: 'KUBEPEERS_TOPOLOGY',
  jobSetName: 'KUBEPEERS_JOBSET_NAME',
  replicatedJobs: 'KUBEPEERS_REPLICATED_JOBS',
  podsPerJob: 'KUBEPEERS_PODS_PER_JOB',
  labelsPath: 'KUBEPEERS_LABELS_FILE',
} as const;

/** Where kubepeers looks for a downward API labels file by default (the path of the Kubernetes docs' example). */
export const DEFAULT_LABELS_PATH = '/etc/podinfo/labels';

/** The pod labels JobSet sets (kubernetes-sigs/jobset api/jobset/v1alpha2/jobset_types.go) and the Job's own. */
export const JOBSET_LABELS = {
  name: 'jobset.sigs.k8s.io/jobset-name',
  uid: 'jobset.sigs.k8s.io/jobset-uid',
  replicatedJob: 'jobset.sigs.k8s.io/replicatedjob-name',
  replicas: 'jobset.sigs.k8s.io/replicatedjob-replicas',
  globalReplicas: 'jobset.sigs.k8s.io/global-replicas',
  jobIndex: 'jobset.sigs.k8s.io/job-index',
  jobGlobalIndex: 'jobset.sigs.k8s.io/job-global-index',
  restartAttempt: 'jobset.sigs.k8s.io/restart-attempt',
  coordinator: 'jobset.sigs.k8s.io/coordinator',
  completionIndex: 'batch.kubernetes.io/job-completion-index',
} as const;

/** A duration as the CLI writes it: `10m`, `90s`, `1500ms`, `1h`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
