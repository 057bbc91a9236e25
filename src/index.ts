/**
 * kubepeers: a start-up barrier for the pods of a Kubernetes Indexed Job.
 * @packageDocumentation
 */
export { waitForPeers, type Peer, type PeersResult } from './barrier.js';
export {
  AUTO_MESH_MAX_SIZE,
  DEFAULT_PORT,
  ENV,
  parseDuration,
  resolveConfig,
  type Progress,
  type Topology,
  type WaitForPeersOptions,
} from './options.js';
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
  parseHosts,
  parseResolvConf,
  peerFqdn,
  peerHostname,
  serviceFqdn,
  type HostsEntry,
  type JobNames,
  type ResolvConf,
} from './identity.js';
export {
  StubResolver,
  type AddressType,
  type DnsAnswer,
  type ResolverOptions,
  type ResolverStats,
} from './resolver.js';
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
  writeFileAtomic,
  type EnvFormat,
  type IntegrationOptions,
} from './outputs.js';
export {
  probePeersHttp,
  serveStatus,
  type BarrierStatus,
  type HttpProbeOptions,
  type StatusServer,
  type StatusServerOptions,
} from './status.js';
