import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_PORT, type WaitForPeersOptions } from '../src/index.js';
import { parseDuration, peerFqdn, peerHostname, resolveConfig } from '../src/internals.js';
import { formatDuration } from '../src/settings.js';

let hostsPath: string;
let resolvConfPath: string;
let bareHosts: string;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kubepeers-options-'));
  hostsPath = join(dir, 'hosts');
  resolvConfPath = join(dir, 'resolv.conf');
  bareHosts = join(dir, 'hosts-bare');
  await writeFile(
    hostsPath,
    '127.0.0.1 localhost\n10.244.1.7\ttrain-2.workers.ml.svc.cluster.local\ttrain-2\n',
  );
  await writeFile(bareHosts, '127.0.0.1 localhost\n10.244.1.7\ttrain-2\n');
  await writeFile(
    resolvConfPath,
    'search ml.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n',
  );
});

const base = (extra: WaitForPeersOptions = {}): WaitForPeersOptions => ({
  hostsPath,
  resolvConfPath,
  hostname: 'train-2',
  env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: '4' },
  ...extra,
});

async function configError(options: WaitForPeersOptions): Promise<ConfigError> {
  const err = await resolveConfig(options).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  expect(err).toMatchObject({ code: 'ERR_KUBEPEERS_CONFIG' });
  return err as ConfigError;
}

