/**
 * The manifests of the job family around Indexed Jobs, in example-workload/k8s (test/manifests.test.ts
 * checks the plain Job manifests). No npm package ships JobSet's schema: the JobSet is type-checked against
 * test/types/jobset-v1alpha2.ts (written from JobSet's Go API, commit cited there) with excess-property
 * checks, each replicated job's template is validated as a batch/v1 Job by kubernetes-models, the rules of
 * JobSet's webhook that apply are checked here, and the manifest's env is run through kubepeers'
 * resolveConfig() for pods made as JobSet would make them.
 */
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job } from 'kubernetes-models/batch/v1';
import type { Container } from 'kubernetes-types/core/v1.js';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { peerHostname, resolveConfig } from '../src/internals.js';
import type { JobSet } from './types/jobset-v1alpha2.js';

const DIR = 'example-workload/k8s';
const FILE = `${DIR}/jobset.yaml`;
const exec = promisify(execFile);

function load(text: string): JobSet {
  const docs = parseAllDocuments(text);
  expect(docs).toHaveLength(1);
  if (docs[0]!.errors.length > 0) throw docs[0]!.errors[0]!;
  return docs[0]!.toJS() as JobSet;
}

/** Unknown fields and wrong enum values: the JobSet types through the TypeScript compiler. */
function typeErrors(doc: unknown): string[] {
  const file = join(process.cwd(), 'test', '__jobset_check__.ts');
  const source = `import type { JobSet } from './types/jobset-v1alpha2';\nexport const d: JobSet = ${JSON.stringify(doc)};`;
  const host = ts.createCompilerHost({});
  const read = host.readFile;
  host.readFile = (f) => (f === file ? source : read(f));
  const exists = host.fileExists;
  host.fileExists = (f) => f === file || exists(f);
  const program = ts.createProgram(
    [file],
    {
      strict: true,
      noEmit: true,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      types: [],
    },
    host,
  );
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === file)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
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
        }
    }
    expect([...ranks.values()].sort((a, b) => a - b)).toEqual([...Array(ranks.size).keys()]);
    expect(ranks.get(`${name}-${coord.replicatedJob}-${coord.jobIndex ?? 0}-${coord.podIndex ?? 0}`)).toBe(0);
  });
});
