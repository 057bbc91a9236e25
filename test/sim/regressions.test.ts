// Seeds that once broke an invariant stay here as named tests, each with what went wrong. A failure
// prints the command that replays it (KPSIM_TRACE=1 for the last events).
import { describe, it } from 'vitest';
import { expectClean, runScenario } from './harness.js';
import type { ScenarioKey } from './scenario.js';

const FILE = 'test/sim/sweep.test.ts';

const REGRESSIONS: { name: string; key: ScenarioKey }[] = [
  {
    name: 'star: the coordinator turns Ready after it verified everyone; it stops polling before it sees its own address, never announces itself, and members (contacted, fallback cancelled) never ask its name',
    key: { seed: 1, size: 8, topology: 'star', mix: 'calm' },
  },
  {
    name: 'mesh: the same with a coordinator that turns Ready last',
    key: { seed: 1, size: 8, topology: 'mesh', mix: 'calm' },
  },
  {
    name: 'a member replaced after the release never gets the roster: the lingering coordinator marks delivery per index, not per instance',
    key: { seed: 8, size: 2, topology: 'mesh', mix: 'linger' },
  },
  {
    name: 'a member never retries a peer: a positive answer resets notBefore, a second connect fails, the retry timer stays at the first (earlier) deadline and finds notBefore in the future; nothing re-arms it',
    key: { seed: 51, size: 6, topology: 'mesh', mix: 'churn' },
  },
  {
    name: 'mesh: the coordinator stops polling once every member was verified and does not resume when one is replaced, so the others never hear its new address (its old one now belongs to another job)',
    key: { seed: 32, size: 47, topology: 'mesh', mix: 'churn' },
  },
  {
    name: 'mesh: a member dials addresses[0] of a two-address name forever (a wrong-secret pod is listed under the same name) and never tries the other or asks again',
    key: { seed: 4, size: 3, topology: 'mesh', mix: 'chaos' },
  },
  {
    name: 'mesh: a member the coordinator verified by name after a Service lookup failed is never announced in `peers`; the others wait for it forever',
    key: { seed: 89, size: 19, topology: 'mesh', mix: 'dns' },
  },
  {
    name: 'star of more than 257 pods: the coordinator never parks anyone (it parks only when holding more than MAX_HELD, which it never allows) and stops at 256 held members',
    key: { seed: 4, size: 262, topology: 'star', mix: 'calm' },
  },
  {
    name: 'star of more than 257 pods: a member the coordinator probed while full is told `retry` and hung up on; it has no address of the coordinator to come back to and the coordinator never probes it again',
    key: { seed: 7, size: 265, topology: 'star', mix: 'net' },
  },
  {
    name: 'the coordinator restarts after the release: the members are released and send no `done`, so the new coordinator never releases (nor members restarted after it)',
    key: { seed: 2, size: 10, topology: 'star', mix: 'linger' },
  },
  // Found on the core of a66a2bb (after the fixes above):
  {
    name: 'star: a release lost to resets twice; neither the released coordinator nor the member reconnects (a retry deadline that is still in the future when rechecked is not re-armed)',
    key: { seed: 768, size: 2, topology: 'star', mix: 'net' },
  },
  {
    name: 'mesh: a member keeps dialing a departed stranger listed under a peer name (addresses[0], ECONNREFUSED) and never tries the peer real address',
    key: { seed: 94, size: 14, topology: 'mesh', mix: 'strangers' },
  },
  {
    name: 'mesh: members wait for peers the coordinator verified but never announced (it saw them by name after a Service lookup failed, not in the Service)',
    key: { seed: 1026, size: 3, topology: 'mesh', mix: 'dns' },
  },
  {
    name: 'star of 304 pods: members listed in the Service are never connected again once the coordinator turned them away while full',
    key: { seed: 10004, size: 304, topology: 'star', mix: 'calm' },
  },
  {
    name: 'coordinator and a member both restart after the release: the member never gets the new coordinator release',
    key: { seed: 58, size: 60, topology: 'star', mix: 'linger' },
  },
  {
    name: 'a coordinator replaced after the release releases again before its own name resolves (its new address was never served by DNS)',
    key: { seed: 588, size: 4, topology: 'mesh', mix: 'churn' },
  },
  // Found on the core of c679890:
  {
    name: 'star: a member the released coordinator reaches by its own connect gets the release and a `peers` without the coordinator entry; it never asks the coordinator name, so it never verifies the sender and keeps the release pending',
    key: { seed: 2018, size: 10, topology: 'star', mix: 'chaos' },
  },
  {
    name: 'star of 317 pods: after the coordinator restarted and released again, a member restarted after the release is told `retry` on every check-in and never gets the roster',
    key: { seed: 10_079, size: 317, topology: 'star', mix: 'linger' },
  },
  // Found on 867d4e9 once a coordinator no longer asked every unseen member's name when a probe failed:
  {
    name: 'star: a coordinator that restarted and adopted a released roster never checked a member already connected from a new address (it had stopped polling and nothing asked the name)',
    key: { seed: 217, size: 29, topology: 'star', mix: 'linger' },
  },
  {
    name: 'star of 311 pods: a replacement whose process came up just before the release, verified just after it, gets a roster with its new address (the simulator took that for two different rosters)',
    key: { seed: 10_062, size: 311, topology: 'star', mix: 'churn' },
  },
];

describe('regression seeds', () => {
  for (const { name, key } of REGRESSIONS)
    it(name, { timeout: 120_000 }, () => {
      expectClean(runScenario(key, { file: FILE }));
    });
});