describe('resolveConfig', () => {
  it('needs nothing but the index and size env inside a pod', async () => {
    const c = await resolveConfig(base());
    expect(c).toMatchObject({
      index: 2,
      size: 4,
      jobName: 'train',
      subdomain: 'workers',
      namespace: 'ml',
      clusterDomain: 'cluster.local',
      selfAddress: '10.244.1.7',
      listenAddress: '10.244.1.7',
      nameservers: [{ address: '10.96.0.10', port: 53 }],
      port: DEFAULT_PORT,
      family: 4,
      timeoutMs: 600_000,
      runId: '',
    });
  });

  it('options win over env, env wins over files', async () => {
    const c = await resolveConfig(
      base({
        env: {
          JOB_COMPLETION_INDEX: '2',
          KUBEPEERS_SIZE: '4',
          KUBEPEERS_SUBDOMAIN: 'from-env',
          KUBEPEERS_PORT: '9000',
          KUBEPEERS_RUN_ID: 'uid-1',
        },
        namespace: 'from-option',
        nameservers: ['127.0.0.1:5353', '[fd00::1]:53'],
      }),
    );
    expect(c).toMatchObject({
      subdomain: 'from-env',
      namespace: 'from-option',
      port: 9000,
      runId: 'uid-1',
      nameservers: [
        { address: '127.0.0.1', port: 5353 },
        { address: 'fd00::1', port: 53 },
      ],
    });
  });

  it('takes namespace and domain from resolv.conf when /etc/hosts has only the short name', async () => {
    const c = await resolveConfig(base({ hostsPath: bareHosts, subdomain: 'workers' }));
    expect(c).toMatchObject({ namespace: 'ml', clusterDomain: 'cluster.local', selfAddress: '10.244.1.7' });
  });

  it('names a bad index, where it came from and what was expected', async () => {
    const err = await configError(base({ env: { JOB_COMPLETION_INDEX: 'two', KUBEPEERS_SIZE: '4' } }));
    expect(err.message).toBe(
      'index is "two" (from env JOB_COMPLETION_INDEX); expected an integer from 0 to 3',
    );
    expect(err).toMatchObject({ setting: 'index', source: 'env JOB_COMPLETION_INDEX', value: 'two' });
    const out = await configError(base({ env: { JOB_COMPLETION_INDEX: '4', KUBEPEERS_SIZE: '4' } }));
    expect(out.message).toContain('expected an integer from 0 to 3');
  });

  it('says that size must be given because Kubernetes does not expose it', async () => {
    const err = await configError(base({ env: { JOB_COMPLETION_INDEX: '2' } }));
    expect(err.message).toContain('size is missing (from option size or env KUBEPEERS_SIZE)');
    expect(err.message).toContain('Kubernetes does not expose it');
  });

  it('rejects a hostname that is not <job>-<index> unless the job name is given', async () => {
    const err = await configError(base({ hostname: 'train-7' }));
    expect(err.message).toContain('jobName is "train-7" (from hostname (option hostname))');
    const c = await resolveConfig(
      base({ hostname: 'train-7', hostsPath: bareHosts, jobName: 'train', subdomain: 'workers' }),
    );
    expect(c.jobName).toBe('train');
  });

  it('rejects names that are not DNS labels, and job names too long for their pod hostnames', async () => {
    expect((await configError(base({ jobName: 'Train_Job' }))).message).toContain('a DNS label');
    const long = 'j'.repeat(62);
    const err = await configError(
      base({ jobName: long, env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: '100' } }),
    );
    expect(err.message).toContain(`"${long}-99" fits a 63-character DNS label`);
  });

  it('explains a missing subdomain and missing nameservers', async () => {
    const err = await configError(base({ hostsPath: bareHosts }));
    expect(err.message).toContain('subdomain is missing');
    expect(err.message).toContain("pod's spec.subdomain");
    const noDns = await configError(base({ resolvConfPath: join(dir, 'does-not-exist') }));
    expect(noDns.message).toContain('(unreadable)');
    expect(noDns.setting).toBe('nameservers');
  });

  it('rejects bad numbers, ports, nameservers and families', async () => {
    expect((await configError(base({ port: 70000 }))).message).toContain('port is 70000 (from option port)');
    expect(
      (
        await configError(
          base({ env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: '4', KUBEPEERS_PORT: '22x' } }),
        )
      ).source,
    ).toBe('env KUBEPEERS_PORT');
    expect((await configError(base({ timeoutMs: -1 }))).setting).toBe('timeoutMs');
    expect((await configError(base({ nameservers: ['dns.example:53'] }))).message).toContain(
      '"dns.example:53"',
    );
    expect((await configError(base({ family: 5 as never }))).setting).toBe('family');
    expect((await configError(base({ retryMinDelayMs: 500, retryMaxDelayMs: 100 }))).setting).toBe(
      'retryMaxDelayMs',
    );
  });

  it('never shows the secret in an error', async () => {
    const err = await configError(base({ secret: 'x'.repeat(5000) }));
    expect(err.message).not.toContain('xxxx');
  });

  it('reads durations from env with units, and says what a duration looks like', async () => {
    const env = (extra: Record<string, string>) => ({
      env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: '4', ...extra },
    });
    expect(
      (await resolveConfig(base(env({ KUBEPEERS_TIMEOUT: '90s', KUBEPEERS_LINGER: '0' })))).timeoutMs,
    ).toBe(90_000);
    expect((await resolveConfig(base(env({ KUBEPEERS_TIMEOUT: '1.5m' })))).timeoutMs).toBe(90_000);
    expect((await resolveConfig(base(env({ KUBEPEERS_POLL_INTERVAL: '250ms' })))).pollIntervalMs).toBe(250);
    expect((await resolveConfig(base())).pollIntervalMs).toBe(10); // 4 pods: the 10 ms floor
    // As Go and kubectl write them.
    expect((await resolveConfig(base(env({ KUBEPEERS_TIMEOUT: '1m30s' })))).timeoutMs).toBe(90_000);
    expect((await resolveConfig(base(env({ KUBEPEERS_TIMEOUT: '1h2m3.5s' })))).timeoutMs).toBe(3_723_500);
    for (const bad of ['soon', '1m30', 's', '-5s', '1 m', '5sm']) {
      const err = await configError(base(env({ KUBEPEERS_TIMEOUT: bad })));
      expect(err.message).toBe(
        `timeoutMs is "${bad}" (from env KUBEPEERS_TIMEOUT); expected a duration from 1 ms to 2147483647 ms (e.g. 1500, 90s, 10m, 1m30s)`,
      );
    }
  });

  it('picks the topology: auto is a mesh up to 256 pods and a star above; env and option override', async () => {
    const sized = (size: number, extra: Record<string, string> = {}): WaitForPeersOptions =>
      base({ env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: String(size), ...extra } });
    expect((await resolveConfig(sized(256))).topology).toBe('mesh');
    expect((await resolveConfig(sized(257))).topology).toBe('star');
    expect((await resolveConfig(sized(4, { KUBEPEERS_TOPOLOGY: 'star' }))).topology).toBe('star');
    expect((await resolveConfig({ ...sized(1000), topology: 'mesh' })).topology).toBe('mesh');
    const err = await configError(sized(4, { KUBEPEERS_TOPOLOGY: 'ring' }));
    expect(err.message).toBe(
      'topology is "ring" (from env KUBEPEERS_TOPOLOGY); expected "mesh", "star" or "auto"',
    );
  });

  it('picks AAAA for an IPv6 pod', async () => {
    const v6 = join(dir, 'hosts-v6');
    await writeFile(v6, 'fd00::7 train-2.workers.ml.svc.cluster.local train-2\n');
    expect((await resolveConfig(base({ hostsPath: v6 }))).family).toBe(6);
  });
});

