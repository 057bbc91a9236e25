/**
 * TypeScript types for Kubeflow Trainer v2's TrainJob (`trainer.kubeflow.org/v1alpha1`, kind `TrainJob`):
 * no npm package ships its schema, so these are written from its Go API, kubeflow/trainer
 * `pkg/apis/trainer/v1alpha1/trainjob_types.go` at commit 8c0f5059bd51ec3ba6d6a6a7b2e1471de7bc13b3 (the same
 * fields as tag v2.3.0, which lacks only the two minimums of numNodes and numProcPerNode; runtimePatches
 * replaced v2.1-v2.2's podTemplateOverrides in #3309) (TrainJob,
 * TrainJobSpec, RuntimeRef, Initializer, DatasetInitializer, ModelInitializer, Trainer, RuntimePatch,
 * TrainingRuntimeSpecPatch, JobSetTemplatePatch, JobSetSpecPatch, ReplicatedJobPatch, JobTemplatePatch,
 * JobSpecPatch, PodTemplatePatch, PodSpecPatch, ContainerPatch), every field with its JSON name. The
 * status is left out (a manifest does not set it). The patches' `metadata` is ObjectMeta in Go with "only
 * labels and annotations are allowed" documented: typed here as those two. Numeric limits and the
 * webhooks' rules (pkg/runtime/framework/plugins/jobset/jobset.go, .../torch/torch.go) are checked in
 * test/manifests-family.test.ts.
 */
import type {
  EnvVar,
  Affinity,
  LocalObjectReference,
  PodSchedulingGate,
  PodSecurityContext,
  ResourceRequirements,
  SecurityContext,
  Toleration,
  Volume,
  VolumeMount,
} from 'kubernetes-types/core/v1.js';
import type { ObjectMeta } from 'kubernetes-types/meta/v1.js';

export interface TrainJob {
  apiVersion: 'trainer.kubeflow.org/v1alpha1';
  kind: 'TrainJob';
  /** name: an RFC 1035 label of at most 63 characters. */
  metadata?: ObjectMeta;
  spec?: TrainJobSpec;
}

export interface TrainJobSpec {
  runtimeRef: RuntimeRef;
  initializer?: Initializer;
  trainer?: Trainer;
  /** At most 16, one per manager. */
  runtimePatches?: RuntimePatch[];
  /** Default false. */
  suspend?: boolean;
  /** Minimum 1. */
  activeDeadlineSeconds?: number;
  /** Default "trainer.kubeflow.org/trainjob-controller". */
  managedBy?: 'trainer.kubeflow.org/trainjob-controller' | 'kueue.x-k8s.io/multikueue';
}

export interface RuntimeRef {
  name: string;
  /** Default "trainer.kubeflow.org". */
  apiGroup?: string;
  /** Default "ClusterTrainingRuntime". */
  kind?: string;
}

export interface Initializer {
  dataset?: DatasetInitializer;
  model?: ModelInitializer;
}

export interface DatasetInitializer {
  storageUri?: string;
  env?: EnvVar[];
  secretRef?: LocalObjectReference;
}

export interface ModelInitializer {
  storageUri?: string;
  env?: EnvVar[];
  secretRef?: LocalObjectReference;
}

export interface Trainer {
  image?: string;
  command?: string[];
  args?: string[];
  /** Not the torch runtime's reserved PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT. */
  env?: EnvVar[];
  /** Minimum 0. */
  numNodes?: number;
  resourcesPerNode?: ResourceRequirements;
  /** Minimum 1. Torch: default "auto" (the GPUs, else the CPUs of resourcesPerNode). */
  numProcPerNode?: number;
}

export interface RuntimePatch {
  /** Who owns the patch: a domain-prefixed path. */
  manager: string;
  /** Set by the Trainer's webhook. */
  time?: string;
  trainingRuntimeSpec?: TrainingRuntimeSpecPatch;
}

export interface TrainingRuntimeSpecPatch {
  template?: JobSetTemplatePatch;
}

interface LabelsAndAnnotations {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface JobSetTemplatePatch {
  metadata?: LabelsAndAnnotations;
  spec?: JobSetSpecPatch;
}

export interface JobSetSpecPatch {
  replicatedJobs?: ReplicatedJobPatch[];
}

export interface ReplicatedJobPatch {
  /** A replicated job of the runtime. */
  name: string;
  template?: JobTemplatePatch;
}

export interface JobTemplatePatch {
  metadata?: LabelsAndAnnotations;
  spec?: JobSpecPatch;
}

export interface JobSpecPatch {
  template?: PodTemplatePatch;
}

export interface PodTemplatePatch {
  metadata?: LabelsAndAnnotations;
  spec?: PodSpecPatch;
}

export interface PodSpecPatch {
  serviceAccountName?: string;
  volumes?: Volume[];
  initContainers?: ContainerPatch[];
  containers?: ContainerPatch[];
  imagePullSecrets?: LocalObjectReference[];
  securityContext?: PodSecurityContext;
  nodeSelector?: Record<string, string>;
  affinity?: Affinity;
  tolerations?: Toleration[];
  schedulingGates?: PodSchedulingGate[];
  /** Minimum 0. */
  terminationGracePeriodSeconds?: number;
}

export interface ContainerPatch {
  /** A container of the runtime's job. */
  name: string;
  /** Not for the containers node, dataset-initializer and model-initializer (their env is spec.trainer's, spec.initializer's). */
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  securityContext?: SecurityContext;
}
