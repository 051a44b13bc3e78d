import { describe, expect, it } from 'vitest';
import { RingBuffer } from '../src/ring-buffer.js';

const entry = (position: number) => ({ position });
const positions = (ring: RingBuffer<{ position: number }>) => ring.slice(0, ring.length).map((e) => e.position);

describe('RingBuffer', () => {
  it('keeps entries in push order and grows up to its capacity', () => {
    const ring = new RingBuffer<{ position: number }>(20);
    for (let p = 1; p <= 20; p++) expect(ring.push(entry(p))).toBeUndefined();
    expect(ring.length).toBe(20);
    expect(positions(ring)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });

  it('drops and returns the oldest entry when full', () => {
    const ring = new RingBuffer<{ position: number }>(3);
    [1, 2, 3].forEach((p) => ring.push(entry(p)));
    expect(ring.push(entry(4))).toEqual(entry(1));
    expect(positions(ring)).toEqual([2, 3, 4]);
    expect(ring.first()).toEqual(entry(2));
    expect(ring.last()).toEqual(entry(4));
  });

  it('shifts the oldest entry and wraps around', () => {
    const ring = new RingBuffer<{ position: number }>(4);
    for (let p = 1; p <= 10; p++) {
      ring.push(entry(p));
      if (ring.length > 2) ring.shift();
    }
    expect(positions(ring)).toEqual([9, 10]);
    expect(ring.at(2)).toBeUndefined();
    expect(ring.at(-1)).toBeUndefined();
    ring.shift();
    ring.shift();
    expect(ring.shift()).toBeUndefined();
    expect(ring.length).toBe(0);
  });

  it('finds the first entry after a position by binary search, across gaps and wrap-around', () => {
    const ring = new RingBuffer<{ position: number }>(5);
    for (const p of [3, 7, 8, 15, 20, 21, 40]) ring.push(entry(p)); // holds 8, 15, 20, 21, 40
    expect(ring.indexAfter(0)).toBe(0);
    expect(ring.indexAfter(8)).toBe(1);
    expect(ring.indexAfter(9)).toBe(1);
    expect(ring.indexAfter(20)).toBe(3);
    expect(ring.indexAfter(39)).toBe(4);
    expect(ring.indexAfter(40)).toBe(5);
    expect(ring.indexAfter(1000)).toBe(5);
  });

  it('keeps only the entries asked for, in order, and goes on pushing and shifting after', () => {
    const ring = new RingBuffer<{ position: number }>(Number.POSITIVE_INFINITY);
    for (let p = 1; p <= 100; p++) ring.push(entry(p));
    for (let i = 0; i < 10; i++) ring.shift();
    ring.retain(({ position }) => position % 10 === 0);
    expect(positions(ring)).toEqual([20, 30, 40, 50, 60, 70, 80, 90, 100]);
    ring.push(entry(101));
    expect(ring.shift()).toEqual(entry(20));
    expect(positions(ring)).toEqual([30, 40, 50, 60, 70, 80, 90, 100, 101]);
    expect(ring.indexAfter(55)).toBe(3);
  });
});
