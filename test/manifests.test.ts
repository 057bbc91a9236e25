/**
 * Every manifest under example-workload/ is checked against the Kubernetes OpenAPI schemas shipped in
 * npm packages: kubernetes-models (the schemas compiled to validators: types, enums, required fields,
 * formats) and kubernetes-types (the same API as TypeScript types: any field name that the API does not
 * have, such as a typo, is an excess-property error).
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const DIR = 'example-workload/k8s';

interface Doc {
  apiVersion: string;
  kind: string;
  [key: string]: unknown;
}

const MODELS: Record<string, [module: string, typesModule: string]> = {
  'v1/Service': ['kubernetes-models/v1', 'kubernetes-types/core/v1'],
  'batch/v1/Job': ['kubernetes-models/batch/v1', 'kubernetes-types/batch/v1'],
};

async function load(text: string): Promise<Doc[]> {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw d.errors[0]!;
    return d.toJS() as Doc;
  });
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
  const file = join(process.cwd(), 'test', '__manifest_check__.ts');
  const source = lines.join('\n');
  const host = ts.createCompilerHost({});
  const readFile = host.readFile;
  host.readFile = (f) => (f === file ? source : readFile(f));
  const fileExists = host.fileExists;
  host.fileExists = (f) => f === file || fileExists(f);
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

async function check(text: string): Promise<string[]> {
  const docs = await load(text);
  const errors: string[] = [];
  for (const doc of docs) errors.push(...(await validateSchema(doc)));
  errors.push(...validateFields(docs));
  return errors;
}

describe('example-workload manifests', async () => {
  // The job family's manifests (JobSet, ...) have no Job to check here: test/manifests-family.test.ts.
  const family = ['jobset.yaml'];
  const files = (await readdir(DIR)).filter((f) => f.endsWith('.yaml') && !family.includes(f));

  it('there are manifests to check', () => {
    expect(files.sort()).toEqual(['job.yaml', 'sidecar-mpi-job.yaml', 'torchrun-job.yaml']);
  });

  it.each(files)('%s is valid against the Kubernetes API schemas', async (file) => {
    expect(await check(await readFile(join(DIR, file), 'utf8'))).toEqual([]);
  });

  it.each(files)(
    '%s has what kubepeers needs: Indexed Job, subdomain = headless Service, size, dropped capabilities',
    async (file) => {
      const docs = await load(await readFile(join(DIR, file), 'utf8'));
      const svc = docs.find((d) => d.kind === 'Service') as unknown as {
        metadata: { name: string };
        spec: { clusterIP: string; publishNotReadyAddresses?: boolean; selector: Record<string, string> };
      };
      const job = docs.find((d) => d.kind === 'Job') as unknown as {
        metadata: { name: string };
        spec: {
          completions: number;
          completionMode: string;
          template: {
            spec: {
              subdomain: string;
              initContainers?: {
                env?: { name: string; value?: string }[];
                securityContext: { capabilities: { drop: string[] } };
              }[];
              containers: {
                env?: { name: string; value?: string }[];
                securityContext: { capabilities: { drop: string[] } };
              }[];
            };
          };
        };
      };
      expect(svc.spec.clusterIP).toBe('None');
      expect(svc.spec.selector).toEqual({ 'job-name': job.metadata.name });
      expect(job.spec.completionMode).toBe('Indexed');
      const pod = job.spec.template.spec;
      expect(pod.subdomain).toBe(svc.metadata.name);
      const all = [...(pod.initContainers ?? []), ...pod.containers];
      const sizes = all.flatMap((c) => c.env ?? []).filter((e) => e.name === 'KUBEPEERS_SIZE');
      expect(sizes.map((e) => e.value)).toEqual([String(job.spec.completions)]);
      for (const c of all) expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
      // kubepeers in an init container or sidecar: the pod is not Ready yet, so its record needs this.
      if (pod.initContainers) expect(svc.spec.publishNotReadyAddresses).toBe(true);
    },
  );

  it('the check catches a misspelled field, a wrong enum value and a wrong type', async () => {
    const good = await readFile(join(DIR, 'job.yaml'), 'utf8');
    expect(await check(good.replace('completionMode: Indexed', 'completionMod: Indexed'))).toEqual([
      expect.stringContaining(`'"completionMod"' does not exist in type 'JobSpec'`),
    ]);
    expect(
      (await check(good.replace('completionMode: Indexed', 'completionMode: Index'))).join('\n'),
    ).toMatch(/completionMode/);
    expect((await check(good.replace('completions: 3', 'completions: three'))).join('\n')).toMatch(
      /completions/,
    );
  });
});
