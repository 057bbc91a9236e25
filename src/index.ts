/**
 * kubepeers: a start-up barrier for the pods of a Kubernetes Indexed Job. The barrier, its options and
 * results, the errors, the integration formats and the HTTP helpers; the building blocks under them are in
 * `kubepeers/internals`.
 * @packageDocumentation
 */
export { waitForPeers, type Peer, type PeersResult } from './barrier.js';
export {
  AUTO_MESH_MAX_SIZE,
  DEFAULT_PORT,
  type Progress,
  type Topology,
  type WaitForPeersOptions,
} from './options.js';
export type { JobNames, ReplicatedJobLayout } from './identity.js';
export {
  AbortedError,
  ConfigError,
  ConnectError,
  DnsError,
  HandshakeError,
  KubepeersError,
  ListenError,
  OutputError,
  TimeoutError,
  type DnsFailureReason,
  type HandshakeFailureReason,
  type KubepeersErrorCode,
  type MissingPeer,
} from './errors.js';
export {
  ENV_FORMATS,
  envFor,
  horovodHosts,
  jaxEnv,
  kubepeersEnv,
  mpichHostfile,
  openMpiHostfile,
  rayAddress,
  roster,
  shellExports,
  tfConfig,
  torchEnv,
  torchrunEnv,
  type EnvFormat,
  type IntegrationOptions,
} from './outputs.js';
export {
  createMetrics,
  probePeersHttp,
  prometheusText,
  serveStatus,
  type BarrierMetrics,
  type BarrierStatus,
  type DnsOutcome,
  type HttpProbeOptions,
  type StatusServer,
  type StatusServerOptions,
} from './status.js';
