/**
 * The manifests of the job family around Indexed Jobs, in example-workload/k8s (test/manifests.test.ts
 * checks the plain Job manifests): jobset.yaml, leaderworkerset.yaml and trainjob.yaml. No npm package
 * ships the schema of JobSet, LeaderWorkerSet or TrainJob: each is type-checked against the types in
 * test/types/ (written from the project's Go API, file and commit cited there) with excess-property
 * checks, the pod templates are validated against the Kubernetes schema by kubernetes-models, the rules of
 * the projects' webhooks that apply are checked here, and the manifest's env is run through kubepeers'
 * resolveConfig() for every pod, made as the controller would make it (its hostname, /etc/hosts, the env
 * and labels the controller adds).
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job } from 'kubernetes-models/batch/v1';
import { Pod } from 'kubernetes-models/v1';
import type { Container, PodSpec, PodTemplateSpec } from 'kubernetes-types/core/v1.js';
import { typeErrorsOf } from './helpers/typecheck.js';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { COORDINATOR_INDEX } from '../src/engine.js';
import { scopeJobName } from '../src/identity.js';
import { peerFqdn, peerHostname, resolveConfig } from '../src/internals.js';
import type { JobSet } from './types/jobset-v1alpha2.js';
import type { LeaderWorkerSet } from './types/leaderworkerset-v1.js';
import type { TrainJob } from './types/trainjob-v1alpha1.js';

const DIR = 'example-workload/k8s';
const FILE = `${DIR}/jobset.yaml`;
const exec = promisify(execFile);

function load<T = JobSet>(text: string): T {
  const docs = parseAllDocuments(text);
  expect(docs).toHaveLength(1);
  if (docs[0]!.errors.length > 0) throw docs[0]!.errors[0]!;
  return docs[0]!.toJS() as T;
}

/** Unknown fields and wrong enum values: the types of test/types/<module> through the TypeScript compiler. */
function typeErrors(doc: unknown, type = 'JobSet', module = 'jobset-v1alpha2'): string[] {
  const source = `import type { ${type} } from './types/${module}';\nexport const d: ${type} = ${JSON.stringify(doc)};`;
  return typeErrorsOf(source, `__${module}_check__`);
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Everything that is wrong with a JobSet manifest, by JobSet's API and by kubepeers' needs. */
function check(js: JobSet, types = true): string[] {
  // The type check compiles a program (seconds): the sabotage cases that are not about types skip it.
  const errors = types ? typeErrors(js) : [];
  const name = js.metadata?.name ?? '';
  const rjs = js.spec?.replicatedJobs ?? [];
  if (!DNS_LABEL.test(name)) errors.push(`metadata.name ${name} is not a DNS label`);
  if (rjs.length === 0) errors.push('no replicatedJobs');
  const names = new Set<string>();
  const layout: string[] = [];
  for (const rj of rjs) {
    if (!DNS_LABEL.test(rj.name)) errors.push(`replicatedJob name ${rj.name} is not a DNS label`);
    if (names.has(rj.name)) errors.push(`replicatedJob ${rj.name} twice`);
    names.add(rj.name);
    const replicas = rj.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 0)
      errors.push(`${rj.name}: replicas ${replicas} (minimum 0)`);
    const spec = rj.template.spec;
    // The child Job as JobSet creates it, through the Kubernetes schema.
    try {
      new Job({
        metadata: { name: `${name}-${rj.name}-0` },
        // kubernetes-types and kubernetes-models spell the same JobSpec apart (string vs enum).
        ...(spec
          ? { spec: spec as ConstructorParameters<typeof Job>[0] extends { spec?: infer S } ? S : never }
          : {}),
      }).validate();
    } catch (err) {
      errors.push(`${rj.name}: ${(err as Error).message}`);
    }
    // kubepeers: pods named <jobset>-<rj>-<jobIndex>-<podIndex> need Indexed child Jobs whose pods all run.
    if (spec?.completionMode !== 'Indexed') errors.push(`${rj.name}: completionMode is not Indexed`);
    if (spec?.completions === undefined || spec.completions !== spec.parallelism)
      errors.push(`${rj.name}: completions and parallelism must be set and equal (every pod at once)`);
    const pods = spec?.completions ?? 1;
    const longest = `${name}-${rj.name}-${replicas - 1}-${pods - 1}`;
    if (longest.length > 63) errors.push(`${rj.name}: pod hostname ${longest} is longer than 63`);
    layout.push(`${rj.name}:${replicas}x${pods}`);
    const pod = spec?.template.spec;
    const volumes = pod?.volumes ?? [];
    // As the other examples: no API token (kubepeers never calls the API), non-root.
    if (pod?.automountServiceAccountToken !== false)
      errors.push(`${rj.name}: automountServiceAccountToken is not false`);
    if (pod?.securityContext?.runAsNonRoot !== true) errors.push(`${rj.name}: runAsNonRoot is not true`);
    for (const c of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])] as Container[]) {
      const env = new Map((c.env ?? []).map((e) => [e.name, e.value]));
      if (env.has('KUBEPEERS_SIZE'))
        errors.push(`${rj.name}/${c.name}: KUBEPEERS_SIZE is not needed in a JobSet`);
      if (env.get('KUBEPEERS_REPLICATED_JOBS') === undefined)
        errors.push(`${rj.name}/${c.name}: no KUBEPEERS_REPLICATED_JOBS`);
      if (c.securityContext?.capabilities?.drop?.join() !== 'ALL')
        errors.push(`${rj.name}/${c.name}: capabilities not dropped`);
      if (
        c.securityContext?.allowPrivilegeEscalation !== false ||
        c.securityContext.readOnlyRootFilesystem !== true
      )
        errors.push(`${rj.name}/${c.name}: privilege escalation allowed or root filesystem writable`);
      // The image is named `kubepeers`, which kustomization.yaml's images: list points at a registry.
      if (c.image !== 'kubepeers') errors.push(`${rj.name}/${c.name}: image ${c.image}, expected kubepeers`);
      // The labels file at the path kubepeers reads by default.
      const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === '/etc/podinfo');
      const volume = volumes.find((v) => v.name === mount?.name);
      const labels = volume?.downwardAPI?.items?.find((i) => i.path === 'labels');
      if (labels?.fieldRef?.fieldPath !== 'metadata.labels')
        errors.push(`${rj.name}/${c.name}: no downward API labels file at /etc/podinfo/labels`);
    }
  }
  // Every container tells the same layout, the spec's.
  for (const rj of rjs)
    for (const c of rj.template.spec?.template.spec?.containers ?? []) {
      const value = c.env?.find((e) => e.name === 'KUBEPEERS_REPLICATED_JOBS')?.value;
      if (value !== undefined && value !== layout.join(','))
        errors.push(
          `${rj.name}/${c.name}: KUBEPEERS_REPLICATED_JOBS ${value}, the spec says ${layout.join(',')}`,
        );
    }
  const c = js.spec?.coordinator;
  if (c) {
    const rj = rjs.find((r) => r.name === c.replicatedJob);
    if (!rj) errors.push(`coordinator: no replicated job ${c.replicatedJob}`);
    else if (
      (c.jobIndex ?? 0) >= (rj.replicas ?? 1) ||
      (c.podIndex ?? 0) >= (rj.template.spec?.completions ?? 1)
    )
      errors.push(`coordinator: ${c.replicatedJob} has no job ${c.jobIndex ?? 0} pod ${c.podIndex ?? 0}`);
  }
  if (js.spec?.network?.enableDNSHostnames === false) errors.push('network.enableDNSHostnames is false');
  // One barrier holds every pod of the JobSet: a replicated job created only after another's pods are
  // Ready (or have finished) deadlocks, as the pods that exist wait for pods that are never created.
  for (const rj of rjs)
    for (const d of rj.dependsOn ?? [])
      errors.push(
        `${rj.name}: dependsOn ${d.name} (${d.status}) deadlocks: every pod of the barrier must exist while the others wait`,
      );
  if (js.spec?.startupPolicy?.startupPolicyOrder === 'InOrder')
    errors.push(
      'startupPolicy InOrder deadlocks: each replicated job waits for the previous to be Ready, but no pod is Ready before all exist',
    );
  return errors;
}

