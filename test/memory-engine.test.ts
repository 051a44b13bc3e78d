import { describe, expect, it, vi } from 'vitest';
import { Broker, MemoryEngine, type Eviction, type JsonValue } from '../src/index.js';
import { rejection } from './support/expect-error.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A payload whose JSON text is about `bytes` long. */
const payload = (bytes: number, tag: number): JsonValue => ({ tag, text: 'x'.repeat(Math.max(0, bytes - 30)) });

/** What the engine counts against maxBytes now. */
const bytesOf = (engine: MemoryEngine): number => engine.stats().bytes;

describe('MemoryEngine: maxBytes bounds the history of all channels together', () => {
  it('defaults maxBytes to 256 MiB and rejects a bad one with invalid_option', async () => {
    expect(new MemoryEngine().maxBytes).toBe(268_435_456);
    for (const maxBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1000'] as number[]) {
      await rejection(() => new MemoryEngine({ maxBytes }), 'invalid_option');
    }
  });

  it('drops the oldest messages of all channels first once past maxBytes, as evict events with reason bytes', async () => {
    const engine = new MemoryEngine({ maxBytes: 1 * MiB, maxAge: Number.POSITIVE_INFINITY });
    const broker = new Broker({ engine });
    const evictions: Eviction[] = [];
    broker.on('evict', (eviction) => evictions.push(eviction));
    // 300 messages of about 10 KB over three channels, in turn: far more than 1 MiB.
    for (let i = 0; i < 300; i++) await broker.publish(`room:${i % 3}`, payload(10 * KiB, i));
    expect(bytesOf(engine)).toBeLessThanOrEqual(1 * MiB);
    expect(evictions.length).toBeGreaterThan(0);
    expect(evictions.every((e) => e.reason === 'bytes')).toBe(true);
    // What is left is the newest messages, on every channel: the oldest went first whatever
    // their channel.
    const kept: number[] = [];
    for (let c = 0; c < 3; c++) {
      const { messages } = await broker.read(`room:${c}`, { limit: 1000 });
      kept.push(...messages.map((m) => (m.data as { tag: number }).tag));
    }
    kept.sort((a, b) => a - b);
    expect(kept.length).toBeGreaterThan(10);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 300 - kept.length + i));
    const evicted = evictions.reduce((sum, e) => sum + e.count, 0);
    expect(evicted + kept.length).toBe(300);
    await broker.close();
  });

  it('answers a cursor behind messages dropped for bytes with cursor_expired, never with a gap', async () => {
    const engine = new MemoryEngine({ maxBytes: 1 * MiB });
    const broker = new Broker({ engine });
    const first = await broker.publish('slow', payload(10 * KiB, 0));
    await broker.publish('slow', payload(10 * KiB, 1));
    // Another channel's traffic pushes both of slow's messages out.
    for (let i = 0; i < 200; i++) await broker.publish('busy', payload(10 * KiB, i));
    const reader = await broker.read('busy', { limit: 1 });
    const error = await rejection(broker.read('slow', { cursor: first.cursor }), 'cursor_expired');
    expect(error.status).toBe(410);
    // From the earliest cursor there is nothing left to skip: the channel's later messages come.
    const later = await broker.publish('slow', payload(100, 2));
    const resumed = await broker.read('slow', { cursor: error.earliestCursor! });
    expect(resumed.messages.map((m) => m.id)).toEqual([later.id]);
    // A reader in the middle of a channel that keeps only its newest messages is expired too.
    for (let i = 0; i < 10; i++) await broker.publish('busy', payload(10 * KiB, i));
    expect(engine.stats().channels).toBe(2);
    await rejection(broker.read('busy', { cursor: reader.cursor }), 'cursor_expired');
    await broker.close();
  });

  it('refuses a message larger than a tenth of maxBytes with payload_too_large (413) and stores nothing', async () => {
    const engine = new MemoryEngine({ maxBytes: 1 * MiB });
    const broker = new Broker({ engine });
    await broker.publish('room', payload(1 * KiB, 0));
    const error = await rejection(broker.publish('room', payload(110 * KiB, 1)), 'payload_too_large');
    expect(error.status).toBe(413);
    const error2 = await rejection(engine.append('other', JSON.stringify(payload(200 * KiB, 2))), 'payload_too_large');
    expect(error2.status).toBe(413);
    expect(engine.stats()).toMatchObject({ channels: 1, messages: 1 });
    expect((await broker.read('room')).messages).toHaveLength(1);
    await broker.close();
  });

  it('counts a message once it leaves by capacity or maxAge, so those do not leave the byte count behind', async () => {
    vi.useFakeTimers();
    try {
      const engine = new MemoryEngine({ maxBytes: 1 * MiB, capacity: 2, maxAge: 1_000 });
      const broker = new Broker({ engine });
      for (let i = 0; i < 1000; i++) await broker.publish(`c${i % 10}`, payload(1 * KiB, i));
      const held = bytesOf(engine);
      expect(engine.stats().messages).toBe(20);
      // Twenty messages of about 1 KB, each kept as text and as a value, and ten channels.
      expect(held).toBeGreaterThan(20 * 2 * KiB);
      expect(held).toBeLessThan(20 * 3.5 * KiB);
      vi.advanceTimersByTime(60_000);
      for (let i = 0; i < 10; i++) await broker.read(`c${i}`);
      expect(engine.stats()).toMatchObject({ channels: 0, messages: 0 });
      expect(bytesOf(engine)).toBe(0);
      await broker.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('still drops the oldest message first after another channel has pushed out thousands by capacity', async () => {
    const engine = new MemoryEngine({ capacity: 10, maxAge: Number.POSITIVE_INFINITY, maxBytes: 1 * MiB });
    const broker = new Broker({ engine });
    const evictions: Eviction[] = [];
    broker.on('evict', (eviction) => evictions.push(eviction));
    await broker.publish('quiet', 'the oldest message');
    for (let i = 0; i < 20_000; i++) await broker.publish('busy', i);
    expect(evictions.every((e) => e.reason === 'capacity' && e.channel === 'busy')).toBe(true);
    evictions.length = 0;
    while (!evictions.some((e) => e.reason === 'bytes')) await broker.publish(`big${evictions.length}`, payload(50 * KiB, 0));
    expect(evictions.find((e) => e.reason === 'bytes')).toEqual({ channel: 'quiet', count: 1, reason: 'bytes' });
    await broker.close();
  });

  it('evicts across many channels without a gap for any reader (property over random traffic)', async () => {
    const engine = new MemoryEngine({ maxBytes: 256 * KiB, capacity: 50, maxAge: Number.POSITIVE_INFINITY });
    const broker = new Broker({ engine });
    const cursors = new Map<string, string | undefined>();
    const seen = new Map<string, number[]>();
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 3000; i++) {
      const channel = `c${Math.floor(random() * 40)}`;
      await broker.publish(channel, payload(Math.floor(random() * 4 * KiB), i));
      if (random() < 0.3) {
        const reader = `c${Math.floor(random() * 40)}`;
        try {
          const batch = await broker.read(reader, { cursor: cursors.get(reader), limit: 1000 });
          const tags = batch.messages.map((m) => (m.data as { tag: number }).tag);
          const before = seen.get(reader) ?? [];
          // In order, and no repeats.
          expect([...before, ...tags]).toEqual([...before, ...tags].slice().sort((a, b) => a - b));
          seen.set(reader, [...before, ...tags]);
          cursors.set(reader, batch.cursor);
        } catch (error) {
          expect((error as { code?: string }).code).toBe('cursor_expired');
          cursors.set(reader, (error as { earliestCursor: string }).earliestCursor);
        }
      }
      expect(bytesOf(engine)).toBeLessThanOrEqual(256 * KiB);
    }
    await broker.close();
  });
});
