/**
 * The manifests under example-workload/k8s, as written and as `kubectl kustomize` renders the directory
 * for `kubectl apply -k` (kubectl from Debian's kubernetes-client, which scripts/setup-tests.mjs installs
 * when no kubectl is on PATH; bookworm's 1.20.2 and a 1.32 kubectl with kustomize 5.5 render the directory
 * alike but for the ConfigMap's name hash, and the checks pass with both).
 *
 * Schemas: kubernetes-models (the Kubernetes OpenAPI schemas compiled to validators: types, enums,
 * required fields, formats) and kubernetes-types (the same API as TypeScript types: any field name that
 * the API does not have, such as a typo, is an excess-property error).
 *
 * Then what a real cluster would trip over, each check shown to catch a broken copy of the manifests:
 * every image set in the one `images:` list of kustomization.yaml; every file a command runs or reads
 * present (in a ConfigMap key mounted there, written by an earlier container into a shared emptyDir, or
 * copied into the kubepeers image by its Dockerfile); a GPU per process when torchrun starts more than one
 * per pod; HOME, /tmp and the cache directories writable under a read-only root filesystem.
 */
import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { typeErrorsOf } from './helpers/typecheck.js';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { ENV_FORMATS, envFor, type EnvFormat } from '../src/outputs.js';
import { DEFAULTS } from '../src/settings.js';

/** What `kubepeers wait` exports without `--format`. */
const DEFAULT_FORMATS = DEFAULTS.formats.join(',');
import { rosterOf } from './helpers/roster.js';

const exec = promisify(execFile);
const DIR = 'example-workload/k8s';
const DOCKERFILE = 'example-workload/Dockerfile';
/** What the manifests call the image that example-workload/Dockerfile builds. */
const OUR_IMAGE = 'kubepeers';
/** Debian's python3-torch (scripts/setup-tests.mjs installs it). */
const PYTHON = '/usr/bin/python3';

interface Doc {
  apiVersion: string;
  kind: string;
  [key: string]: unknown;
}
interface EnvVar {
  name: string;
  value?: string;
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: Mount[];
  ports?: { name?: string; containerPort: number }[];
  securityContext?: {
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
  };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface Volume {
  name: string;
  emptyDir?: object;
  configMap?: { name: string };
}
interface PodSpec {
  subdomain?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean };
  volumes?: Volume[];
  initContainers?: Container[];
  containers: Container[];
}
interface Job extends Doc {
  metadata: { name: string };
  spec: { completions: number; parallelism: number; completionMode: string; template: { spec: PodSpec } };
}
interface Service extends Doc {
  metadata: { name: string };
  spec: {
    clusterIP: string;
    publishNotReadyAddresses?: boolean;
    selector: Record<string, string>;
    ports: { name?: string; port: number; targetPort?: number | string }[];
  };
}
interface ConfigMap extends Doc {
  metadata: { name: string };
  data?: Record<string, string>;
}
interface ImageOverride {
  name: string;
  newName?: string;
  newTag?: string;
}
interface Kustomization {
  resources: string[];
  images: ImageOverride[];
}

const MODELS: Record<string, [module: string, typesModule: string]> = {
  'v1/Service': ['kubernetes-models/v1', 'kubernetes-types/core/v1'],
  'v1/ConfigMap': ['kubernetes-models/v1', 'kubernetes-types/core/v1'],
  'batch/v1/Job': ['kubernetes-models/batch/v1', 'kubernetes-types/batch/v1'],
};

function load(text: string): Doc[] {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw d.errors[0]!;
    return d.toJS() as Doc;
  });
}

/** `kubectl kustomize dir`: what `kubectl apply -k dir` sends. */
async function render(dir: string): Promise<Doc[]> {
  const { stdout } = await exec('kubectl', ['kustomize', dir], { maxBuffer: 16 << 20 });
  return load(stdout);
}

const scratch: string[] = [];
afterAll(() => Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true }))));

/** A copy of the directory with some files edited, rendered: a broken manifest for the checks to catch. */
async function renderEdited(edits: Record<string, (text: string) => string>): Promise<Doc[]> {
  const dir = await mkdtemp(join(tmpdir(), 'kubepeers-k8s-'));
  scratch.push(dir);
  await cp(DIR, dir, { recursive: true });
  for (const [file, edit] of Object.entries(edits)) {
    const before = await readFile(join(dir, file), 'utf8');
    const after = edit(before);
    if (after === before) throw new Error(`the edit of ${file} changed nothing: the test is out of date`);
    await writeFile(join(dir, file), after);
  }
  return render(dir);
}

