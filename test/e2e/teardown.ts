import { afterEach, expect } from 'vitest';
import type { ClusterInABox } from './cluster.js';

/**
 * After each test, destroys the box `take` hands over (the test file's current one, which `take` also
 * forgets) and checks it left nothing behind: namespaces, /etc/netns files, processes.
 */
export function destroyBoxAfterEach(take: () => ClusterInABox | undefined): void {
  afterEach(async () => {
    const b = take();
    if (!b) return;
    await b.destroy();
    expect(await b.leftovers()).toEqual([]);
  });
}