describe('formatDuration', () => {
  it('writes a default the way the CLI reads it back', () => {
    expect([600_000, 90_000, 1500, 3_600_000, 1].map(formatDuration)).toEqual([
      '10m',
      '90s',
      '1500ms',
      '1h',
      '1ms',
    ]);
    for (const ms of [600_000, 90_000, 1500, 3_600_000, 1, 61_000])
      expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});

describe('resolveConfig in a JobSet', () => {
  // JobSet "train": driver (1 child Job of 1 pod), workers (2 child Jobs of 4 pods); this pod is
  // train-workers-1-2 under JobSet's default subdomain, the JobSet name.
  let jsHosts: string;
  let labels: string;
  let labelsOne: string;
  let labelsCoord: string;
  const LABELS_TWO = [
    'batch.kubernetes.io/job-completion-index="2"',
    'jobset.sigs.k8s.io/jobset-name="train"',
    'jobset.sigs.k8s.io/jobset-uid="6f1c0d1e-uid"',
    'jobset.sigs.k8s.io/restart-attempt="1"',
    'jobset.sigs.k8s.io/replicatedjob-name="workers"',
    'jobset.sigs.k8s.io/replicatedjob-replicas="2"',
    'jobset.sigs.k8s.io/global-replicas="3"',
    'jobset.sigs.k8s.io/job-index="1"',
    'jobset.sigs.k8s.io/job-global-index="2"',
  ];
  beforeAll(async () => {
    jsHosts = join(dir, 'hosts-jobset');
    await writeFile(
      jsHosts,
      '127.0.0.1 localhost\n10.244.2.9\ttrain-workers-1-2.train.ml.svc.cluster.local\ttrain-workers-1-2\n',
    );
    labels = join(dir, 'labels-two');
    await writeFile(labels, `${LABELS_TWO.join('\n')}\n`);
    labelsOne = join(dir, 'labels-one');
    await writeFile(
      labelsOne,
      `${LABELS_TWO.map((l) => l.replace(/global-replicas="3"/, 'global-replicas="2"').replace(/job-global-index="2"/, 'job-global-index="1"')).join('\n')}\n`,
    );
    labelsCoord = join(dir, 'labels-coord');
    await writeFile(
      labelsCoord,
      `${LABELS_TWO.join('\n')}\njobset.sigs.k8s.io/coordinator="train-workers-1-0.train"\n`,
    );
  });
  const pod = (extra: WaitForPeersOptions = {}): WaitForPeersOptions => ({
    hostsPath: jsHosts,
    resolvConfPath,
    hostname: 'train-workers-1-2',
    labelsPath: join(dir, 'no-labels'),
    env: { JOB_COMPLETION_INDEX: '2' },
    ...extra,
  });

  it("refuses the child Job's controller-uid as run id (it differs per child Job: nothing would be released)", async () => {
    const withUid = join(dir, 'labels-uid');
    await writeFile(withUid, `${LABELS_TWO.join('\n')}\nbatch.kubernetes.io/controller-uid="child-uid-7"\n`);
    const env = { JOB_COMPLETION_INDEX: '2', KUBEPEERS_PODS_PER_JOB: '4', KUBEPEERS_RUN_ID: 'child-uid-7' };
    const err = await configError(
      pod({ labelsPath: withUid, replicatedJobs: 'driver:1x1,workers:2x4', env }),
    );
    expect(err.message).toContain('runId is "child-uid-7" (from env KUBEPEERS_RUN_ID)');
    expect(err.message).toContain("the child Job's uid");
    // Any other run id is the user's to choose.
    const c = await resolveConfig(
      pod({
        labelsPath: withUid,
        replicatedJobs: 'driver:1x1,workers:2x4',
        env: { ...env, KUBEPEERS_RUN_ID: 'r1' },
      }),
    );
    expect(c.runId).toBe('r1');
  });

  it('one replicated job: needs only the pods per child Job when the labels file is mounted', async () => {
    const c = await resolveConfig(pod({ labelsPath: labelsOne, env: { KUBEPEERS_PODS_PER_JOB: '4' } }));
    expect(c).toMatchObject({
      index: 6,
      size: 8,
      jobName: 'train',
      subdomain: 'train',
      namespace: 'ml',
      replicatedJobs: [{ name: 'workers', replicas: 2, podsPerJob: 4 }],
      jobSetCoordinator: 0,
      runId: '6f1c0d1e-uid/1',
      selfAddress: '10.244.2.9',
    });
    expect(peerFqdn(c, 0)).toBe('train-workers-0-0.train.ml.svc.cluster.local');
    expect(peerHostname(c, c.index)).toBe('train-workers-1-2');
    // KUBEPEERS_SIZE (all pods of the replicated job) makes the pods per child Job too; one that does not
    // divide into the 2 child Jobs does not.
    expect(
      await resolveConfig(
        pod({ labelsPath: labelsOne, env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: '8' } }),
      ),
    ).toMatchObject({ index: 6, size: 8, replicatedJobs: [{ name: 'workers', replicas: 2, podsPerJob: 4 }] });
    expect(
      await configError(
        pod({ labelsPath: labelsOne, env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: '7' } }),
      ),
    ).toMatchObject({ setting: 'podsPerJob' });
    // The completion index comes from the labels file too when the env has none.
    expect(await resolveConfig(pod({ labelsPath: labelsOne, env: {}, podsPerJob: 4 }))).toMatchObject({
      index: 6,
    });
  });

  it('several replicated jobs: ranks count through them in spec order', async () => {
    const c = await resolveConfig(
      pod({ labelsPath: labels, env: { KUBEPEERS_REPLICATED_JOBS: 'driver:1x1,workers:2x4' } }),
    );
    expect(c).toMatchObject({ index: 7, size: 9, jobName: 'train' });
    expect(peerHostname(c, 0)).toBe('train-driver-0-0');
    // A list in the library, and pods per job for the entries that do not say.
    const d = await resolveConfig(
      pod({
        labelsPath: labels,
        podsPerJob: 4,
        replicatedJobs: [
          { name: 'driver', replicas: 1, podsPerJob: 1 },
          { name: 'workers', replicas: 2 } as never,
        ],
      }),
    );
    expect(d).toMatchObject({ index: 7, size: 9 });
  });

  it('works out a JobSet from the hostname, /etc/hosts and the layout without a labels file', async () => {
    const c = await resolveConfig(pod({ replicatedJobs: 'driver:1x1,workers:2x4' }));
    expect(c).toMatchObject({ index: 7, size: 9, jobName: 'train', subdomain: 'train', runId: '' });
    // A JobSet name with dashes and digits, named explicitly, under a custom subdomain.
    const e = await resolveConfig(
      pod({
        hostname: 'llm-7b-workers-1-2',
        hostsPath: bareHosts,
        subdomain: 'svc',
        jobSetName: 'llm-7b',
        replicatedJobs: 'workers:2x4',
      }),
    );
    expect(e).toMatchObject({ index: 6, size: 8, jobName: 'llm-7b', subdomain: 'svc', namespace: 'ml' });
    // No labels, no subdomain: the JobSet name is the subdomain JobSet defaults to.
    const f = await resolveConfig(
      pod({ hostsPath: bareHosts, hostname: 'llm-7b-workers-1-2', replicatedJobs: 'workers:2x4' }),
    );
    expect(f).toMatchObject({ jobName: 'llm-7b', subdomain: 'llm-7b' });
  });

  it('honours jobset.sigs.k8s.io/coordinator: that pod is rank 0, the others keep their order', async () => {
    const layout = { replicatedJobs: 'driver:1x1,workers:2x4' };
    const c = await resolveConfig(pod({ labelsPath: labelsCoord, ...layout }));
    expect(c).toMatchObject({ index: 7, jobSetCoordinator: 5 });
    expect(peerHostname(c, 0)).toBe('train-workers-1-0');
    expect(peerHostname(c, 1)).toBe('train-driver-0-0');
    // The coordinator pod itself, with its own labels.
    const own = join(dir, 'labels-coord-0');
    await writeFile(
      own,
      (await readFile(labelsCoord, 'utf8')).replace('job-completion-index="2"', 'job-completion-index="0"'),
    );
    const first = await resolveConfig(
      pod({ labelsPath: own, hostname: 'train-workers-1-0', env: { JOB_COMPLETION_INDEX: '0' }, ...layout }),
    );
    expect(first).toMatchObject({ index: 0, size: 9 });
    // The env and the labels file disagree on the completion index.
    const wrong = await configError(
      pod({
        labelsPath: labelsCoord,
        hostname: 'train-workers-1-0',
        env: { JOB_COMPLETION_INDEX: '0' },
        ...layout,
      }),
    );
    expect(wrong.message).toBe(
      `index is "0" (from env JOB_COMPLETION_INDEX); expected the completion index "2" that ${labelsCoord} (label batch.kubernetes.io/job-completion-index) says`,
    );
  });

  it('refuses what contradicts itself, naming both values and where each came from', async () => {
    const order = await configError(pod({ labelsPath: labels, replicatedJobs: 'workers:2x4,driver:1x1' }));
    expect(order.message).toContain('job-global-index) is "2", this order makes it 1');
    const more = await configError(pod({ labelsPath: labels, podsPerJob: 4 }));
    expect(more.message).toContain('has 3 child Jobs');
    expect(more.message).toContain('only 2');
    const replicas = await configError(pod({ labelsPath: labels, replicatedJobs: 'driver:1x1,workers:3x4' }));
    expect(replicas.message).toContain('2 replicas for "workers"');
    const size = await configError(
      pod({ labelsPath: labelsOne, podsPerJob: 4, env: { JOB_COMPLETION_INDEX: '2', KUBEPEERS_SIZE: '9' } }),
    );
    expect(size).toMatchObject({ setting: 'size', source: 'env KUBEPEERS_SIZE', value: '9' });
    expect(size.message).toContain('workers:2x4');
    const beyond = await configError(pod({ replicatedJobs: 'workers:2x2' }));
    expect(beyond).toMatchObject({ setting: 'hostname', value: 'train-workers-1-2' });
    const name = await configError(pod({ labelsPath: labels, jobSetName: 'other', podsPerJob: 4 }));
    expect(name.message).toContain('says is "train"');
    const job = await configError(pod({ labelsPath: labelsOne, podsPerJob: 4, jobName: 'train-workers-1' }));
    expect(job).toMatchObject({ setting: 'jobName' });
    const noPods = await configError(pod({ labelsPath: labelsOne }));
    expect(noPods).toMatchObject({
      setting: 'podsPerJob',
      source: 'option podsPerJob or env KUBEPEERS_PODS_PER_JOB',
    });
    const noReplicas = await configError(pod({ podsPerJob: 4 }));
    expect(noReplicas.message).toContain('the replicas of replicated job "workers"');
    const unknown = await configError(pod({ hostsPath: bareHosts, replicatedJobs: 'evaluator:1x1' }));
    expect(unknown).toMatchObject({ setting: 'jobSetName' });
  });

  it('says what a layout looks like', async () => {
    for (const bad of [
      'workers',
      'workers:2',
      'workers:0x4',
      'Workers:2x4',
      'workers:2x4,workers:1x1',
      ',',
    ]) {
      const err = await configError(pod({ replicatedJobs: bad }));
      expect(err).toMatchObject({ setting: 'replicatedJobs', source: 'option replicatedJobs', value: bad });
      expect(err.message).toContain('name:REPLICASxPODS');
    }
    const coord = join(dir, 'labels-bad-coord');
    await writeFile(
      coord,
      `${LABELS_TWO.join('\n')}\njobset.sigs.k8s.io/coordinator="train-workers-5-0.train"\n`,
    );
    const err = await configError(pod({ labelsPath: coord, replicatedJobs: 'driver:1x1,workers:2x4' }));
    expect(err).toMatchObject({ setting: 'coordinator', value: 'train-workers-5-0.train' });
    const sub = join(dir, 'labels-other-sub');
    await writeFile(
      sub,
      `${LABELS_TWO.join('\n')}\njobset.sigs.k8s.io/coordinator="train-driver-0-0.other"\n`,
    );
    const err2 = await configError(pod({ labelsPath: sub, replicatedJobs: 'driver:1x1,workers:2x4' }));
    expect(err2.message).toContain('a pod of subdomain "train"');
  });
});