/** Schema validation (kubernetes-models). Returns the error messages. */
async function validateSchema(doc: Doc): Promise<string[]> {
  const entry = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!entry) return [`no schema for ${doc.apiVersion} ${doc.kind}`];
  const mod = (await import(entry[0])) as Record<string, new (d: unknown) => { validate(): void }>;
  try {
    new mod[doc.kind]!(doc).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

/** Unknown fields (kubernetes-types through the TypeScript compiler). Returns the diagnostics. */
function validateFields(docs: Doc[]): string[] {
  const lines = docs.map((doc, i) => {
    const entry = MODELS[`${doc.apiVersion}/${doc.kind}`];
    return entry
      ? `import type { ${doc.kind} as T${i} } from '${entry[1]}';\nexport const d${i}: T${i} = ${JSON.stringify(doc)};`
      : '';
  });
  return typeErrorsOf(lines.join('\n'), '__manifest_check__');
}

async function check(docs: Doc[]): Promise<string[]> {
  const errors: string[] = [];
  for (const doc of docs) errors.push(...(await validateSchema(doc)));
  errors.push(...validateFields(docs));
  return errors;
}

const jobsOf = (docs: Doc[]) => docs.filter((d): d is Job => d.kind === 'Job');
const podContainers = (pod: PodSpec) => [...(pod.initContainers ?? []), ...pod.containers];
/** The image name without its tag or digest. */
const imageName = (image: string) => {
  const at = image.indexOf('@');
  const bare = at >= 0 ? image.slice(0, at) : image;
  const colon = bare.lastIndexOf(':');
  return colon > bare.lastIndexOf('/') ? bare.slice(0, colon) : bare;
};
/** What the container executes: its command, or the image's ENTRYPOINT (kubepeers) for ours. */
const argvOf = (c: Container, ours: (image: string) => boolean) => [
  ...(c.command ?? (ours(c.image) ? ['kubepeers'] : [])),
  ...(c.args ?? []),
];
const runsKubepeers = (argv: string[]) => posix.basename(argv[0] ?? '') === 'kubepeers';
/** The value of a flag, as `--flag value` or `--flag=value`, before any `--`. */
function flagValue(argv: string[], flag: string): string | undefined {
  const end = argv.includes('--') ? argv.indexOf('--') : argv.length;
  for (let i = 0; i < end; i++) {
    if (argv[i] === flag) return argv[i + 1];
    if (argv[i]!.startsWith(`${flag}=`)) return argv[i]!.slice(flag.length + 1);
  }
  return undefined;
}
const envValue = (c: Container, name: string) => c.env?.find((e) => e.name === name)?.value;

/** The volume mounted at the longest mountPath that holds `path`, and the path inside it. */
function mountOf(pod: PodSpec, c: Container, path: string) {
  const mounts = (c.volumeMounts ?? []).filter(
    (m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, '')}/`),
  );
  const mount = mounts.sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return undefined;
  const volume = pod.volumes?.find((v) => v.name === mount.name);
  return { mount, volume, rel: posix.relative(mount.mountPath, path) };
}
const writable = (pod: PodSpec, c: Container, path: string) => {
  const m = mountOf(pod, c, path);
  return m !== undefined && m.volume?.emptyDir !== undefined && m.mount.readOnly !== true;
};

/**
 * The files the last stage of example-workload/Dockerfile puts into the image (COPY and ln -s targets), where
 * it copies the standalone binary from, and the text of the build stages.
 */
async function imageFiles(): Promise<{
  dests: string[];
  binarySource: string;
  binaryDest: string;
  build: string;
}> {
  const text = (await readFile(DOCKERFILE, 'utf8')).replace(/\\\n/g, ' ');
  const stages = text.split(/^FROM /m);
  const build = stages.slice(1, -1).join('\n');
  const last = stages[stages.length - 1]!;
  let workdir = '/';
  const dests: string[] = [];
  let binarySource = '';
  let binaryDest = '';
  for (const line of last.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] === 'WORKDIR') workdir = posix.resolve(workdir, words[1]!);
    if (words[0] === 'COPY') {
      const [src, dest] = words.filter((w) => !w.startsWith('--')).slice(-2) as [string, string];
      dests.push(posix.resolve(workdir, dest));
      if (posix.basename(src) === 'kubepeers-linux-x64') [binarySource, binaryDest] = [src, dest];
    }
    for (const m of line.matchAll(/ln -s \S+ (\S+)/g)) dests.push(m[1]!);
  }
  return { dests, binarySource, binaryDest, build };
}

const KUBEPEERS_OUTPUTS = ['--write-env', '--write-hostfile', '--write-mpich-hostfile', '--write-roster'];
const ABSOLUTE_PATH = /(?:^|[\s=:'"(])(\/[\w.@+-]+(?:\/[\w.@+-]+)*)/g;

/**
 * Every absolute path a container's command names must be there when it runs: a key of the ConfigMap
 * mounted there, a file an earlier container (init containers run first, in order) wrote into the same
 * emptyDir, or, in our image, a file its Dockerfile copies. Outputs (kubepeers' --write-* files, cp's
 * destination) must go to a writable emptyDir.
 */
function missingFiles(docs: Doc[], ours: (image: string) => boolean, inImage: string[]): string[] {
  const errors: string[] = [];
  const configMaps = new Map(
    docs.filter((d): d is ConfigMap => d.kind === 'ConfigMap').map((d) => [d.metadata.name, d]),
  );
  for (const job of jobsOf(docs)) {
    const pod = job.spec.template.spec;
    const written = new Map<string, Set<string>>();
    for (const c of podContainers(pod)) {
      const where = `${job.metadata.name}/${c.name}`;
      const argv = argvOf(c, ours);
      const outputs = runsKubepeers(argv)
        ? KUBEPEERS_OUTPUTS.map((f) => flagValue(argv, f)).filter((v) => v !== undefined)
        : argv[0] === 'cp'
          ? [argv[argv.length - 1]!]
          : [];
      const inputs = argv
        .flatMap((word) => [...word.matchAll(ABSOLUTE_PATH)].map((m) => m[1]!))
        .filter((p) => !outputs.includes(p));
      for (const path of inputs) {
        const m = mountOf(pod, c, path);
        if (m?.volume?.configMap) {
          const cm = configMaps.get(m.volume.configMap.name);
          if (!cm) errors.push(`${where}: ${path}: ConfigMap ${m.volume.configMap.name} is not applied`);
          else if (cm.data?.[m.rel] === undefined)
            errors.push(
              `${where}: ${path}: ConfigMap ${cm.metadata.name} has no key ${m.rel} (it has ${Object.keys(cm.data ?? {}).join(', ')})`,
            );
        } else if (m?.volume?.emptyDir) {
          if (!written.get(m.volume.name)?.has(m.rel))
            errors.push(
              `${where}: ${path}: no earlier container writes ${m.rel} into emptyDir ${m.volume.name}`,
            );
        } else if (m) {
          errors.push(`${where}: ${path}: volume ${m.mount.name} is neither a ConfigMap nor an emptyDir`);
        } else if (!ours(c.image)) {
          errors.push(
            `${where}: ${path} is not mounted, and ${c.image} is not an image this repository builds`,
          );
        } else if (!inImage.some((d) => path === d || path.startsWith(`${d}/`))) {
          errors.push(
            `${where}: ${path} is not in the kubepeers image (its Dockerfile puts ${inImage.join(', ')})`,
          );
        }
      }
      for (const path of outputs) {
        const m = mountOf(pod, c, path);
        if (!m?.volume?.emptyDir || m.mount.readOnly)
          errors.push(`${where}: writes ${path}, which is not on a writable emptyDir`);
        else written.set(m.volume.name, (written.get(m.volume.name) ?? new Set()).add(m.rel));
      }
    }
  }
  return errors;
}

/**
 * torchrun with --nproc-per-node N > 1 starts N processes per pod, one per GPU: the container must ask
 * for `nvidia.com/gpu: N`. N comes from torchrun's own flag, PET_NPROC_PER_NODE in the container, or the
 * kubepeers container of the pod that writes the torchrun env (its --nproc-per-node, default 1). With one
 * process and no GPU, the script must fall back to the CPU (gloo).
 */
function gpuErrors(docs: Doc[], ours: (image: string) => boolean): string[] {
  const errors: string[] = [];
  const configMaps = docs.filter((d): d is ConfigMap => d.kind === 'ConfigMap');
  for (const job of jobsOf(docs)) {
    const pod = job.spec.template.spec;
    const writers = podContainers(pod)
      .map((c) => argvOf(c, ours))
      .filter(
        (argv) => runsKubepeers(argv) && /torchrun|all/.test(flagValue(argv, '--format') ?? DEFAULT_FORMATS),
      );
    for (const c of podContainers(pod)) {
      const argv = argvOf(c, ours);
      if (runsKubepeers(argv) || !/\btorchrun\b/.test(argv.join(' '))) continue;
      const words = argv.join(' ').split(/\s+/);
      const [nproc, from] = ((): [string, string] => {
        const own = flagValue(words, '--nproc-per-node') ?? flagValue(words, '--nproc_per_node');
        if (own) return [own, 'its torchrun flag'];
        const env = envValue(c, 'PET_NPROC_PER_NODE');
        if (env) return [env, 'its env PET_NPROC_PER_NODE'];
        const kp = writers.map((w) => flagValue(w, '--nproc-per-node')).find((v) => v !== undefined);
        return [kp ?? '1', 'the kubepeers container that writes its env'];
      })();
      const gpus = c.resources?.limits?.['nvidia.com/gpu'];
      const where = `${job.metadata.name}/${c.name}`;
      if (Number(nproc) > 1 && gpus !== nproc)
        errors.push(
          `${where}: torchrun starts ${nproc} processes per pod (from ${from}), one per GPU, but the container's limits ask for nvidia.com/gpu: ${gpus ?? 'none'}`,
        );
      if (gpus === undefined) {
        const mounted = (c.volumeMounts ?? []).map((m) => pod.volumes?.find((v) => v.name === m.name));
        const scripts = configMaps
          .filter((cm) => mounted.some((v) => v?.configMap?.name === cm.metadata.name))
          .flatMap((cm) => Object.values(cm.data ?? {}));
        if (!scripts.some((s) => s.includes('"gloo"')))
          errors.push(
            `${where}: no GPU requested, and no script mounted in it falls back to gloo on the CPU`,
          );
      }
    }
  }
  return errors;
}

