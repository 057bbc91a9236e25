import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ENV_FORMATS,
  envFor,
  horovodHosts,
  jaxEnv,
  kubepeersEnv,
  mpichHostfile,
  openMpiHostfile,
  rayAddress,
  shellExports,
  tfConfig,
  torchEnv,
  torchrunEnv,
  writeFileAtomic,
} from '../src/outputs.js';
import { DEFAULTS } from '../src/settings.js';
import { rosterOf } from './helpers/roster.js';

const fqdn = (i: number): string => `train-${i}.workers.ml.svc.cluster.local`;
const r = rosterOf({
  job: 'train',
  svc: 'workers',
  ns: 'ml',
  size: 3,
  index: 1,
  ip: (i) => `10.0.0.${i + 1}`,
});

describe('integration outputs', () => {
  it('torch env:// and torchrun PET_* variables', () => {
    expect(torchEnv(r)).toEqual({ MASTER_ADDR: fqdn(0), MASTER_PORT: '29500', WORLD_SIZE: '3', RANK: '1' });
    expect(torchrunEnv(r, { masterPort: 23456, nprocPerNode: 8 })).toEqual({
      PET_NNODES: '3',
      PET_NODE_RANK: '1',
      PET_MASTER_ADDR: fqdn(0),
      PET_MASTER_PORT: '23456',
      PET_NPROC_PER_NODE: '8',
    });
  });

  it('JAX, TensorFlow TF_CONFIG and Ray', () => {
    expect(jaxEnv(r)).toEqual({
      JAX_COORDINATOR_ADDRESS: `${fqdn(0)}:1234`,
      JAX_NUM_PROCESSES: '3',
      JAX_PROCESS_ID: '1',
    });
    expect(JSON.parse(tfConfig(r))).toEqual({
      cluster: { worker: [`${fqdn(0)}:2222`, `${fqdn(1)}:2222`, `${fqdn(2)}:2222`] },
      task: { type: 'worker', index: 1 },
    });
    expect(rayAddress(r)).toBe(`${fqdn(0)}:6379`);
    expect(envFor('ray', r, { rayPort: 6380 })).toEqual({ RAY_ADDRESS: `${fqdn(0)}:6380` });
  });

  it('the default formats set no variable that Ray, TensorFlow or JAX would pick up', () => {
    expect(DEFAULTS.formats.every((f) => (ENV_FORMATS as readonly string[]).includes(f))).toBe(true);
    const names = DEFAULTS.formats.flatMap((f) => Object.keys(envFor(f, r)));
    expect(names).toContain('MASTER_ADDR');
    expect(names).toContain('PET_NNODES');
    expect(names.filter((n) => /^(RAY_|TF_|JAX_)/.test(n))).toEqual([]);
    const everything = ENV_FORMATS.flatMap((f) => Object.keys(envFor(f, r)));
    expect(everything.filter((n) => /^(RAY_|TF_|JAX_)/.test(n))).toEqual([
      'JAX_COORDINATOR_ADDRESS',
      'JAX_NUM_PROCESSES',
      'JAX_PROCESS_ID',
      'TF_CONFIG',
      'RAY_ADDRESS',
    ]);
  });

  it('MPI hostfiles and the Horovod -H value', () => {
    expect(openMpiHostfile(r, { nprocPerNode: 4 })).toBe(
      `${fqdn(0)} slots=4\n${fqdn(1)} slots=4\n${fqdn(2)} slots=4\n`,
    );
    expect(mpichHostfile(r)).toBe(`${fqdn(0)}:1\n${fqdn(1)}:1\n${fqdn(2)}:1\n`);
    expect(horovodHosts(r, { nprocPerNode: 2 })).toBe(`${fqdn(0)}:2,${fqdn(1)}:2,${fqdn(2)}:2`);
  });

  it('KUBEPEERS_* with the roster as JSON', () => {
    const env = kubepeersEnv(r, { nprocPerNode: 2 });
    expect(env.KUBEPEERS_HOROVOD_HOSTS).toBe(horovodHosts(r, { nprocPerNode: 2 }));
    expect(env).toMatchObject({
      KUBEPEERS_INDEX: '1',
      KUBEPEERS_SIZE: '3',
      KUBEPEERS_COORDINATOR: fqdn(0),
      KUBEPEERS_PEERS: [0, 1, 2].map(fqdn).join(' '),
    });
    expect(JSON.parse(env.KUBEPEERS_ROSTER!)).toEqual(r);
  });

  it('shell exports survive quotes, and sh reads back exactly the values', async () => {
    const { execFileSync } = await import('node:child_process');
    const env = { A: "it's", B: '$(echo pwned) `x` "q"', TF_CONFIG: tfConfig(r) };
    const out = execFileSync('sh', [
      '-c',
      `${shellExports(env)}\nprintf '%s\\n' "$A" "$B" "$TF_CONFIG"`,
    ]).toString();
    expect(out).toBe(`${env.A}\n${env.B}\n${env.TF_CONFIG}\n`);
  });

  it('writes files atomically and leaves no temporary file behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kubepeers-out-'));
    const path = join(dir, 'hostfile');
    await writeFileAtomic(path, 'one\n');
    await writeFileAtomic(path, openMpiHostfile(r));
    expect(await readFile(path, 'utf8')).toBe(openMpiHostfile(r));
    expect(await readdir(dir)).toEqual(['hostfile']);
    await expect(writeFileAtomic(join(dir, 'missing-dir', 'x'), 'y')).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});
