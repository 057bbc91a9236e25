/**
 * TypeScript types for JobSet (`jobset.x-k8s.io/v1alpha2`, kind `JobSet`): no npm package ships its
 * schema, so these are written from its Go API, kubernetes-sigs/jobset `api/jobset/v1alpha2/jobset_types.go`
 * at commit 08dfbdfd682714a9ab929633eca8dc95315187e7 (JobSet, JobSetSpec, ReplicatedJob, DependsOn,
 * Network, SuccessPolicy, FailurePolicy, FailurePolicyRule, StartupPolicy, Coordinator,
 * VolumeClaimPolicy), every field with its JSON name and its kubebuilder enums as literal unions. The
 * status is left out (a manifest does not set it). Numeric minimums and the webhook's rules are checked in
 * test/manifests-family.test.ts.
 */
import type { JobTemplateSpec } from 'kubernetes-types/batch/v1.js';
import type { PersistentVolumeClaim } from 'kubernetes-types/core/v1.js';
import type { ObjectMeta } from 'kubernetes-types/meta/v1.js';

export interface JobSet {
  apiVersion: 'jobset.x-k8s.io/v1alpha2';
  kind: 'JobSet';
  metadata?: ObjectMeta;
  spec?: JobSetSpec;
}

export interface JobSetSpec {
  replicatedJobs?: ReplicatedJob[];
  network?: Network;
  successPolicy?: SuccessPolicy;
  failurePolicy?: FailurePolicy;
  /** Deprecated upstream in favour of dependsOn. */
  startupPolicy?: StartupPolicy;
  suspend?: boolean;
  coordinator?: Coordinator;
  managedBy?: string;
  /** Minimum 0. */
  ttlSecondsAfterFinished?: number;
  /** At most 50. */
  volumeClaimPolicies?: VolumeClaimPolicy[];
}

export interface ReplicatedJob {
  name: string;
  /** Default "default". */
  groupName?: string;
  template: JobTemplateSpec;
  /** Minimum 0, default 1. */
  replicas?: number;
  /** At most 5 (one supported). */
  dependsOn?: DependsOn[];
}

export interface DependsOn {
  name: string;
  status: 'Ready' | 'Complete';
}

export interface Network {
  enableDNSHostnames?: boolean;
  subdomain?: string;
  /** Default true. */
  publishNotReadyAddresses?: boolean;
}

export interface SuccessPolicy {
  operator: 'All' | 'Any';
  targetReplicatedJobs?: string[];
}

export interface FailurePolicy {
  /** Minimum 0. */
  maxRestarts?: number;
  restartStrategy?: 'Recreate' | 'BlockingRecreate' | 'InPlaceRestart';
  rules?: FailurePolicyRule[];
}

export interface FailurePolicyRule {
  name: string;
  action:
    | 'FailJobSet'
    | 'RestartJobSet'
    | 'RestartJobSetAndIgnoreMaxRestarts'
    | 'RestartJob'
    | 'RestartJobAndIgnoreMaxRestarts';
  onJobFailureReasons?: string[];
  onJobFailureMessagePatterns?: string[];
  targetReplicatedJobs?: string[];
}

export interface StartupPolicy {
  startupPolicyOrder: 'AnyOrder' | 'InOrder';
}

export interface Coordinator {
  replicatedJob: string;
  jobIndex?: number;
  podIndex?: number;
}

export interface VolumeClaimPolicy {
  templates?: PersistentVolumeClaim[];
  retentionPolicy?: { whenDeleted?: 'Delete' | 'Retain' };
}
