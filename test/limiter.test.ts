import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { ConnectionLimiter, type Lease, type LimiterOptions, type LimitKind } from '../src/index.js';
import { rejection } from './support/expect-error.js';

describe('ConnectionLimiter', () => {
  it('has the defaults of the design: 6 per client, 10,000 per channel, 100,000 in total', () => {
    const limiter = new ConnectionLimiter();
    expect([limiter.perClient, limiter.perChannel, limiter.total]).toEqual([6, 10_000, 100_000]);
  });

  type Keys = { client: (i: number) => string; channel: (i: number) => string };
  it.each<[LimitKind, LimiterOptions, Keys]>([
    ['client', { perClient: 3 }, { client: () => 'a', channel: (i) => `c${i}` }],
    ['channel', { perChannel: 3 }, { client: (i) => `a${i}`, channel: () => 'c' }],
    ['total', { total: 3 }, { client: (i) => `a${i}`, channel: (i) => `c${i}` }],
  ])('enforces the %s cap exactly at its limit', async (kind, caps, keys) => {
    const limiter = new ConnectionLimiter(caps);
    const leases: Lease[] = [];
    for (let i = 0; i < 3; i++) leases.push(limiter.acquire({ client: keys.client(i), channel: keys.channel(i) }));
    const refused = vi.fn();
    limiter.on('limit', refused);
    const error = await rejection(() => limiter.acquire({ client: keys.client(3), channel: keys.channel(3) }), 'limit_exceeded');
    expect(error.limit).toBe(kind);
    expect(error.status).toBe(429);
    expect(error.retryAfter).toBeGreaterThanOrEqual(1);
    expect(error.retryAfter).toBeLessThanOrEqual(2);
    expect(refused).toHaveBeenCalledWith(expect.objectContaining({ limit: kind, retryAfter: error.retryAfter }));
    expect(limiter.stats().total).toBe(3);
    leases[0]!.release();
    expect(() => limiter.acquire({ client: keys.client(3), channel: keys.channel(3) })).not.toThrow();
  });

  it('applies only the channel and total caps to a lease without a client key', () => {
    const limiter = new ConnectionLimiter({ perClient: 1, perChannel: 3 });
    for (let i = 0; i < 3; i++) limiter.acquire({ channel: 'c' });
    expect(() => limiter.acquire({ channel: 'c' })).toThrow(/channel/);
    expect(limiter.stats()).toEqual({ total: 3, clients: 0, channels: 1, buckets: 0 });
  });

  it('releases on release() and on dispose, and ignores a second release', () => {
    const limiter = new ConnectionLimiter({ perClient: 1 });
    const lease = limiter.acquire({ client: 'a', channel: 'c' });
    expect(lease.released).toBe(false);
    lease.release();
    lease.release();
    expect(lease.released).toBe(true);
    expect(limiter.stats()).toEqual({ total: 0, clients: 0, channels: 0, buckets: 0 });
    {
      using scoped = limiter.acquire({ client: 'a', channel: 'c' });
      expect(scoped.client).toBe('a');
      expect(limiter.stats().total).toBe(1);
    }
    expect(limiter.stats()).toEqual({ total: 0, clients: 0, channels: 0, buckets: 0 });
    const other = limiter.acquire({ client: 'a', channel: 'c' });
    lease.release(); // a stale lease must not free the place of another
    expect(() => limiter.acquire({ client: 'a', channel: 'c' })).toThrow(/client/);
    other[Symbol.dispose]();
    other.release();
    expect(limiter.stats().total).toBe(0);
  });

  it('refuses a lease for a missing, empty or non-string channel, or a non-string client key', async () => {
    const limiter = new ConnectionLimiter();
    for (const channel of ['', 42, undefined, null]) {
      await rejection(() => limiter.acquire({ channel: channel as string }), 'invalid_channel');
    }
    await rejection(() => limiter.acquire(undefined as unknown as { channel: string }), 'invalid_channel');
    await rejection(() => limiter.acquire({ client: 7 as unknown as string, channel: 'c' }), 'invalid_option');
    expect(limiter.stats()).toEqual({ total: 0, clients: 0, channels: 0, buckets: 0 });
  });

  it('rejects bad options with invalid_option', async () => {
    for (const options of [{ perClient: 0 }, { perChannel: -1 }, { total: 1.5 }, { total: Number.NaN }, { retryAfter: 0 }, { rate: { requests: 0, per: 1 } }]) {
      await rejection(() => new ConnectionLimiter(options), 'invalid_option');
    }
    expect(new ConnectionLimiter({ perClient: Number.POSITIVE_INFINITY }).perClient).toBe(Number.POSITIVE_INFINITY);
  });

  it('never lets its counts drift over any sequence of acquires and releases (property)', () => {
    const operation = fc.oneof(
      fc.record({ kind: fc.constant('acquire' as const), client: fc.option(fc.integer({ min: 0, max: 3 })), channel: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('release' as const), index: fc.nat(), twice: fc.boolean() }),
    );
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 200 }), (operations) => {
        const limiter = new ConnectionLimiter({ perClient: 3, perChannel: 4, total: 7 });
        const live: Lease[] = [];
        const released: Lease[] = [];
        for (const op of operations) {
          if (op.kind === 'acquire') {
            const request = { client: op.client === null ? undefined : `client${op.client}`, channel: `channel${op.channel}` };
            const count = (pick: (l: Lease) => boolean) => live.filter(pick).length;
            const allowed =
              (request.client === undefined || count((l) => l.client === request.client) < 3) &&
              count((l) => l.channel === request.channel) < 4 &&
              live.length < 7;
            let lease: Lease | undefined;
            try {
              lease = limiter.acquire(request);
            } catch {
              // refused
            }
            expect(lease !== undefined).toBe(allowed);
            if (lease) live.push(lease);
          } else if (live.length > 0) {
            const [lease] = live.splice(op.index % live.length, 1);
            lease!.release();
            if (op.twice) lease!.release();
            released.push(lease!);
          } else if (released.length > 0) {
            released[op.index % released.length]!.release(); // stale releases change nothing
          }
          expect(limiter.stats()).toEqual({
            total: live.length,
            clients: new Set(live.filter((l) => l.client !== undefined).map((l) => l.client)).size,
            channels: new Set(live.map((l) => l.channel)).size,
            buckets: 0,
          });
        }
      }),
      { numRuns: 300 },
    );
  });
});