/** HOME (set explicitly: the image's may not exist for the UID), /tmp and cache dirs: writable emptyDirs. */
function writableErrors(docs: Doc[]): string[] {
  const errors: string[] = [];
  for (const job of jobsOf(docs)) {
    const pod = job.spec.template.spec;
    for (const c of podContainers(pod)) {
      if (c.securityContext?.readOnlyRootFilesystem !== true) continue;
      const where = `${job.metadata.name}/${c.name}`;
      const home = envValue(c, 'HOME');
      if (home === undefined) errors.push(`${where}: read-only root filesystem and no HOME set`);
      const paths = [
        ...(home === undefined ? [] : [['HOME', home]]),
        ['/tmp', '/tmp'],
        ...(c.env ?? [])
          .filter((e) => /^(TMPDIR|\w+_CACHE_DIR|\w+_CACHE|XDG_\w+_HOME)$/.test(e.name))
          .map((e) => [e.name, e.value ?? '']),
      ];
      for (const [name, path] of paths)
        if (!path!.startsWith('/') || !writable(pod, c, path!))
          errors.push(
            `${where}: ${name} (${path}) is not on a writable emptyDir under a read-only root filesystem`,
          );
    }
  }
  return errors;
}

/**
 * Every container image in the output is the `images:` entry of its name; every image the manifests
 * name has an entry; a tag written in a manifest is the entry's (so `kubectl apply -f` and `-k` agree).
 */
