import { describe, expect, it } from 'vitest';
import {
  jobSetPlace,
  jobSetPosition,
  layoutPlace,
  layoutSize,
  parseHosts,
  parsePodInfo,
  parseResolvConf,
  peerFqdn,
  peerHostname,
  rankOfPlace,
  serviceFqdn,
} from '../src/internals.js';
import { scopeJobName } from '../src/identity.js';
import { kubeletHosts } from './helpers/pods.js';

const KUBELET_HOSTS = `${kubeletHosts('10.244.1.7', 'example-job-2.headless-svc.default.svc.cluster.local', 'example-job-2')}
# Entries added by HostAliases.
127.0.0.1\tfoo.local\tbar.local
`;

describe('parseHosts', () => {
  it('reads the pod FQDN kubelet writes for a pod with a subdomain', () => {
    expect(parseHosts(KUBELET_HOSTS, 'example-job-2')).toEqual({
      address: '10.244.1.7',
      subdomain: 'headless-svc',
      namespace: 'default',
      clusterDomain: 'cluster.local',
    });
  });

  it('handles IPv6 pods, custom cluster domains and upper case', () => {
    const text = 'fd00:10:244:1::7  Train-0.Workers.ML-Team.svc.k8s.example.com.  train-0\n';
    expect(parseHosts(text, 'train-0')).toEqual({
      address: 'fd00:10:244:1::7',
      subdomain: 'workers',
      namespace: 'ml-team',
      clusterDomain: 'k8s.example.com',
    });
  });

  it('returns the pod IP in canonical text, and knows loopback in any spelling', () => {
    const text =
      '0:0:0:0:0:0:0:1 job-0\n' +
      'FD00:0010:0244:0001:0000:0000:0000:0007  job-0.svc.ns.svc.cluster.local  job-0\n' +
      '::ffff:10.1.2.3 job-1\n';
    expect(parseHosts(text, 'job-0')).toMatchObject({ address: 'fd00:10:244:1::7', subdomain: 'svc' });
    expect(parseHosts('0:0:0:0:0:0:0:1 job-0\nfd00::1:0:0:0:a job-0\n', 'job-0')).toEqual({
      address: 'fd00:0:0:1::a',
    });
    expect(parseHosts(text, 'job-1')).toEqual({ address: '10.1.2.3' });
  });

  it('falls back to the short-name line of a pod without subdomain, ignoring loopback lines', () => {
    const text = '127.0.1.1 job-0\n10.1.2.3\tjob-0\n';
    expect(parseHosts(text, 'job-0')).toEqual({ address: '10.1.2.3' });
  });

  it('returns undefined when the host is absent, and skips comments and garbage', () => {
    expect(
      parseHosts('# 10.0.0.1 job-0.s.n.svc.cluster.local\nnot-an-ip job-0\n\n', 'job-0'),
    ).toBeUndefined();
    expect(parseHosts(KUBELET_HOSTS, 'example-job-3')).toBeUndefined();
  });

  it('does not take a longer hostname for ours', () => {
    const text = '10.0.0.9 job-10.svc.ns.svc.cluster.local job-10\n';
    expect(parseHosts(text, 'job-1')).toBeUndefined();
  });
});

describe('parseResolvConf', () => {
  it('reads nameservers and the namespace and cluster domain from a ClusterFirst search list', () => {
    const text = `search default.svc.cluster.local svc.cluster.local cluster.local us-central1-b.c.proj.internal google.internal
nameserver 10.96.0.10
options ndots:5
`;
    expect(parseResolvConf(text)).toEqual({
      nameservers: ['10.96.0.10'],
      search: [
        'default.svc.cluster.local',
        'svc.cluster.local',
        'cluster.local',
        'us-central1-b.c.proj.internal',
        'google.internal',
      ],
      namespace: 'default',
      clusterDomain: 'cluster.local',
    });
  });

  it('keeps several nameservers in order (IPv6 too), drops malformed ones, last search wins', () => {
    const text = `nameserver 169.254.20.10 # NodeLocal DNSCache
nameserver fd00::a
nameserver not-an-address
; comment
search first.example
search ml.svc.corp.local
`;
    expect(parseResolvConf(text)).toMatchObject({
      nameservers: ['169.254.20.10', 'fd00::a'],
      search: ['ml.svc.corp.local'],
      namespace: 'ml',
      clusterDomain: 'corp.local',
    });
  });

  it('returns nameservers in canonical text, zones kept', () => {
    const text = `nameserver FD00:0:0:0:0:0:0:A
nameserver ::0001
nameserver FE80::0:1%eth0
nameserver fe80:0::1%2
nameserver ::ffff:10.96.0.10
`;
    expect(parseResolvConf(text).nameservers).toEqual([
      'fd00::a',
      '::1',
      'fe80::1%eth0',
      'fe80::1%2',
      '10.96.0.10',
    ]);
  });

  it('has no namespace when dnsPolicy is Default (host resolv.conf)', () => {
    const r = parseResolvConf('nameserver 8.8.8.8\nsearch example.com\n');
    expect(r.namespace).toBeUndefined();
    expect(r.clusterDomain).toBeUndefined();
  });
});

describe('peer names', () => {
  const names = { jobName: 'train', subdomain: 'workers', namespace: 'ml', clusterDomain: 'cluster.local' };
  it('builds the deterministic names of an Indexed Job', () => {
    expect(peerHostname(names, 3)).toBe('train-3');
    expect(peerFqdn(names, 3)).toBe('train-3.workers.ml.svc.cluster.local');
    expect(serviceFqdn(names)).toBe('workers.ml.svc.cluster.local');
  });
});

