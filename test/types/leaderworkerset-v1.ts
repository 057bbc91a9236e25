/**
 * TypeScript types for LeaderWorkerSet (`leaderworkerset.x-k8s.io/v1`, kind `LeaderWorkerSet`): no npm
 * package ships its schema, so these are written from its Go API, kubernetes-sigs/lws
 * `api/leaderworkerset/v1/leaderworkerset_types.go` at commit 060ab4da17eea1f0865fcbd3236bb1075e2cea32
 * (LeaderWorkerSet, LeaderWorkerSetSpec, LeaderWorkerTemplate, RolloutStrategy,
 * RollingUpdateConfiguration, SubGroupPolicy, NetworkConfig), every field with its JSON name and its
 * kubebuilder enums as literal unions. The status is left out (a manifest does not set it). Numeric
 * limits and the webhook's rules (pkg/webhooks/leaderworkerset_webhook.go) are checked in
 * test/manifests-family.test.ts.
 */
import type { StatefulSetPersistentVolumeClaimRetentionPolicy } from 'kubernetes-types/apps/v1.js';
import type { PersistentVolumeClaim, PodTemplateSpec } from 'kubernetes-types/core/v1.js';
import type { ObjectMeta } from 'kubernetes-types/meta/v1.js';

export interface LeaderWorkerSet {
  apiVersion: 'leaderworkerset.x-k8s.io/v1';
  kind: 'LeaderWorkerSet';
  metadata?: ObjectMeta;
  spec?: LeaderWorkerSetSpec;
}

export interface LeaderWorkerSetSpec {
  /** Groups. Default 1, minimum 0, maximum 1000000. */
  replicas?: number;
  leaderWorkerTemplate: LeaderWorkerTemplate;
  rolloutStrategy?: RolloutStrategy;
  /** Default "LeaderCreated". */
  startupPolicy?: 'LeaderCreated' | 'LeaderReady';
  networkConfig?: NetworkConfig;
}

export interface LeaderWorkerTemplate {
  /** Default: the worker template. */
  leaderTemplate?: PodTemplateSpec;
  workerTemplate: PodTemplateSpec;
  /** Pods per group, the leader included. Default 1, minimum 1. */
  size?: number;
  /** Default "RecreateGroupOnPodRestart"; "Default" is deprecated for "None". */
  restartPolicy?: 'Default' | 'RecreateGroupOnPodRestart' | 'RecreateGroupAfterStart' | 'None';
  subGroupPolicy?: SubGroupPolicy;
  volumeClaimTemplates?: PersistentVolumeClaim[];
  persistentVolumeClaimRetentionPolicy?: StatefulSetPersistentVolumeClaimRetentionPolicy;
}

export interface RolloutStrategy {
  /** Default "RollingUpdate". */
  type: 'RollingUpdate';
  rollingUpdateConfiguration?: RollingUpdateConfiguration;
}

export interface RollingUpdateConfiguration {
  /** Default 0. */
  partition?: number;
  /** An int or a percentage. Default 1. */
  maxUnavailable?: number | string;
  /** An int or a percentage. Default 0. */
  maxSurge?: number | string;
}

export interface SubGroupPolicy {
  /** Default "LeaderWorker". */
  subGroupPolicyType?: 'LeaderWorker' | 'LeaderExcluded';
  subGroupSize?: number;
}

export interface NetworkConfig {
  /** The headless Service: one for all groups (Shared, named after the LeaderWorkerSet) or one per group. */
  subdomainPolicy: 'Shared' | 'UniquePerReplica';
}