function imageErrors(source: Doc[], rendered: Doc[], images: ImageOverride[]): string[] {
  const errors: string[] = [];
  const byName = new Map(images.map((e) => [e.name, e]));
  const wanted = new Map<string, string>();
  for (const job of jobsOf(source))
    for (const c of podContainers(job.spec.template.spec)) {
      const where = `${job.metadata.name}/${c.name}`;
      const entry = byName.get(imageName(c.image));
      if (!entry) {
        errors.push(`${where}: image ${c.image} has no entry in kustomization.yaml's images:`);
        continue;
      }
      const tag = c.image.slice(imageName(c.image).length + 1);
      if (tag && tag !== entry.newTag)
        errors.push(`${where}: image ${c.image} has tag ${tag}, kustomization.yaml says ${entry.newTag}`);
      wanted.set(where, `${entry.newName ?? entry.name}:${entry.newTag}`);
    }
  for (const job of jobsOf(rendered))
    for (const c of podContainers(job.spec.template.spec)) {
      const where = `${job.metadata.name}/${c.name}`;
      if (c.image !== wanted.get(where))
        errors.push(`${where}: rendered image ${c.image}, expected ${wanted.get(where) ?? 'none'}`);
    }
  return errors;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs `script` as ranks 0 and 1 of a torch world on 127.0.0.1, as torchrun starts it (RANK, WORLD_SIZE,
 * LOCAL_RANK, MASTER_ADDR, MASTER_PORT). A rank that fails ends the other 15 s later (it would wait for
 * its peer for torch's 30-minute timeout); both are killed after `ms`. Exit codes (null: killed) and outputs.
 * Not through torchrun itself: Debian's torchrun (torch 1.13) fails at start on its Python 3.11, from
 * flags or from the PET_* env alike (AttributeError: 'NoneType' object has no attribute 'get', in
 * torch/distributed/elastic/multiprocessing/api.py). The manifest uses the pytorch/pytorch image's torchrun
 * (its own torch and Python), which cannot be run here.
 */
function torchWorld(script: string, port: number, home: string, ms: number) {
  const children = [0, 1].map((rank) =>
    spawn(PYTHON, [script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        HOME: home,
        RANK: String(rank),
        LOCAL_RANK: '0',
        WORLD_SIZE: '2',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        GLOO_SOCKET_IFNAME: 'lo',
      },
    }),
  );
  const timer = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), ms);
  return Promise.all(
    children.map(
      (child) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          let out = '';
          child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
          child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
          child.on('close', (code) => {
            if (code !== 0) setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), 15_000).unref();
            resolve({ code, out });
          });
        }),
    ),
  ).finally(() => clearTimeout(timer));
}

