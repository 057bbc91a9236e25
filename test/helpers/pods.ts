/**
 * In-process "pods" for integration tests: each gets its own 127.0.0.x address and its own /etc/hosts and
 * /etc/resolv.conf files written the way kubelet writes them.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WaitForPeersOptions } from '../../src/index.js';

export interface JobSpec {
  job: string;
  svc: string;
  ns: string;
  size: number;
  /** Address of pod i. */
  ip: (i: number) => string;
  port: number;
  dns: { address: string; port: number };
}

/** The /etc/hosts kubelet writes for a pod with `hostname` and `subdomain`. */
export function kubeletHosts(ip: string, fqdn: string, hostname: string): string {
  return `# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
fe00::0\tip6-mcastprefix
fe00::1\tip6-allnodes
fe00::2\tip6-allrouters
${ip}\t${fqdn}\t${hostname}
`;
}

export async function podFiles(
  dir: string,
  spec: JobSpec,
  i: number,
): Promise<{ hostsPath: string; resolvConfPath: string }> {
  const podDir = join(dir, `${spec.job}-${i}`);
  await mkdir(podDir, { recursive: true });
  const hostsPath = join(podDir, 'hosts');
  const resolvConfPath = join(podDir, 'resolv.conf');
  const host = `${spec.job}-${i}`;
  await writeFile(
    hostsPath,
    kubeletHosts(spec.ip(i), `${host}.${spec.svc}.${spec.ns}.svc.cluster.local`, host),
  );
  await writeFile(
    resolvConfPath,
    `search ${spec.ns}.svc.cluster.local svc.cluster.local cluster.local
nameserver ${spec.dns.address}
options ndots:5
`,
  );
  return { hostsPath, resolvConfPath };
}

/** Options for pod i of `spec`, as if running inside that pod. */
export async function podOptions(
  dir: string,
  spec: JobSpec,
  i: number,
  extra: WaitForPeersOptions = {},
): Promise<WaitForPeersOptions> {
  return {
    ...(await podFiles(dir, spec, i)),
    env: { JOB_COMPLETION_INDEX: String(i), KUBEPEERS_SIZE: String(spec.size) },
    hostname: `${spec.job}-${i}`,
    port: spec.port,
    nameservers: [`${spec.dns.address}:${spec.dns.port}`],
    retryMinDelayMs: 50,
    retryMaxDelayMs: 1000,
    lingerMs: 0,
    ...extra,
  };
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kubepeers-pods-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