describe('JobSet peer names', () => {
  const layout = [
    { name: 'driver', replicas: 1, podsPerJob: 1 },
    { name: 'workers', replicas: 2, podsPerJob: 4 },
  ];
  const names = { jobName: 'train', subdomain: 'train', namespace: 'ml', clusterDomain: 'cluster.local' };

  it('numbers the pods of several replicated jobs in spec order, then job index, then pod index', () => {
    const js = { ...names, replicatedJobs: layout };
    expect(layoutSize(layout)).toBe(9);
    expect(Array.from({ length: 9 }, (_, k) => peerHostname(js, k))).toEqual([
      'train-driver-0-0',
      'train-workers-0-0',
      'train-workers-0-1',
      'train-workers-0-2',
      'train-workers-0-3',
      'train-workers-1-0',
      'train-workers-1-1',
      'train-workers-1-2',
      'train-workers-1-3',
    ]);
    expect(peerFqdn(js, 7)).toBe('train-workers-1-2.train.ml.svc.cluster.local');
    expect(serviceFqdn(js)).toBe('train.ml.svc.cluster.local');
    expect(jobSetPlace(layout, { replicatedJob: 'workers', jobIndex: 1, podIndex: 2 })).toBe(7);
    expect(jobSetPlace(layout, { replicatedJob: 'workers', jobIndex: 2, podIndex: 0 })).toBeUndefined();
    expect(jobSetPlace(layout, { replicatedJob: 'workers', jobIndex: 0, podIndex: 4 })).toBeUndefined();
    expect(jobSetPlace(layout, { replicatedJob: 'evaluator', jobIndex: 0, podIndex: 0 })).toBeUndefined();
    expect(() => jobSetPosition(layout, 9)).toThrow(RangeError);
  });

  it('gives the coordinator pod rank 0 and keeps the order of the others; place and rank are inverses', () => {
    const js = { ...names, replicatedJobs: layout, jobSetCoordinator: 5 }; // train-workers-1-0
    const hosts = Array.from({ length: 9 }, (_, k) => peerHostname(js, k));
    expect(hosts.slice(0, 3)).toEqual(['train-workers-1-0', 'train-driver-0-0', 'train-workers-0-0']);
    expect(hosts.slice(5)).toEqual([
      'train-workers-0-3',
      'train-workers-1-1',
      'train-workers-1-2',
      'train-workers-1-3',
    ]);
    expect(new Set(hosts).size).toBe(9);
    for (let k = 0; k < 9; k++) expect(rankOfPlace(js, layoutPlace(js, k))).toBe(k);
  });
});

describe('parsePodInfo', () => {
  it('reads a downward API labels file as kubelet writes it', () => {
    const text =
      'batch.kubernetes.io/job-completion-index="2"\n' +
      'jobset.sigs.k8s.io/coordinator="train-driver-0-0.train"\n' +
      'jobset.sigs.k8s.io/jobset-name="train"\n' +
      'note="say \\"hi\\"\\n"\n' +
      'garbage line\n';
    const labels = parsePodInfo(text);
    expect(labels.get('batch.kubernetes.io/job-completion-index')).toBe('2');
    expect(labels.get('jobset.sigs.k8s.io/coordinator')).toBe('train-driver-0-0.train');
    expect(labels.get('jobset.sigs.k8s.io/jobset-name')).toBe('train');
    expect(labels.get('note')).toBe('say "hi"\n');
    expect(labels.size).toBe(4);
  });
});

describe('scopeJobName: the job name the handshake binds', () => {
  const layout = [
    { name: 'driver', replicas: 1, podsPerJob: 1 },
    { name: 'workers', replicas: 2, podsPerJob: 2 },
  ];
  it("is an Indexed Job's name unchanged (the wire stays what older pods send)", () => {
    expect(scopeJobName({ jobName: 'train' })).toBe('train');
  });
  it('binds a JobSet layout and its coordinator: pods that number the JobSet differently differ', () => {
    const base = scopeJobName({ jobName: 'js', replicatedJobs: layout });
    expect(base).toBe('js/driver:1x1,workers:2x2;c0');
    expect(scopeJobName({ jobName: 'js', replicatedJobs: layout, jobSetCoordinator: 3 })).toBe(
      'js/driver:1x1,workers:2x2;c3',
    );
    expect(scopeJobName({ jobName: 'js', replicatedJobs: [layout[1]!, layout[0]!] })).not.toBe(base);
    expect(
      scopeJobName({ jobName: 'js', replicatedJobs: [layout[0]!, { ...layout[1]!, podsPerJob: 3 }] }),
    ).not.toBe(base);
  });
  it('binds a long layout by its SHA-256 (deterministic, 32 hex digits)', () => {
    const many = Array.from({ length: 20 }, (_, k) => ({
      name: `replicated-${k}`,
      replicas: 2,
      podsPerJob: 8,
    }));
    const a = scopeJobName({ jobName: 'js', replicatedJobs: many });
    expect(a).toMatch(/^js\/sha256:[0-9a-f]{32}$/);
    expect(scopeJobName({ jobName: 'js', replicatedJobs: many.map((r) => ({ ...r })) })).toBe(a);
    expect(scopeJobName({ jobName: 'js', replicatedJobs: many, jobSetCoordinator: 1 })).not.toBe(a);
  });
});
