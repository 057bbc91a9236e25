/**
 * The simulator's virtual clock and event queue: a binary heap of callbacks ordered by (time, insertion
 * order). Nothing here reads the real clock; time only moves when the next event is taken.
 */
interface Entry {
  at: number;
  seq: number;
  run: () => void;
}

export class EventQueue {
  private heap: Entry[] = [];
  private seq = 0;
  /** The current simulated time (ms). */
  now = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Runs `run` at absolute time `at` (never before now). */
  at(at: number, run: () => void): void {
    const entry: Entry = { at: Math.max(at, this.now), seq: this.seq++, run };
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  /** Runs `run` after `delay` ms. */
  after(delay: number, run: () => void): void {
    this.at(this.now + delay, run);
  }

  /** Time of the next event, or undefined when there is none. */
  peek(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Takes the next event, advances the clock to it and runs it; false when the queue is empty. */
  step(): boolean {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return false;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      while (true) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const child = r < n && before(heap[r]!, heap[l]!) ? r : l;
        if (!before(heap[child]!, last)) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    this.now = top.at;
    top.run();
    return true;
  }
}

function before(x: Entry, y: Entry): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}
