import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  FrameDecoder,
  MAX_HELLO_BYTES,
  maxFrameBytes,
  parseControl,
  type Decoded,
  type Message,
} from '../src/core/wire.js';

/** A small seeded generator (mulberry32): the same splits on every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function drain(decoder: FrameDecoder, limit: number): Decoded[] {
  const out: Decoded[] = [];
  for (let d = decoder.next(limit); d !== undefined; d = decoder.next(limit)) {
    out.push(d);
    if ('error' in d) break;
  }
  return out;
}

describe('FrameDecoder', () => {
  it('yields the same frames however the stream is split into segments', () => {
    const messages: Message[] = [
      { t: 'verified' },
      { t: 'ips', ips: ['10.0.0.1', 'fd00::1'] },
      { t: 'release', roster: 'x'.repeat(5000) },
      { t: 'bye', reason: 'released' },
    ];
    const stream = Buffer.from(messages.map(encodeFrame).join(''));
    for (let seed = 1; seed <= 200; seed++) {
      const random = rng(seed);
      const decoder = new FrameDecoder();
      const frames: unknown[] = [];
      for (let at = 0; at < stream.length;) {
        const n = 1 + Math.floor(random() * (random() < 0.5 ? 8 : 3000));
        decoder.push(stream.subarray(at, at + n));
        at += n;
        for (const d of drain(decoder, maxFrameBytes(4))) {
          if ('error' in d) throw new Error(`seed ${seed}: ${d.detail}`);
          frames.push(d.frame);
        }
      }
      expect(frames, `seed ${seed}`).toEqual(messages);
      expect(decoder.buffered).toBe(0);
    }
  });

  it('applies the limit in force when each frame is taken, so it can change between frames of one read', () => {
    const decoder = new FrameDecoder();
    const big = encodeFrame({ t: 'release', roster: 'y'.repeat(4000) });
    decoder.push(Buffer.from(encodeFrame({ t: 'verified' }) + big));
    expect(decoder.next(MAX_HELLO_BYTES)).toEqual({ frame: { t: 'verified' } });
    // Under the pre-authentication limit the big frame is refused...
    const strict = new FrameDecoder();
    strict.push(Buffer.from(big));
    expect(strict.next(MAX_HELLO_BYTES)).toMatchObject({ error: 'oversize' });
    // ...but after the handshake the consumer raises the limit and takes it from the same read.
    expect(decoder.next(maxFrameBytes(4))).toMatchObject({ frame: { t: 'release' } });
  });

  it('refuses an oversized frame before it is complete, and frames that are not JSON objects', () => {
    const decoder = new FrameDecoder();
    decoder.push(Buffer.from('a'.repeat(MAX_HELLO_BYTES)));
    expect(decoder.next(MAX_HELLO_BYTES)).toBeUndefined();
    decoder.push(Buffer.from('a'));
    expect(decoder.next(MAX_HELLO_BYTES)).toMatchObject({ error: 'oversize' });
    for (const bad of ['not json\n', '[1,2]\n', '"text"\n', 'null\n', '42\n']) {
      const d = new FrameDecoder();
      d.push(Buffer.from(bad));
      expect(d.next(MAX_HELLO_BYTES), bad).toMatchObject({ error: 'malformed' });
    }
  });

  it('keeps multi-byte characters split across segments intact', () => {
    const decoder = new FrameDecoder();
    const bytes = Buffer.from('{"t":"ips","ips":["é"]}\n');
    decoder.push(bytes.subarray(0, 19));
    expect(decoder.next(100)).toBeUndefined();
    decoder.push(bytes.subarray(19));
    expect(decoder.next(100)).toEqual({ frame: { t: 'ips', ips: ['é'] } });
  });
});

describe('parseControl', () => {
  it('takes well-formed control messages and ignores unknown or malformed ones', () => {
    expect(parseControl({ t: 'verified', extra: 1 })).toEqual({ t: 'verified' });
    expect(parseControl({ t: 'ips', ips: ['10.0.0.1', 7] })).toEqual({ t: 'ips', ips: ['10.0.0.1'] });
    expect(parseControl({ t: 'park', ms: 10 })).toEqual({ t: 'park', ms: 10 });
    expect(parseControl({ t: 'retry', ms: -1 })).toBeUndefined();
    expect(parseControl({ t: 'release', roster: 5 })).toBeUndefined();
    expect(parseControl({ t: 'bye', reason: 'released' })).toEqual({ t: 'bye', reason: 'released' });
    expect(parseControl({ t: 'bye', reason: 'whatever' })).toBeUndefined();
    expect(parseControl({ t: 'hello' })).toBeUndefined();
  });
});
