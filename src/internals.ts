/**
 * `kubepeers/internals`: the building blocks under `waitForPeers()`, for tools and tests that need them
 * (the stub resolver, how settings are resolved, the parsers of `/etc/hosts` and `/etc/resolv.conf`, the
 * peer names, an atomic file write). Not covered by semver: they may change in any minor release.
 * @packageDocumentation
 */
export { ENV, parseDuration, resolveConfig, type Config, type Nameserver } from './options.js';
export {
  jobSetPlace,
  jobSetPosition,
  layoutPlace,
  layoutSize,
  parseHosts,
  parsePodInfo,
  parseResolvConf,
  rankOfPlace,
  peerFqdn,
  peerHostname,
  serviceFqdn,
  type HostsEntry,
  type JobSetPosition,
  type ResolvConf,
} from './identity.js';
export {
  StubResolver,
  type AddressType,
  type DnsAnswer,
  type ResolverOptions,
  type ResolverStats,
} from './resolver.js';
export { writeFileAtomic } from './outputs.js';
