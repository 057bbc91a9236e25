/**
 * Named timers without I/O: a binary heap of deadlines with lazy deletion. Setting a key again moves
 * it; the core asks for the earliest deadline and takes the keys that are due.
 */
interface Entry {
  at: number;
  key: string;
  seq: number;
}

export class Timers {
  private readonly heap: Entry[] = [];
  /** The live sequence number of each key; heap entries with another one are stale. */
  private readonly live = new Map<string, { at: number; seq: number }>();
  private seq = 0;

  /** Number of timers set. */
  get size(): number {
    return this.live.size;
  }

  /** Sets (or moves) timer `key` to `at`. */
  set(key: string, at: number): void {
    const seq = ++this.seq;
    this.live.set(key, { at, seq });
    this.push({ at, key, seq });
    // Stale entries are dropped as they surface; bound them if a key is moved very often.
    if (this.heap.length > 4 * this.live.size + 64) this.rebuild();
  }

  /** Sets `key` to `at` unless it is already set to fire sooner. */
  setEarliest(key: string, at: number): void {
    const cur = this.live.get(key);
    if (cur === undefined || cur.at > at) this.set(key, at);
  }

  has(key: string): boolean {
    return this.live.has(key);
  }

  clear(key: string): void {
    this.live.delete(key);
  }

  clearAll(): void {
    this.live.clear();
    this.heap.length = 0;
  }

  /** The earliest deadline, or undefined. */
  next(): number | undefined {
    this.dropStale();
    return this.heap[0]?.at;
  }

  /** Removes and returns the keys due at `now`, earliest first. */
  due(now: number): string[] {
    const keys: string[] = [];
    for (;;) {
      this.dropStale();
      const top = this.heap[0];
      if (top === undefined || top.at > now) return keys;
      this.pop();
      this.live.delete(top.key);
      keys.push(top.key);
    }
  }

  private dropStale(): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || this.live.get(top.key)?.seq === top.seq) return;
      this.pop();
    }
  }

  private rebuild(): void {
    const entries = this.heap.filter((e) => this.live.get(e.key)?.seq === e.seq);
    this.heap.length = 0;
    for (const e of entries) this.push(e);
  }

  private push(entry: Entry): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!, h[m]!)) m = l;
      if (r < h.length && less(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
