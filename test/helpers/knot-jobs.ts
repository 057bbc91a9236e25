/**
 * The knotd-backed setup of an integration test file: one knotd and one temp directory for the file,
 * and fresh jobs on them (own names, own addresses, own port) so that tests cannot see each other.
 */
import { afterAll, beforeAll } from 'vitest';
import { Knot, freePort } from './knot.js';
import { tempDir, type JobSpec } from './pods.js';

export interface KnotJobs {
  knot: Knot;
  /** Where the pods' hosts and resolv.conf files go. */
  dir: string;
  /** Number of the last job made: its names end in it. */
  count: number;
  newJob(size: number): Promise<JobSpec>;
}

/** Registers the file's hooks; `ip(n, i)` is the address of pod i of job number n. */
export function knotJobs(prefix: string, ip: (n: number, i: number) => string): KnotJobs {
  let cleanup: (() => Promise<void>) | undefined;
  const jobs: KnotJobs = {
    knot: undefined as unknown as Knot,
    dir: '',
    count: 0,
    async newJob(size) {
      const n = ++jobs.count;
      return {
        job: `${prefix}${n}`,
        svc: `svc${n}`,
        ns: 'ns1',
        size,
        ip: (i) => ip(n, i),
        port: await freePort(),
        dns: { address: jobs.knot.address, port: jobs.knot.port },
      };
    },
  };
  beforeAll(async () => {
    jobs.knot = await Knot.start({ soaMinimum: 2, ttl: 5 });
    ({ dir: jobs.dir, cleanup } = await tempDir());
  });
  afterAll(async () => {
    await jobs.knot?.stop();
    await cleanup?.();
  });
  return jobs;
}