describe('example-workload manifests', async () => {
  // The job family's manifests need their CRDs (JobSet, LWS, TrainJob), so kustomization.yaml leaves them out and
  // test/manifests-family.test.ts checks them.
  const family = ['jobset.yaml', 'leaderworkerset.yaml', 'trainjob.yaml'];
  const files = (await readdir(DIR)).filter(
    (f) =>
      f.endsWith('.yaml') &&
      !['kustomization.yaml', 'trainjob-images.yaml'].includes(f) &&
      !family.includes(f),
  );
  const kustomization = parse(await readFile(join(DIR, 'kustomization.yaml'), 'utf8')) as Kustomization;
  const source = (await Promise.all(files.map((f) => readFile(join(DIR, f), 'utf8')))).flatMap(load);
  const rendered = await render(DIR);
  const ourEntry = kustomization.images.find((e) => e.name === OUR_IMAGE)!;
  const ourRendered = `${ourEntry.newName ?? OUR_IMAGE}:${ourEntry.newTag}`;
  const ours = (image: string) => image === OUR_IMAGE || image === ourRendered;
  const { dests, binarySource, binaryDest, build } = await imageFiles();

  it('there are manifests to check, and kustomization.yaml applies every one', () => {
    expect(files.sort()).toEqual([
      'any-image-job.yaml',
      'job.yaml',
      'sidecar-mpi-job.yaml',
      'torchrun-job.yaml',
    ]);
    expect([...kustomization.resources].sort()).toEqual(files);
    expect(
      jobsOf(rendered)
        .map((j) => j.metadata.name)
        .sort(),
    ).toEqual(['any-image-job', 'example-job', 'mpi-job', 'torchrun-job']);
  });

  it.each(files)('%s is valid against the Kubernetes API schemas', async (file) => {
    expect(await check(load(await readFile(join(DIR, file), 'utf8')))).toEqual([]);
  });

  it('the kustomize output is valid against the Kubernetes API schemas (the ConfigMap too)', async () => {
    expect(rendered.map((d) => d.kind).sort()).toEqual([
      'ConfigMap',
      ...Array<string>(4).fill('Job'),
      ...Array<string>(4).fill('Service'),
    ]);
    expect(await check(rendered)).toEqual([]);
  });

  it.each(jobsOf(rendered).map((j) => j.metadata.name))(
    '%s has what kubepeers needs: Indexed Job, subdomain = headless Service, size, ports, non-root, no capabilities, no API token',
    (name) => {
      const job = jobsOf(rendered).find((j) => j.metadata.name === name)!;
      const pod = job.spec.template.spec;
      const svc = rendered.find(
        (d): d is Service => d.kind === 'Service' && (d as Service).metadata.name === pod.subdomain,
      );
      expect(svc, `a Service named like the subdomain ${pod.subdomain}`).toBeDefined();
      expect(svc!.spec.clusterIP).toBe('None');
      expect(svc!.spec.selector).toEqual({ 'job-name': name });
      expect(job.spec.completionMode).toBe('Indexed');
      expect(job.spec.parallelism).toBe(job.spec.completions);
      const all = podContainers(pod);
      const sizes = all.flatMap((c) => c.env ?? []).filter((e) => e.name === 'KUBEPEERS_SIZE');
      expect(sizes.map((e) => e.value)).toEqual([String(job.spec.completions)]);
      expect(pod.securityContext?.runAsNonRoot).toBe(true);
      // kubepeers reads DNS and /etc/hosts, never the Kubernetes API: no token, no RBAC.
      expect(pod.automountServiceAccountToken).toBe(false);
      for (const c of all) {
        expect(c.securityContext?.capabilities?.drop, c.name).toEqual(['ALL']);
        expect(c.securityContext?.allowPrivilegeEscalation, c.name).toBe(false);
        expect(c.securityContext?.readOnlyRootFilesystem, c.name).toBe(true);
      }
      // Every Service port is a port some container of the pod listens on.
      const ports = all.flatMap((c) => c.ports ?? []);
      for (const p of svc!.spec.ports) {
        const target = p.targetPort ?? p.port;
        expect(
          ports.some((cp) => (typeof target === 'number' ? cp.containerPort === target : cp.name === target)),
          `Service port ${p.name ?? p.port} (${target}) is a container port`,
        ).toBe(true);
      }
      // kubepeers in an init container or sidecar: the pod is not Ready yet, so its record needs this.
      const initWaits = (pod.initContainers ?? []).some((c) => {
        const argv = argvOf(c, ours);
        return runsKubepeers(argv) && argv.includes('wait');
      });
      if (initWaits) expect(svc!.spec.publishNotReadyAddresses).toBe(true);
    },
  );

  it("every container's image is set in one place: kustomization.yaml's images:", async () => {
    expect(imageErrors(source, rendered, kustomization.images)).toEqual([]);
    const images = jobsOf(rendered).flatMap((j) => podContainers(j.spec.template.spec).map((c) => c.image));
    expect(images.filter((i) => i === ourRendered)).toHaveLength(4); // job, any-image, torchrun, sidecar
    // One edit moves every image: each entry pointed at a mirror, with another tag.
    const mirrored = await renderEdited({
      'kustomization.yaml': (text) => {
        const k = parse(text) as Kustomization;
        for (const e of k.images)
          Object.assign(e, { newName: `mirror.example.test/${e.name}`, newTag: 'edited' });
        return stringify(k);
      },
    });
    const byJob = (docs: Doc[]) =>
      jobsOf(docs)
        .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
        .flatMap((j) => podContainers(j.spec.template.spec).map((c) => c.image));
    const sortedSource = jobsOf(source)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
      .flatMap((j) =>
        podContainers(j.spec.template.spec).map((c) => `mirror.example.test/${imageName(c.image)}:edited`),
      );
    expect(byJob(mirrored)).toEqual(sortedSource);
    // An image the list does not name is caught.
    const stray = await renderEdited({
      'sidecar-mpi-job.yaml': (t) => t.replace('busybox:1.36', 'alpine:3.20'),
    });
    const straySource = jobsOf(source).map((j) =>
      j.metadata.name === 'mpi-job'
        ? (JSON.parse(JSON.stringify(j).replace('busybox:1.36', 'alpine:3.20')) as Job)
        : j,
    );
    expect(imageErrors(straySource, stray, kustomization.images)).toEqual([
      "mpi-job/worker: image alpine:3.20 has no entry in kustomization.yaml's images:",
      'mpi-job/worker: rendered image alpine:3.20, expected none',
    ]);
  });

  it('every file a command runs or reads is there: ConfigMap key, emptyDir written before, or in the image', async () => {
    expect(missingFiles(rendered, ours, dests)).toEqual([]);
    // What the checks catch: the script the ConfigMap does not hold; a binary copied elsewhere.
    const noScript = await renderEdited({
      'torchrun-job.yaml': (t) =>
        t.replace('exec torchrun /opt/train/train.py', 'exec torchrun /opt/train/main.py'),
    });
    expect(missingFiles(noScript, ours, dests).join('\n')).toMatch(
      /^torchrun-job\/trainer: \/opt\/train\/main\.py: ConfigMap torchrun-train-\w+ has no key main\.py \(it has train\.py\)$/,
    );
    const elsewhere = await renderEdited({
      'any-image-job.yaml': (t) => t.replace("'/kp/kubepeers']", "'/kp/kp']"),
    });
    expect(missingFiles(elsewhere, ours, dests)).toEqual([
      'any-image-job/main: /kp/kubepeers: no earlier container writes kubepeers into emptyDir kp',
    ]);
    const notInImage = await renderEdited({
      'job.yaml': (t) => t.replace('/app/example-workload/', '/workspace/'),
    });
    expect(missingFiles(notInImage, ours, dests)).toEqual([
      `example-job/example-workload: /workspace/workload.mjs is not in the kubepeers image (its Dockerfile puts ${dests.join(', ')})`,
    ]);
  });

  it('the any-image pattern: the init container copies the binary the image carries to the path the main container runs', () => {
    const job = jobsOf(rendered).find((j) => j.metadata.name === 'any-image-job')!;
    const pod = job.spec.template.spec;
    const [init] = pod.initContainers ?? [];
    const [main] = pod.containers;
    // The binary in the image is the one `npm run build:binary` writes to dist/kubepeers-linux-x64.
    expect(build).toContain('npm run build:binary');
    expect(build).toContain(`mv dist/kubepeers-linux-x64 ${binarySource}`);
    expect(binaryDest).toMatch(/^\/.*kubepeers-linux-x64$/);
    expect(init?.image).toBe(ourRendered);
    expect(init?.command).toEqual(['cp', binaryDest, main!.command![0]]);
    expect(main!.command!.slice(1, 2)).toEqual(['wait']);
    expect(main!.command).toContain('--');
    // The main image is not ours and has no Node.js: the binary is all it needs.
    expect(ours(main!.image)).toBe(false);
    expect(main!.image).not.toMatch(/node/);
    expect(main!.image).not.toMatch(/alpine/); // musl: the binary needs glibc
    // Both mount the same emptyDir, writable for the copy.
    const target = main!.command![0]!;
    expect(mountOf(pod, init!, target)?.volume?.emptyDir).toBeDefined();
    expect(mountOf(pod, init!, target)?.mount.readOnly).not.toBe(true);
    expect(mountOf(pod, main!, target)?.mount.name).toBe(mountOf(pod, init!, target)?.mount.name);
  });

  it("the any-image command runs on the env that kubepeers gives it (its --format's variables only)", async () => {
    const main = jobsOf(rendered).find((j) => j.metadata.name === 'any-image-job')!.spec.template.spec
      .containers[0]!;
    const argv = main.command!;
    const formats = (flagValue(argv, '--format') ?? DEFAULT_FORMATS).split(',') as EnvFormat[];
    expect(formats.every((f) => ENV_FORMATS.includes(f))).toBe(true);
    const [cmd, ...args] = argv.slice(argv.indexOf('--') + 1);
    expect(cmd).toBe('python3');
    const r = rosterOf({
      job: 'any-image-job',
      svc: 'any-image',
      ns: 'default',
      size: 3,
      index: 1,
      ip: (i) => `10.0.0.${i + 1}`,
    });
    const env = Object.assign({ PATH: process.env.PATH }, ...formats.map((f) => envFor(f, r)));
    const { stdout } = await exec(PYTHON, args, { env });
    expect(stdout).toBe(
      [0, 1, 2]
        .map((i) => `peer ${i}: any-image-job-${i}.any-image.default.svc.cluster.local 10.0.0.${i + 1}\n`)
        .join('') +
        'rank 1 of 3, MASTER_ADDR=any-image-job-0.any-image.default.svc.cluster.local, no Node.js in this image\n',
    );
  });

  it('a GPU per process when torchrun starts more than one per pod; one process runs on the CPU (gloo)', async () => {
    expect(gpuErrors(rendered, ours)).toEqual([]);
    const nproc = (n: string) => (t: string) =>
      t.replace(/'--nproc-per-node',\n(\s*)'1',/, `'--nproc-per-node',\n$1'${n}',`);
    const eight = await renderEdited({ 'torchrun-job.yaml': nproc('8') });
    expect(gpuErrors(eight, ours)).toEqual([
      "torchrun-job/trainer: torchrun starts 8 processes per pod (from the kubepeers container that writes its env), one per GPU, but the container's limits ask for nvidia.com/gpu: none",
    ]);
    const withGpus = await renderEdited({
      'torchrun-job.yaml': (t) =>
        nproc('8')(t).replace('memory: 4Gi', "memory: 4Gi\n              nvidia.com/gpu: '8'"),
    });
    expect(gpuErrors(withGpus, ours)).toEqual([]);
    expect(await check(withGpus)).toEqual([]);
    const ownFlag = await renderEdited({
      'torchrun-job.yaml': (t) => t.replace('exec torchrun /opt', 'exec torchrun --nproc-per-node=2 /opt'),
    });
    expect(gpuErrors(ownFlag, ours)).toEqual([
      "torchrun-job/trainer: torchrun starts 2 processes per pod (from its torchrun flag), one per GPU, but the container's limits ask for nvidia.com/gpu: none",
    ]);
  });

  it('HOME, /tmp and the torch caches are writable emptyDirs in every container with a read-only root', async () => {
    expect(writableErrors(rendered)).toEqual([]);
    const noHome = await renderEdited({
      'torchrun-job.yaml': (t) =>
        t.replace(/- name: HOME # UID 1000 has no home in this image\n\s*value: \/tmp\n\s*/, ''),
    });
    expect(writableErrors(noHome)).toEqual([
      'torchrun-job/trainer: read-only root filesystem and no HOME set',
    ]);
    const noTmp = await renderEdited({
      'sidecar-mpi-job.yaml': (t) =>
        t.replace(/(- name: worker[^]*?)\n\s*- name: tmp\n\s*mountPath: \/tmp/, '$1'),
    });
    expect(writableErrors(noTmp)).toEqual([
      'mpi-job/worker: HOME (/tmp) is not on a writable emptyDir under a read-only root filesystem',
      'mpi-job/worker: /tmp (/tmp) is not on a writable emptyDir under a read-only root filesystem',
    ]);
    const cacheElsewhere = await renderEdited({
      'torchrun-job.yaml': (t) => t.replace('value: /tmp/triton', 'value: /opt/triton'),
    });
    expect(writableErrors(cacheElsewhere)).toEqual([
      'torchrun-job/trainer: TRITON_CACHE_DIR (/opt/triton) is not on a writable emptyDir under a read-only root filesystem',
    ]);
  });

  it('train.py, as the ConfigMap ships it, all-reduces over gloo in the world torchrun sets up (2 processes)', async () => {
    const cm = rendered.find((d): d is ConfigMap => d.kind === 'ConfigMap')!;
    const dir = await mkdtemp(join(tmpdir(), 'kubepeers-train-'));
    scratch.push(dir);
    await writeFile(join(dir, 'train.py'), cm.data!['train.py']!);
    let port = 0;
    let runs: { code: number | null; out: string }[] = [];
    // The free port can be taken by another process before rank 0 binds it: then try another one.
    for (let attempt = 0; attempt < 3; attempt++) {
      port = await freePort();
      runs = await torchWorld(join(dir, 'train.py'), port, dir, 90_000);
      if (!runs[0]!.out.includes('Address already in use')) break;
    }
    for (const [rank, r] of runs.entries()) {
      expect(r.out, `rank ${rank} (exit ${r.code}): ${r.out}`).toContain(
        `rank ${rank} of 2 (local rank 0, gloo, master 127.0.0.1:${port}): all_reduce of the ranks = 1, expected 1`,
      );
      expect(r.code).toBe(0);
    }
    // A world whose sum is not what the script expects fails both pods.
    await writeFile(
      join(dir, 'wrong.py'),
      cm.data!['train.py']!.replace('expected = world_size * (world_size - 1) / 2', 'expected = world_size'),
    );
    const wrong = await torchWorld(join(dir, 'wrong.py'), await freePort(), dir, 90_000);
    expect(wrong.map((r) => r.code)).toEqual([1, 1]);
    expect(wrong[0]!.out).toContain('all_reduce of the ranks = 1, expected 2');
  }, 240_000);

  it('the check catches a misspelled field, a wrong enum value and a wrong type', async () => {
    const good = load(await readFile(join(DIR, 'job.yaml'), 'utf8'));
    const edited = (from: string, to: string) =>
      check(load(stringify(good[0]) + '---\n' + stringify(good[1]).replace(from, to)));
    expect(await edited('completionMode: Indexed', 'completionMod: Indexed')).toEqual([
      expect.stringContaining(`'"completionMod"' does not exist in type 'JobSpec'`),
    ]);
    expect((await edited('completionMode: Indexed', 'completionMode: Index')).join('\n')).toMatch(
      /completionMode/,
    );
    expect((await edited('completions: 3', 'completions: three')).join('\n')).toMatch(/completions/);
  });
});