describe('resolveConfig under Kubeflow Trainer v2 (PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR set)', () => {
  // A TrainJob "llama" with the torch runtime: a JobSet whose replicated job "node" has one child Job
  // of PET_NNODES pods, llama-node-0-<i> under subdomain llama; kubepeers is given nothing of its own.
  let tjHosts: string;
  let tjLabels: string;
  beforeAll(async () => {
    tjHosts = join(dir, 'hosts-trainjob');
    await writeFile(tjHosts, '10.244.4.3\tllama-node-0-2.llama.ml.svc.cluster.local\tllama-node-0-2\n');
    tjLabels = join(dir, 'labels-trainjob');
    // The Trainer's JobSet has an initializer replicated job before "node": 2 child Jobs in all.
    await writeFile(
      tjLabels,
      [
        'batch.kubernetes.io/job-completion-index="2"',
        'jobset.sigs.k8s.io/global-replicas="2"',
        'jobset.sigs.k8s.io/job-global-index="1"',
        'jobset.sigs.k8s.io/job-index="0"',
        'jobset.sigs.k8s.io/jobset-name="llama"',
        'jobset.sigs.k8s.io/replicatedjob-name="node"',
        'jobset.sigs.k8s.io/replicatedjob-replicas="1"',
      ].join('\n'),
    );
  });
  const PET = {
    PET_NNODES: '4',
    PET_NODE_RANK: '2',
    PET_MASTER_ADDR: 'llama-node-0-0.llama',
    PET_MASTER_PORT: '29500',
  };
  const node = (env: Record<string, string>, extra: WaitForPeersOptions = {}): WaitForPeersOptions => ({
    hostsPath: tjHosts,
    resolvConfPath,
    hostname: 'llama-node-0-2',
    labelsPath: join(dir, 'no-labels'),
    env,
    ...extra,
  });

  it('takes size, rank and coordinator from them: zero config without and with the labels file', async () => {
    // Without the labels file: the child Job llama-node-0 is an Indexed Job of PET_NNODES pods.
    const c = await resolveConfig(node({ ...PET, JOB_COMPLETION_INDEX: '2' }));
    expect(c).toMatchObject({ index: 2, size: 4, jobName: 'llama-node-0', subdomain: 'llama' });
    expect(peerHostname(c, 0)).toBe('llama-node-0-0');
    // PET_NODE_RANK stands in for JOB_COMPLETION_INDEX.
    expect(await resolveConfig(node(PET))).toMatchObject({ index: 2, size: 4 });
    // With JobSet's labels: the initializer's child Job does not count, PET_NNODES says who trains.
    const j = await resolveConfig(node({ ...PET, JOB_COMPLETION_INDEX: '2' }, { labelsPath: tjLabels }));
    expect(j).toMatchObject({
      index: 2,
      size: 4,
      jobName: 'llama',
      replicatedJobs: [{ name: 'node', replicas: 1, podsPerJob: 4 }],
    });
    expect(peerHostname(j, 0)).toBe('llama-node-0-0');
    // A full name for the master is fine too.
    await resolveConfig(node({ ...PET, PET_MASTER_ADDR: 'llama-node-0-0.llama.ml.svc.cluster.local' }));
  });

  it("leaves a plain Indexed Job's own PET_* alone: a master that is not a Trainer node's name (a Service, an IP, a pod of the job)", async () => {
    for (const master of ['train-master', '10.0.0.7', 'train-0.workers']) {
      const env = { PET_NNODES: '2:4', PET_NODE_RANK: '1', PET_MASTER_ADDR: master };
      const c = await resolveConfig(
        node(
          { ...env, KUBEPEERS_SIZE: '4', JOB_COMPLETION_INDEX: '1' },
          { hostname: 'train-1', jobName: 'train', subdomain: 'workers', namespace: 'ml' },
        ),
      );
      expect(c).toMatchObject({ index: 1, size: 4, jobName: 'train', subdomain: 'workers' });
    }
  });

  it('refuses to start when they contradict what kubepeers finds, naming both values and where each came from', async () => {
    const size = await configError(node({ ...PET, KUBEPEERS_SIZE: '5', JOB_COMPLETION_INDEX: '2' }));
    expect(size.message).toBe(
      'size is 5 (from env KUBEPEERS_SIZE); expected 4, the node count in env PET_NNODES (Kubeflow Trainer)',
    );
    const rank = await configError(node({ ...PET, PET_NODE_RANK: '1', JOB_COMPLETION_INDEX: '2' }));
    expect(rank.message).toBe(
      "index is 2 (from env JOB_COMPLETION_INDEX); expected 1, this node's rank in env PET_NODE_RANK (Kubeflow Trainer)",
    );
    const master = await configError(node({ ...PET, PET_MASTER_ADDR: 'llama-node-0-1.llama' }));
    expect(master.message).toContain(
      'coordinator is "llama-node-0-1.llama" (from env PET_MASTER_ADDR (Kubeflow Trainer))',
    );
    expect(master.message).toContain('"llama-node-0-0.llama"');
    const sub = await configError(node({ ...PET, PET_MASTER_ADDR: 'llama-node-0-0.other' }));
    expect(sub).toMatchObject({ setting: 'coordinator' });
    const js = await configError(
      node(
        { ...PET, JOB_COMPLETION_INDEX: '2', PET_NNODES: '3', PET_NODE_RANK: '2' },
        { labelsPath: tjLabels, podsPerJob: 4 },
      ),
    );
    expect(js.message).toBe(
      `size is 4 (from the JobSet's replicated jobs node:1x4); expected 3, the node count in env PET_NNODES (Kubeflow Trainer)`,
    );
    const bad = await configError(node({ ...PET, PET_NNODES: '1:4' }));
    expect(bad).toMatchObject({ setting: 'PET_NNODES', value: '1:4' });
  });
});