describe('example-workload/k8s/jobset.yaml', async () => {
  const text = await readFile(FILE, 'utf8');
  const js = load(text);

  it('is a JobSet valid against its API types, its child Jobs against the Kubernetes schema', () => {
    expect(js.kind).toBe('JobSet');
    expect(js.apiVersion).toBe('jobset.x-k8s.io/v1alpha2');
    expect(check(js)).toEqual([]);
    // At least two replicated jobs, one of several child Jobs: the case the layout option is for.
    expect(js.spec!.replicatedJobs!.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...js.spec!.replicatedJobs!.map((r) => r.replicas ?? 1))).toBeGreaterThanOrEqual(2);
  });

  it('the check catches a misspelled field, a wrong enum, a bad child Job and a layout that does not match', () => {
    expect(check(load(text.replace('enableDNSHostnames:', 'enableDnsHostnames:'))).join('\n')).toMatch(
      /'"enableDnsHostnames"' does not exist in type 'Network'/,
    );
    expect(check(load(text.replace('maxRestarts: 0', 'restartStrategy: Recreat'))).join('\n')).toMatch(
      /"Recreat"' is not assignable/,
    );
    expect(
      check(load(text.replace('completionMode: Indexed', 'completionMode: Index')), false).join('\n'),
    ).toMatch(/completionMode/);
    expect(check(load(text.replace('replicas: 2', 'replicas: 3')), false).join('\n')).toMatch(
      /KUBEPEERS_REPLICATED_JOBS driver:1x1,workers:2x2, the spec says driver:1x1,workers:3x2/,
    );
    expect(
      check(load(text.replace('replicatedJob: driver', 'replicatedJob: drivers')), false).join('\n'),
    ).toMatch(/no replicated job drivers/);
    expect(
      check(load(text.replace(/fieldPath: metadata.labels/g, 'fieldPath: metadata.annotations')), false),
    ).toContain('driver/example-workload: no downward API labels file at /etc/podinfo/labels');
    // Replicated jobs created one after another deadlock the one barrier.
    const ordered = load(text);
    ordered.spec!.replicatedJobs![1]!.dependsOn = [
      { name: ordered.spec!.replicatedJobs![0]!.name, status: 'Ready' },
    ];
    expect(check(ordered, false).join('\n')).toMatch(/workers: dependsOn driver \(Ready\) deadlocks/);
    const inOrder = load(text);
    inOrder.spec!.startupPolicy = { startupPolicyOrder: 'InOrder' };
    expect(check(inOrder, false).join('\n')).toMatch(/startupPolicy InOrder deadlocks/);
    expect(check(load(text), false)).toEqual([]);
  }, 60_000);

  it("added to kustomization.yaml's resources (once JobSet is installed), it gets the image from its images: list and is selected by its label", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kubepeers-jobset-k8s-'));
    try {
      await cp(DIR, dir, { recursive: true });
      const k = parse(await readFile(join(dir, 'kustomization.yaml'), 'utf8')) as {
        resources: string[];
        images: { name: string; newName?: string; newTag?: string }[];
      };
      // Not there by default: `kubectl apply -k` of the other examples must work without JobSet's CRD.
      expect(k.resources).not.toContain('jobset.yaml');
      k.resources.push('jobset.yaml');
      await writeFile(join(dir, 'kustomization.yaml'), stringify(k));
      const { stdout } = await exec('kubectl', ['kustomize', dir], { maxBuffer: 16 << 20 });
      const rendered = parseAllDocuments(stdout).map((d) => d.toJS() as JobSet);
      const jobsets = rendered.filter((d) => d.kind === 'JobSet');
      expect(jobsets).toHaveLength(1);
      const entry = k.images.find((e) => e.name === 'kubepeers')!;
      const images = jobsets[0]!.spec!.replicatedJobs!.flatMap((rj) =>
        rj.template.spec!.template.spec!.containers.map((c) => c.image),
      );
      expect(images).toEqual(images.map(() => `${entry.newName}:${entry.newTag}`));
      expect(jobsets[0]!.metadata!.labels!['kubepeers.io/example']).toBe('jobset');
      expect(check(jobsets[0]!, false).filter((e) => !/image .* expected kubepeers/.test(e))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("every pod, made as JobSet makes it, gets a distinct rank from the manifest's env alone; the coordinator is rank 0", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kubepeers-jobset-'));
    const name = js.metadata!.name!;
    const rjs = js.spec!.replicatedJobs!;
    const coord = js.spec!.coordinator!;
    const subdomain = js.spec!.network?.subdomain ?? name;
    const resolv = join(dir, 'resolv.conf');
    await writeFile(
      resolv,
      'search ml.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\n',
    );
    const ranks = new Map<string, number>();
    const configs: { host: string; size: number; coordinator: string; runId?: string; scope: string }[] = [];
    let jobs = 0;
    const global = rjs.reduce((n, r) => n + (r.replicas ?? 1), 0);
    for (const rj of rjs) {
      const container = rj.template.spec!.template.spec!.containers[0]!;
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
      for (let ji = 0; ji < (rj.replicas ?? 1); ji++, jobs++)
        for (let pi = 0; pi < rj.template.spec!.completions!; pi++) {
          const host = `${name}-${rj.name}-${ji}-${pi}`;
          const labels = join(dir, `${host}.labels`);
          await writeFile(
            labels,
            [
              `batch.kubernetes.io/job-completion-index="${pi}"`,
              `jobset.sigs.k8s.io/coordinator="${name}-${coord.replicatedJob}-${coord.jobIndex ?? 0}-${coord.podIndex ?? 0}.${subdomain}"`,
              `jobset.sigs.k8s.io/global-replicas="${global}"`,
              `jobset.sigs.k8s.io/job-global-index="${jobs}"`,
              `jobset.sigs.k8s.io/job-index="${ji}"`,
              `jobset.sigs.k8s.io/jobset-name="${name}"`,
              `jobset.sigs.k8s.io/jobset-uid="0b5e7c9a"`,
              `jobset.sigs.k8s.io/replicatedjob-name="${rj.name}"`,
              `jobset.sigs.k8s.io/replicatedjob-replicas="${rj.replicas ?? 1}"`,
              `jobset.sigs.k8s.io/restart-attempt="0"`,
            ].join('\n'),
          );
          const hosts = join(dir, `${host}.hosts`);
          await writeFile(
            hosts,
            `10.244.3.${ranks.size + 1}\t${host}.${subdomain}.ml.svc.cluster.local\t${host}\n`,
          );
          const c = await resolveConfig({
            env: { ...env, JOB_COMPLETION_INDEX: String(pi) },
            hostname: host,
            hostsPath: hosts,
            resolvConfPath: resolv,
            labelsPath: labels,
          });
          expect(peerHostname(c, c.index)).toBe(host);
          expect(c.runId).toBe('0b5e7c9a/0');
          ranks.set(host, c.index);
          configs.push({
            host,
            size: c.size,
            coordinator: peerFqdn(c, COORDINATOR_INDEX),
            runId: c.runId,
            scope: scopeJobName(c),
          });
        }
    }
    expect([...ranks.values()].sort((a, b) => a - b)).toEqual([...Array(ranks.size).keys()]);
    expect(ranks.get(`${name}-${coord.replicatedJob}-${coord.jobIndex ?? 0}-${coord.podIndex ?? 0}`)).toBe(0);
    // Every pod agrees on the size, the coordinator, the run id and the job name bound into the handshake.
    const first = configs[0]!;
    expect(first.size).toBe(ranks.size);
    expect(
      first.coordinator.startsWith(
        `${name}-${coord.replicatedJob}-${coord.jobIndex ?? 0}-${coord.podIndex ?? 0}.`,
      ),
    ).toBe(true);
    for (const c of configs) expect({ ...c, host: first.host }, c.host).toEqual(first);
  });
});

const RFC1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** A pod template through the Kubernetes schema (kubernetes-models), as the controller's pods get it. */
function podSchemaErrors(where: string, spec: PodSpec | undefined): string[] {
  try {
    new Pod({
      metadata: { name: 'check' },
      ...(spec
        ? { spec: spec as ConstructorParameters<typeof Pod>[0] extends { spec?: infer S } ? S : never }
        : {}),
    }).validate();
    return [];
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
}

/** The conventions of every example's kubepeers container: hardened, the `kubepeers` image, sized. */
function containerErrors(where: string, c: Container, volumes: PodSpec['volumes']): string[] {
  const errors: string[] = [];
  if (c.securityContext?.capabilities?.drop?.join() !== 'ALL')
    errors.push(`${where}: capabilities not dropped`);
  if (
    c.securityContext?.allowPrivilegeEscalation !== false ||
    c.securityContext.readOnlyRootFilesystem !== true
  )
    errors.push(`${where}: privilege escalation allowed or root filesystem writable`);
  // The image is named `kubepeers`, which kustomization.yaml's images: list points at a registry.
  if (c.image !== 'kubepeers') errors.push(`${where}: image ${c.image}, expected kubepeers`);
  if (c.command?.slice(0, 2).join(' ') !== 'kubepeers wait')
    errors.push(`${where}: command is not kubepeers wait`);
  if (!c.command?.includes('--')) errors.push(`${where}: no -- before the command kubepeers runs`);
  if (!c.resources?.requests?.memory || !c.resources.requests.cpu || !c.resources.limits?.memory)
    errors.push(`${where}: no cpu and memory requests and memory limit`);
  // HOME (and /tmp) on an emptyDir: the root filesystem is read-only.
  const home = c.env?.find((e) => e.name === 'HOME')?.value;
  const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === home);
  if (home === undefined || !volumes?.find((v) => v.name === mount?.name)?.emptyDir)
    errors.push(`${where}: HOME ${home} is not an emptyDir`);
  for (const m of c.volumeMounts ?? [])
    if (!volumes?.some((v) => v.name === m.name))
      errors.push(`${where}: volumeMount ${m.name} has no volume`);
  return errors;
}

/** Everything that is wrong with a LeaderWorkerSet manifest, by LWS's API and webhook and by kubepeers' needs. */
function checkLws(lws: LeaderWorkerSet, types = true): string[] {
  const errors = types ? typeErrors(lws, 'LeaderWorkerSet', 'leaderworkerset-v1') : [];
  const name = lws.metadata?.name ?? '';
  // The webhook: the name names the headless Service (DNS-1035); replicas 0..1000000, size >= 1.
  if (!RFC1035_LABEL.test(name)) errors.push(`metadata.name ${name} is not a DNS-1035 label`);
  const replicas = lws.spec?.replicas ?? 1;
  const t = lws.spec?.leaderWorkerTemplate;
  const size = t?.size ?? 1;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 1_000_000)
    errors.push(`replicas ${replicas} (0 to 1000000)`);
  if (!Number.isInteger(size) || size < 1) errors.push(`leaderWorkerTemplate.size ${size} (minimum 1)`);
  // kubepeers: a barrier of one pod is no barrier; pods are <lws>-<group> and <lws>-<group>-<worker>.
  if (size < 2) errors.push(`leaderWorkerTemplate.size ${size}: a group of one pod needs no barrier`);
  const longest = `${name}-${Math.max(replicas - 1, 0)}-${size - 1}`;
  if (longest.length > 63) errors.push(`pod hostname ${longest} is longer than 63`);
  // A pod restarted alone would wait at a barrier its group has passed: LWS must recreate the group.
  const restart = t?.restartPolicy ?? 'RecreateGroupOnPodRestart';
  if (!restart.startsWith('RecreateGroup'))
    errors.push(`restartPolicy ${restart}: a restarted pod must restart its group (RecreateGroup*)`);
  for (const [role, tpl] of [
    ['workerTemplate', t?.workerTemplate],
    ['leaderTemplate', t?.leaderTemplate],
  ] as const) {
    if (!tpl) continue;
    const pod = tpl.spec;
    errors.push(...podSchemaErrors(role, pod));
    if (pod?.automountServiceAccountToken !== false)
      errors.push(`${role}: automountServiceAccountToken is not false`);
    if (pod?.securityContext?.runAsNonRoot !== true) errors.push(`${role}: runAsNonRoot is not true`);
    // The pods are StatefulSet pods: a command that exits is restarted (and with it, the group).
    if (pod?.restartPolicy !== undefined && pod.restartPolicy !== 'Always')
      errors.push(`${role}: restartPolicy ${pod.restartPolicy} (StatefulSet pods restart Always)`);
    if (tpl.metadata?.labels?.['kubepeers.io/example'] !== lws.metadata?.labels?.['kubepeers.io/example'])
      errors.push(`${role}: not labelled kubepeers.io/example as the LeaderWorkerSet`);
    for (const c of pod?.containers ?? []) {
      errors.push(...containerErrors(`${role}/${c.name}`, c, pod?.volumes));
      // LWS tells each pod the group's size and its index: a setting could only contradict it.
      for (const e of c.env ?? [])
        if (['KUBEPEERS_SIZE', 'KUBEPEERS_INDEX', 'KUBEPEERS_REPLICATED_JOBS'].includes(e.name))
          errors.push(`${role}/${c.name}: ${e.name} is not needed in a LeaderWorkerSet`);
    }
  }
  return errors;
}

