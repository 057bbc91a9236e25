/**
 * kubepeers: a start-up barrier for the pods of a Kubernetes Indexed Job.
 * @packageDocumentation
 */
export { waitForPeers, type Peer, type PeersResult } from './barrier.js';
export { DEFAULT_PORT, ENV, resolveConfig, type Progress, type WaitForPeersOptions } from './options.js';
export {
  AbortedError,
  ConfigError,
  ConnectError,
  DnsError,
  HandshakeError,
  KubepeersError,
  ListenError,
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