describe('resolveConfig in a LeaderWorkerSet group (LWS_LEADER_ADDRESS, LWS_GROUP_SIZE, LWS_WORKER_INDEX)', () => {
  // LeaderWorkerSet "vllm", group 1 of size 4: leader vllm-1, workers vllm-1-1 .. vllm-1-3, subdomain vllm.
  let lwsHosts: string;
  beforeAll(async () => {
    lwsHosts = join(dir, 'hosts-lws');
    await writeFile(lwsHosts, '10.244.5.2\tvllm-1-2.vllm.ml.svc.cluster.local\tvllm-1-2\n');
  });
  const LWS = { LWS_LEADER_ADDRESS: 'vllm-1.vllm.ml', LWS_GROUP_SIZE: '4', LWS_WORKER_INDEX: '2' };
  const worker = (env: Record<string, string>, extra: WaitForPeersOptions = {}): WaitForPeersOptions => ({
    hostsPath: lwsHosts,
    resolvConfPath,
    hostname: 'vllm-1-2',
    labelsPath: join(dir, 'no-labels'),
    env,
    ...extra,
  });

  it('the group is the barrier: identity, size and coordinator from LWS alone', async () => {
    const c = await resolveConfig(worker(LWS));
    expect(c).toMatchObject({
      index: 2,
      size: 4,
      jobName: 'vllm-1',
      subdomain: 'vllm',
      namespace: 'ml',
      leaderWorkerSet: true,
    });
    expect([0, 1, 2, 3].map((k) => peerFqdn(c, k))).toEqual([
      'vllm-1.vllm.ml.svc.cluster.local',
      'vllm-1-1.vllm.ml.svc.cluster.local',
      'vllm-1-2.vllm.ml.svc.cluster.local',
      'vllm-1-3.vllm.ml.svc.cluster.local',
    ]);
    // The leader, with no /etc/hosts FQDN: subdomain and namespace from LWS_LEADER_ADDRESS.
    const leader = await resolveConfig(
      worker({ ...LWS, LWS_WORKER_INDEX: '0' }, { hostname: 'vllm-1', hostsPath: bareHosts }),
    );
    expect(leader).toMatchObject({ index: 0, jobName: 'vllm-1', subdomain: 'vllm', namespace: 'ml' });
    // subdomainPolicy UniquePerReplica: the subdomain is the leader's name.
    const unique = await resolveConfig(
      worker({ ...LWS, LWS_LEADER_ADDRESS: 'vllm-1.vllm-1.ml' }, { hostsPath: bareHosts }),
    );
    expect(unique).toMatchObject({ subdomain: 'vllm-1' });
  });

  it('refuses what contradicts LWS, naming both values', async () => {
    const job = await configError(worker({ ...LWS, KUBEPEERS_JOB_NAME: 'other' }));
    expect(job.message).toContain(
      'jobName is "other" (from env KUBEPEERS_JOB_NAME); expected nothing, or "vllm-1"',
    );
    expect(await resolveConfig(worker({ ...LWS, KUBEPEERS_JOB_NAME: 'vllm-1' }))).toMatchObject({
      jobName: 'vllm-1',
    });
    const layout = await configError(worker({ ...LWS, KUBEPEERS_REPLICATED_JOBS: 'a:1x4' }));
    expect(layout).toMatchObject({ setting: 'replicatedJobs' });
    const ns = await configError(worker({ ...LWS, KUBEPEERS_NAMESPACE: 'prod' }));
    expect(ns.message).toContain('namespace is "prod" (from env KUBEPEERS_NAMESPACE); expected "ml"');
    const host = await configError(worker(LWS, { hostname: 'vllm-1-3' }));
    expect(host.message).toBe(
      'hostname is "vllm-1-3" (from option hostname); expected "vllm-1-2", the worker 2 of the group whose leader env LWS_LEADER_ADDRESS (LeaderWorkerSet) names',
    );
    const size = await configError(worker({ ...LWS, KUBEPEERS_SIZE: '8' }));
    expect(size.message).toBe(
      'size is "8" (from env KUBEPEERS_SIZE); expected nothing, or 4 as env LWS_GROUP_SIZE (LeaderWorkerSet) says',
    );
    const sub = await configError(worker({ ...LWS, LWS_LEADER_ADDRESS: 'vllm-1.other.ml' }));
    expect(sub).toMatchObject({ setting: 'subdomain', value: 'vllm' });
    const index = await configError(worker({ ...LWS, LWS_WORKER_INDEX: '4' }));
    expect(index).toMatchObject({ setting: 'LWS_WORKER_INDEX', value: '4' });
    const bad = await configError(worker({ ...LWS, LWS_LEADER_ADDRESS: 'vllm_1.vllm.ml' }));
    expect(bad).toMatchObject({ setting: 'LWS_LEADER_ADDRESS' });
  });
});