/** What the pods of a LeaderWorkerSet work out, each pod made as LWS makes it. */
interface PodResult {
  hostname: string;
  group: number;
  rank: number;
  size: number;
  coordinator: string;
  runId: string;
}

async function scratch(prefix: string): Promise<{ dir: string; resolv: string }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const resolv = join(dir, 'resolv.conf');
  await writeFile(
    resolv,
    'search ml.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.96.0.10\n',
  );
  return { dir, resolv };
}

/**
 * Every pod of every group of a LeaderWorkerSet through resolveConfig(): the hostname and subdomain of a
 * StatefulSet pod, /etc/hosts as the kubelet writes it, the container's env plus the LWS_* variables
 * LWS's pod webhook adds (kubernetes-sigs/lws pkg/utils/pod/pod_utils.go AddLWSVariables).
 */
async function lwsPods(lws: LeaderWorkerSet): Promise<PodResult[]> {
  const { dir, resolv } = await scratch('kubepeers-lws-');
  try {
    const name = lws.metadata!.name!;
    const t = lws.spec!.leaderWorkerTemplate;
    const size = t.size ?? 1;
    const unique = lws.spec!.networkConfig?.subdomainPolicy === 'UniquePerReplica';
    const out: PodResult[] = [];
    for (let g = 0; g < (lws.spec!.replicas ?? 1); g++) {
      const subdomain = unique ? `${name}-${g}` : name;
      for (let w = 0; w < size; w++) {
        const hostname = w === 0 ? `${name}-${g}` : `${name}-${g}-${w}`;
        const tpl: PodTemplateSpec = (w === 0 ? t.leaderTemplate : undefined) ?? t.workerTemplate;
        const c = tpl.spec!.containers[0]!;
        const hosts = join(dir, `${hostname}.hosts`);
        await writeFile(
          hosts,
          `10.244.${g}.${w + 1}\t${hostname}.${subdomain}.ml.svc.cluster.local\t${hostname}\n`,
        );
        const config = await resolveConfig({
          env: {
            ...Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? ''])),
            LWS_LEADER_ADDRESS: `${name}-${g}.${subdomain}.ml`,
            LWS_GROUP_SIZE: String(size),
            LWS_WORKER_INDEX: String(w),
          },
          hostname,
          hostsPath: hosts,
          resolvConfPath: resolv,
          labelsPath: join(dir, 'no-labels-file'),
        });
        if (peerHostname(config, config.index) !== hostname)
          throw new Error(`${hostname}: rank ${config.index} is ${peerHostname(config, config.index)}`);
        out.push({
          hostname,
          group: g,
          rank: config.index,
          size: config.size,
          coordinator: peerFqdn(config, 0),
          runId: config.runId,
        });
      }
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Render `resources` added to a copy of example-workload/k8s, with extra files written next to it. */
async function kustomizeWith(
  resource: string,
  extra: Record<string, string> = {},
  configurations: string[] = [],
  withoutConfigurations = false,
) {
  const dir = await mkdtemp(join(tmpdir(), 'kubepeers-family-k8s-'));
  try {
    await cp(DIR, dir, { recursive: true });
    const k = parse(await readFile(join(dir, 'kustomization.yaml'), 'utf8')) as {
      resources: string[];
      images: { name: string; newName?: string; newTag?: string }[];
      configurations?: string[];
    };
    // Not there by default: `kubectl apply -k` of the other examples must work without the CRD.
    expect(k.resources).not.toContain(resource);
    k.resources.push(resource);
    if (configurations.length > 0) k.configurations = configurations;
    if (withoutConfigurations) delete k.configurations;
    for (const [file, text] of Object.entries(extra)) await writeFile(join(dir, file), text);
    await writeFile(join(dir, 'kustomization.yaml'), stringify(k));
    const { stdout } = await exec('kubectl', ['kustomize', dir], { maxBuffer: 16 << 20 });
    const entry = k.images.find((e) => e.name === 'kubepeers')!;
    return {
      docs: parseAllDocuments(stdout).map((d) => d.toJS() as { kind: string }),
      image: `${entry.newName}:${entry.newTag}`,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('example-workload/k8s/leaderworkerset.yaml', async () => {
  const text = await readFile(`${DIR}/leaderworkerset.yaml`, 'utf8');
  const lws = load<LeaderWorkerSet>(text);

  it('is a LeaderWorkerSet valid against its API types and webhook, its pod template against the Kubernetes schema', () => {
    expect(lws.kind).toBe('LeaderWorkerSet');
    expect(lws.apiVersion).toBe('leaderworkerset.x-k8s.io/v1');
    expect(lws.metadata!.labels!['kubepeers.io/example']).toBe('leaderworkerset');
    expect(checkLws(lws)).toEqual([]);
    // Several groups of several pods: the case where a group, not the Service, is the barrier.
    expect(lws.spec!.replicas).toBeGreaterThanOrEqual(2);
    expect(lws.spec!.leaderWorkerTemplate.size).toBeGreaterThanOrEqual(3);
  });

  it('the check catches a misspelled field, a wrong enum, a bad size, a pod restarted alone, a wrong image and a writable root', () => {
    expect(checkLws(load(text.replace('workerTemplate:', 'workersTemplate:'))).join('\n')).toMatch(
      /'"workersTemplate"' does not exist in type 'LeaderWorkerTemplate'/,
    );
    expect(
      checkLws(load(text.replace('startupPolicy: LeaderCreated', 'startupPolicy: LeaderStarted'))).join('\n'),
    ).toMatch(/"LeaderStarted"' is not assignable/);
    expect(checkLws(load(text.replace('size: 3', 'size: 0')), false)).toContain(
      'leaderWorkerTemplate.size 0 (minimum 1)',
    );
    expect(
      checkLws(
        load(text.replace('restartPolicy: RecreateGroupOnPodRestart', 'restartPolicy: None')),
        false,
      ).join('\n'),
    ).toMatch(/restartPolicy None: a restarted pod must restart its group/);
    expect(checkLws(load(text.replace('image: kubepeers #', 'image: busybox #')), false)).toContain(
      'workerTemplate/example-workload: image busybox, expected kubepeers',
    );
    expect(
      checkLws(load(text.replace('readOnlyRootFilesystem: true', 'readOnlyRootFilesystem: false')), false),
    ).toContain('workerTemplate/example-workload: privilege escalation allowed or root filesystem writable');
    expect(checkLws(load(text.replace('name: tmp #', 'name: scratch #')), false)).toContain(
      'workerTemplate/example-workload: volumeMount tmp has no volume',
    );
    // The pod template through the Kubernetes schema: a port that is not a number.
    expect(
      checkLws(load(text.replace('containerPort: 17293', "containerPort: '17293'")), false).join('\n'),
    ).toMatch(/^workerTemplate: .*containerPort/m);
  }, 60_000);

  it("added to kustomization.yaml's resources (once LWS is installed), it gets the image from its images: list and is selected by its label", async () => {
    const { docs, image } = await kustomizeWith('leaderworkerset.yaml');
    const found = docs.filter((d) => d.kind === 'LeaderWorkerSet') as LeaderWorkerSet[];
    expect(found).toHaveLength(1);
    const r = found[0]!;
    expect(r.spec!.leaderWorkerTemplate.workerTemplate.spec!.containers.map((c) => c.image)).toEqual([image]);
    expect(r.metadata!.labels!['kubepeers.io/example']).toBe('leaderworkerset');
    expect(checkLws(r, false).filter((e) => !/image .* expected kubepeers/.test(e))).toEqual([]);
  }, 60_000);

  it("every pod of every group, made as LWS makes it, gets a distinct rank 0..size-1 in its group from the manifest's env and LWS's; the leader is rank 0 and every pod's coordinator", async () => {
    const pods = await lwsPods(lws);
    const name = lws.metadata!.name!;
    const size = lws.spec!.leaderWorkerTemplate.size!;
    expect(pods).toHaveLength(lws.spec!.replicas! * size);
    for (let g = 0; g < lws.spec!.replicas!; g++) {
      const group = pods.filter((p) => p.group === g);
      expect(group.map((p) => p.rank).sort((a, b) => a - b)).toEqual([...Array(size).keys()]);
      expect(new Set(group.map((p) => p.size))).toEqual(new Set([size]));
      // Each group is its own barrier: its own leader, rank 0.
      expect(new Set(group.map((p) => p.coordinator))).toEqual(
        new Set([`${name}-${g}.${name}.ml.svc.cluster.local`]),
      );
      expect(group.find((p) => p.rank === 0)!.hostname).toBe(`${name}-${g}`);
    }
  });

  it('the pod check fails on a manifest whose env contradicts what LWS tells the pods', async () => {
    const bad = load<LeaderWorkerSet>(
      text.replace(
        '- name: KUBEPEERS_TIMEOUT',
        "- name: KUBEPEERS_SIZE\n                value: '4'\n              - name: KUBEPEERS_TIMEOUT",
      ),
    );
    expect(bad.spec!.leaderWorkerTemplate.workerTemplate.spec!.containers[0]!.env![0]!.name).toBe(
      'KUBEPEERS_SIZE',
    );
    await expect(lwsPods(bad)).rejects.toThrow(
      'size is "4" (from env KUBEPEERS_SIZE); expected nothing, or 3 as env LWS_GROUP_SIZE (LeaderWorkerSet) says',
    );
  });
});

/**
 * The `torch-distributed` ClusterTrainingRuntime that the Trainer installs (kubeflow/trainer
 * manifests/base/runtimes/torch_distributed.yaml at commit 8c0f5059bd51ec3ba6d6a6a7b2e1471de7bc13b3): one
 * replicated job `node` of one Indexed Job whose container is `node`, mlPolicy torch.
 */
const TORCH_RUNTIME = {
  replicatedJob: 'node',
  container: 'node',
  image: 'pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime',
};
/** The torch plugin's reserved env (pkg/constants/constants.go TorchRunReservedEnvNames) and port (ContainerTrainerPort). */
const PET_RESERVED = [
  'PET_NNODES',
  'PET_NPROC_PER_NODE',
  'PET_NODE_RANK',
  'PET_MASTER_ADDR',
  'PET_MASTER_PORT',
];
const TRAINER_PORT = 29500;
const DOMAIN_PREFIXED_PATH = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/.+$/;

/**
 * The `node` pod as the Trainer makes it from torch-distributed, spec.trainer and spec.runtimePatches
 * (pkg/runtime/core/trainingruntime.go mergeRuntimePatches, pkg/runtime/framework/plugins/torch/torch.go
 * EnforceMLPolicy), without the PET_* env (see trainPodEnv).
 */
function trainerPod(tj: TrainJob): { labels: Record<string, string>; spec: PodSpec } {
  const t = tj.spec?.trainer;
  const patches = (tj.spec?.runtimePatches ?? [])
    .flatMap((p) => p.trainingRuntimeSpec?.template?.spec?.replicatedJobs ?? [])
    .filter((r) => r.name === TORCH_RUNTIME.replicatedJob)
    .map((r) => r.template?.spec?.template);
  const cPatches = patches
    .flatMap((p) => p?.spec?.containers ?? [])
    .filter((c) => c.name === TORCH_RUNTIME.container);
  const container: Container = {
    name: TORCH_RUNTIME.container,
    image: t?.image ?? TORCH_RUNTIME.image,
    ...(t?.command ? { command: t.command } : {}),
    ...(t?.args ? { args: t.args } : {}),
    env: [...(t?.env ?? [])],
    ...(t?.resourcesPerNode ? { resources: t.resourcesPerNode } : {}),
    ports: [{ containerPort: TRAINER_PORT }],
    volumeMounts: cPatches.flatMap((c) => c.volumeMounts ?? []),
  };
  for (const c of cPatches) if (c.securityContext) container.securityContext = c.securityContext;
  const spec: PodSpec = { containers: [container], volumes: [] };
  for (const p of patches) {
    if (p?.spec?.securityContext) spec.securityContext = p.spec.securityContext;
    spec.volumes!.push(...(p?.spec?.volumes ?? []));
  }
  const labels = Object.assign({}, ...patches.map((p) => p?.metadata?.labels ?? {})) as Record<
    string,
    string
  >;
  return { labels, spec };
}

/** PET_* as the torch plugin sets them on node `rank` (numProcPerNode: the int given, else "auto" with GPUs, else the CPUs, at least 1). */
function trainPodEnv(tj: TrainJob, rank: number): Record<string, string> {
  const t = tj.spec!.trainer!;
  const name = tj.metadata!.name!;
  const res = t.resourcesPerNode;
  const gpus = Number(res?.limits?.['nvidia.com/gpu'] ?? 0);
  const cpu = String(res?.requests?.cpu ?? res?.limits?.cpu ?? '0');
  const cpus = Math.ceil(cpu.endsWith('m') ? Number(cpu.slice(0, -1)) / 1000 : Number(cpu));
  return {
    PET_NNODES: String(t.numNodes ?? 1),
    PET_NPROC_PER_NODE:
      t.numProcPerNode !== undefined
        ? String(t.numProcPerNode)
        : gpus > 0
          ? 'auto'
          : String(Math.max(1, cpus)),
    PET_NODE_RANK: String(rank), // fieldRef metadata.annotations['batch.kubernetes.io/job-completion-index']
    PET_MASTER_ADDR: `${name}-node-0-0.${name}`,
    PET_MASTER_PORT: String(TRAINER_PORT),
  };
}

/** Everything that is wrong with a TrainJob manifest, by the Trainer's API and webhooks and by kubepeers' needs. */
function checkTrainJob(tj: TrainJob, types = true): string[] {
  const errors = types ? typeErrors(tj, 'TrainJob', 'trainjob-v1alpha1') : [];
  const name = tj.metadata?.name ?? '';
  if (!RFC1035_LABEL.test(name) || name.length > 63)
    errors.push(`metadata.name ${name} is not an RFC 1035 label`);
  const ref = tj.spec?.runtimeRef;
  if (
    ref?.name !== 'torch-distributed' ||
    (ref.kind ?? 'ClusterTrainingRuntime') !== 'ClusterTrainingRuntime'
  )
    errors.push(`runtimeRef ${JSON.stringify(ref)}: expected the ClusterTrainingRuntime torch-distributed`);
  const t = tj.spec?.trainer;
  const nodes = t?.numNodes ?? 1;
  if (!Number.isInteger(nodes) || nodes < 2)
    errors.push(`trainer.numNodes ${nodes}: a barrier needs at least 2`);
  if (t?.numProcPerNode !== undefined && (!Number.isInteger(t.numProcPerNode) || t.numProcPerNode < 1))
    errors.push(`trainer.numProcPerNode ${t.numProcPerNode} (minimum 1)`);
  for (const e of t?.env ?? []) {
    if (PET_RESERVED.includes(e.name)) errors.push(`trainer.env: ${e.name} is reserved by the torch runtime`);
    if (['KUBEPEERS_SIZE', 'KUBEPEERS_INDEX', 'KUBEPEERS_REPLICATED_JOBS'].includes(e.name))
      errors.push(`trainer.env: ${e.name} is not needed in a TrainJob`);
  }
  // kubepeers leaves PET_* as the Trainer set them (the torchrun format would overwrite PET_NPROC_PER_NODE).
  const cmd = t?.command ?? [];
  const flags = cmd.slice(0, cmd.indexOf('--'));
  if (!flags.join(' ').includes('--format kubepeers') && !flags.includes('--format=kubepeers'))
    errors.push('trainer.command: no --format kubepeers before --');
  for (const p of tj.spec?.runtimePatches ?? []) {
    if (!DOMAIN_PREFIXED_PATH.test(p.manager))
      errors.push(`runtimePatches: manager ${p.manager} is not a domain-prefixed path`);
    for (const r of p.trainingRuntimeSpec?.template?.spec?.replicatedJobs ?? []) {
      if (r.name !== TORCH_RUNTIME.replicatedJob)
        errors.push(`runtimePatches: no replicated job ${r.name} in torch-distributed`);
      const pod = r.template?.spec?.template?.spec;
      for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
        if (c.name !== TORCH_RUNTIME.container)
          errors.push(`runtimePatches: no container ${c.name} in job ${r.name}`);
        else if (c.env !== undefined)
          errors.push(`runtimePatches: env of container ${c.name} is spec.trainer's`);
      }
    }
  }
  // The node pod as the Trainer makes it: the Kubernetes schema, the examples' conventions and kubepeers'.
  // (automountServiceAccountToken is the runtime's: a TrainJob cannot patch it.)
  const { labels, spec } = trainerPod(tj);
  try {
    new Job({
      metadata: { name: `${name}-node-0` },
      spec: {
        completions: nodes,
        parallelism: nodes,
        completionMode: 'Indexed',
        template: {
          spec: spec as ConstructorParameters<typeof Pod>[0] extends { spec?: infer S } ? S : never,
        },
      },
    }).validate();
  } catch (err) {
    errors.push(`node pod: ${(err as Error).message}`);
  }
  if (spec.securityContext?.runAsNonRoot !== true) errors.push('node pod: runAsNonRoot is not true');
  if (labels['kubepeers.io/example'] !== tj.metadata?.labels?.['kubepeers.io/example'])
    errors.push('node pod: not labelled kubepeers.io/example as the TrainJob');
  const c = spec.containers[0]!;
  errors.push(...containerErrors(`node/${c.name}`, c, spec.volumes));
  const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === '/etc/podinfo');
  const file = spec.volumes
    ?.find((v) => v.name === mount?.name)
    ?.downwardAPI?.items?.find((i) => i.path === 'labels');
  if (file?.fieldRef?.fieldPath !== 'metadata.labels')
    errors.push(`node/${c.name}: no downward API labels file at /etc/podinfo/labels`);
  const longest = `${name}-node-0-${nodes - 1}`;
  if (longest.length > 63) errors.push(`pod hostname ${longest} is longer than 63`);
  return errors;
}

/**
 * Every node pod of a TrainJob through resolveConfig(): the JobSet the Trainer makes (replicated job
 * `node`, one child Job, no coordinator), the hostname, /etc/hosts, the JobSet labels where the manifest
 * mounts them, the container's env plus the torch plugin's PET_* and the Job's JOB_COMPLETION_INDEX.
 */
async function trainPods(tj: TrainJob): Promise<(PodResult & { env: Record<string, string> })[]> {
  const { dir, resolv } = await scratch('kubepeers-trainjob-');
  try {
    const name = tj.metadata!.name!;
    const nodes = tj.spec!.trainer!.numNodes ?? 1;
    const { spec } = trainerPod(tj);
    const c = spec.containers[0]!;
    const podinfo = (c.volumeMounts ?? []).find((m) => m.mountPath === '/etc/podinfo');
    const labelsMounted = spec.volumes
      ?.find((v) => v.name === podinfo?.name)
      ?.downwardAPI?.items?.some((i) => i.path === 'labels' && i.fieldRef?.fieldPath === 'metadata.labels');
    const out: (PodResult & { env: Record<string, string> })[] = [];
    for (let i = 0; i < nodes; i++) {
      const hostname = `${name}-node-0-${i}`;
      const hosts = join(dir, `${hostname}.hosts`);
      await writeFile(hosts, `10.244.7.${i + 1}\t${hostname}.${name}.ml.svc.cluster.local\t${hostname}\n`);
      const labels = join(dir, `${hostname}.labels`);
      if (labelsMounted)
        await writeFile(
          labels,
          [
            `batch.kubernetes.io/job-completion-index="${i}"`,
            `jobset.sigs.k8s.io/global-replicas="1"`,
            `jobset.sigs.k8s.io/job-global-index="0"`,
            `jobset.sigs.k8s.io/job-index="0"`,
            `jobset.sigs.k8s.io/jobset-name="${name}"`,
            `jobset.sigs.k8s.io/jobset-uid="5f2d9c1e"`,
            `jobset.sigs.k8s.io/replicatedjob-name="node"`,
            `jobset.sigs.k8s.io/replicatedjob-replicas="1"`,
            `jobset.sigs.k8s.io/restart-attempt="0"`,
            `trainer.kubeflow.org/trainjob-ancestor-step="trainer"`,
          ].join('\n'),
        );
      const env = {
        ...Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? ''])),
        ...trainPodEnv(tj, i),
        JOB_COMPLETION_INDEX: String(i),
      };
      const config = await resolveConfig({
        env,
        hostname,
        hostsPath: hosts,
        resolvConfPath: resolv,
        labelsPath: labels,
      });
      if (peerHostname(config, config.index) !== hostname)
        throw new Error(`${hostname}: rank ${config.index} is ${peerHostname(config, config.index)}`);
      out.push({
        hostname,
        group: 0,
        rank: config.index,
        size: config.size,
        coordinator: peerFqdn(config, 0),
        runId: config.runId,
        env,
      });
    }
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('example-workload/k8s/trainjob.yaml', async () => {
  const text = await readFile(`${DIR}/trainjob.yaml`, 'utf8');
  const tj = load<TrainJob>(text);

  it('is a TrainJob valid against its API types and the Trainer webhooks, its node pod against the Kubernetes schema', () => {
    expect(tj.kind).toBe('TrainJob');
    expect(tj.apiVersion).toBe('trainer.kubeflow.org/v1alpha1');
    expect(tj.metadata!.labels!['kubepeers.io/example']).toBe('trainjob');
    expect(checkTrainJob(tj)).toEqual([]);
  });

  it('the check catches a misspelled field, a reserved env, a patch of a container the runtime lacks, a missing labels file and a wrong format', () => {
    expect(checkTrainJob(load(text.replace('numNodes:', 'numNode:'))).join('\n')).toMatch(
      /'"numNode"' does not exist in type 'Trainer'/,
    );
    expect(
      checkTrainJob(load(text.replace('- name: KUBEPEERS_TIMEOUT', '- name: PET_NNODES'))).join('\n'),
    ).toMatch(/PET_NNODES is reserved by the torch runtime/);
    expect(checkTrainJob(load(text.replace('- name: node\n', '- name: trainer\n')), false)).toContain(
      'runtimePatches: no container trainer in job node',
    );
    expect(
      checkTrainJob(load(text.replace('manager: kubepeers.io/example', 'manager: kubepeers')), false),
    ).toContain('runtimePatches: manager kubepeers is not a domain-prefixed path');
    expect(
      checkTrainJob(
        load(text.replace('fieldPath: metadata.labels', 'fieldPath: metadata.annotations')),
        false,
      ),
    ).toContain('node/node: no downward API labels file at /etc/podinfo/labels');
    expect(
      checkTrainJob(
        load(text.replace('      - kubepeers\n      - --', '      - torchrun\n      - --')),
        false,
      ),
    ).toContain('trainer.command: no --format kubepeers before --');
    expect(checkTrainJob(load(text.replace('runAsNonRoot: true', 'runAsNonRoot: false')), false)).toContain(
      'node pod: runAsNonRoot is not true',
    );
    expect(checkTrainJob(load(text.replace('sizeLimit: 16Mi', 'sizeLimit: [16]')), false).join('\n')).toMatch(
      /^node pod: .*sizeLimit/m,
    );
  }, 60_000);

  it("added to kustomization.yaml's resources (once the Trainer is installed), it gets the image (trainjob-images.yaml) and is selected by its label", async () => {
    const { docs, image } = await kustomizeWith('trainjob.yaml');
    const found = docs.filter((d) => d.kind === 'TrainJob') as TrainJob[];
    expect(found).toHaveLength(1);
    expect(found[0]!.spec!.trainer!.image).toBe(image);
    expect(found[0]!.metadata!.labels!['kubepeers.io/example']).toBe('trainjob');
    expect(checkTrainJob(found[0]!, false).filter((e) => !/image .* expected kubepeers/.test(e))).toEqual([]);
    // Without the config kustomize leaves spec.trainer.image alone: the config is what rewrites it.
    const { docs: plain } = await kustomizeWith('trainjob.yaml', {}, [], true);
    const untouched = plain.filter((d) => d.kind === 'TrainJob') as TrainJob[];
    expect(untouched[0]!.spec!.trainer!.image).toBe('kubepeers');
  }, 60_000);

  it('every node, made as the Trainer makes it, gets rank = PET_NODE_RANK, a distinct 0..numNodes-1, the same size and PET_MASTER_ADDR as rank 0', async () => {
    const name = tj.metadata!.name!;
    const nodes = tj.spec!.trainer!.numNodes!;
    const pods = await trainPods(tj);
    expect(pods.map((p) => p.rank).sort((a, b) => a - b)).toEqual([...Array(nodes).keys()]);
    for (const p of pods) {
      expect(p.rank).toBe(Number(p.env.PET_NODE_RANK));
      expect(p.size).toBe(nodes);
      expect(p.coordinator).toBe(`${p.env.PET_MASTER_ADDR}.ml.svc.cluster.local`);
      expect(p.coordinator).toBe(`${name}-node-0-0.${name}.ml.svc.cluster.local`);
      expect(p.runId).toBe('5f2d9c1e/0');
      expect(p.env.PET_MASTER_PORT).toBe('29500');
      expect(p.env.PET_NPROC_PER_NODE).toBe(String(tj.spec!.trainer!.numProcPerNode));
    }
  });

  it('the pod check fails on a manifest whose env contradicts what the Trainer tells the nodes, and gets no run id without the labels file', async () => {
    const bad = load<TrainJob>(
      text.replace(
        '- name: KUBEPEERS_TIMEOUT',
        "- name: KUBEPEERS_SIZE\n        value: '4'\n      - name: KUBEPEERS_TIMEOUT",
      ),
    );
    expect(bad.spec!.trainer!.env![0]!.name).toBe('KUBEPEERS_SIZE');
    await expect(trainPods(bad)).rejects.toThrow(
      "size is 4 (from the JobSet's replicated jobs node:1x4); expected 3, the node count in env PET_NNODES (Kubeflow Trainer)",
    );
    // Without the labels file, the nodes still agree but lose the run id: a restarted JobSet's pods would
    // pass as peers of the old run's.
    const unlabelled = await trainPods(
      load(text.replace('fieldPath: metadata.labels', 'fieldPath: metadata.annotations')),
    );
    expect(unlabelled.map((p) => p.runId)).toEqual(unlabelled.map(() => ''));
  });
});

describe('docs/getting-started.md', async () => {
  const doc = await readFile('docs/getting-started.md', 'utf8');
  /** The first yaml block after the link to `file`. */
  const excerpt = (file: string): unknown => {
    const at = doc.indexOf(`](../example-workload/k8s/${file})`);
    expect(at, `a link to ${file}`).toBeGreaterThan(0);
    const block = /```yaml\n([\s\S]*?)```/.exec(doc.slice(at));
    return parse(block![1]!);
  };

  it('the LeaderWorkerSet and TrainJob excerpts are what the shipped manifests say', async () => {
    const lws = load<LeaderWorkerSet>(await readFile(`${DIR}/leaderworkerset.yaml`, 'utf8'));
    expect(lws.spec!.leaderWorkerTemplate.workerTemplate.spec).toMatchObject(
      excerpt('leaderworkerset.yaml') as object,
    );
    const tj = load<TrainJob>(await readFile(`${DIR}/trainjob.yaml`, 'utf8'));
    expect(tj).toMatchObject(excerpt('trainjob.yaml') as object);
    // The images config the docs name is the one kustomization.yaml uses.
    const k = parse(await readFile(`${DIR}/kustomization.yaml`, 'utf8')) as { configurations?: string[] };
    for (const file of k.configurations ?? []) expect(doc).toContain(`configurations: [${file}]`);
    expect(k.configurations).toContain('trainjob-images.yaml');
  });
});
