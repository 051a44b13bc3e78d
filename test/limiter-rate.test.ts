import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConnectionLimiter, LongPollError, type LimiterOptions } from '../src/index.js';
import { rejection } from './support/expect-error.js';

const charge = (limiter: ConnectionLimiter, client: string | undefined): void => limiter.charge(client);
const bucketsOf = (limiter: ConnectionLimiter): number => limiter.stats().buckets;

describe('ConnectionLimiter: request rate per client', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lets a client make `requests` requests at once, then refuses with limit rate and a Retry-After from the refill', async () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 3, per: 60_000 } });
    for (let i = 0; i < 3; i++) charge(limiter, 'a');
    const error = await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
    expect(error.status).toBe(429);
    expect(error.limit).toBe('rate');
    // One token comes back every 20 s.
    expect(error.retryAfter).toBe(20);
    vi.advanceTimersByTime(15_000);
    expect((await rejection(() => charge(limiter, 'a'), 'limit_exceeded')).retryAfter).toBe(5);
    vi.advanceTimersByTime(5_000);
    charge(limiter, 'a');
    await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
  });

  it('suggests at least one whole second, however fast the bucket refills', async () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 10, per: 100 } });
    for (let i = 0; i < 10; i++) charge(limiter, 'a');
    const error = await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
    expect(error.retryAfter).toBe(1);
    expect(Number.isInteger(error.retryAfter)).toBe(true);
  });

  it('keeps one bucket per client key: one client over its rate does not slow another', async () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 2, per: 1_000 } });
    charge(limiter, 'a');
    charge(limiter, 'a');
    await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
    charge(limiter, 'b');
    charge(limiter, 'b');
  });

  it('refills continuously, never above `requests`', async () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 4, per: 4_000 } });
    vi.advanceTimersByTime(3_600_000);
    for (let i = 0; i < 4; i++) charge(limiter, 'a');
    await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
    vi.advanceTimersByTime(1_000);
    charge(limiter, 'a');
    await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
    vi.advanceTimersByTime(60_000);
    for (let i = 0; i < 4; i++) charge(limiter, 'a');
    await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
  });

  it('charges nothing without a client key or without a rate option', () => {
    const limited = new ConnectionLimiter({ rate: { requests: 1, per: 60_000 } });
    const unlimited = new ConnectionLimiter();
    for (let i = 0; i < 100; i++) {
      charge(limited, undefined);
      charge(unlimited, 'a');
    }
    expect(bucketsOf(limited)).toBe(0);
    expect(bucketsOf(unlimited)).toBe(0);
  });

  it('emits limit with the client, limit rate and the same retryAfter as the error', async () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 1, per: 10_000 } });
    const refused = vi.fn();
    limiter.on('limit', refused);
    charge(limiter, 'a');
    const error = await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
    expect(refused).toHaveBeenCalledTimes(1);
    expect(refused).toHaveBeenCalledWith({ client: 'a', limit: 'rate', retryAfter: error.retryAfter });
  });

  it('drops the bucket of a client idle for `per` (its bucket is full again), so idle clients cost no memory', () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 5, per: 1_000 } });
    for (let i = 0; i < 1_000; i++) charge(limiter, `client${i}`);
    expect(bucketsOf(limiter)).toBe(1_000);
    vi.advanceTimersByTime(1_000);
    charge(limiter, 'late');
    expect(bucketsOf(limiter)).toBe(1);
  });

  it('tracks at most maxClients buckets, however many distinct keys arrive at once', async () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 1, per: 60_000, maxClients: 100 } });
    for (let i = 0; i < 10_000; i++) charge(limiter, `flood${i}`);
    expect(bucketsOf(limiter)).toBe(100);
    // The most recent clients keep their (empty) buckets.
    await rejection(() => charge(limiter, 'flood9999'), 'limit_exceeded');
  });

  it('defaults maxClients to 100,000', () => {
    const limiter = new ConnectionLimiter({ rate: { requests: 1, per: 60_000 } });
    for (let i = 0; i < 100_001; i++) charge(limiter, `k${i}`);
    expect(bucketsOf(limiter)).toBe(100_000);
  });

  it('rejects a bad rate option with invalid_option', async () => {
    const bad: unknown[] = [
      null,
      7,
      {},
      { requests: 0, per: 1000 },
      { requests: 1.5, per: 1000 },
      { requests: 5 },
      { requests: 5, per: 0 },
      { requests: 5, per: Number.POSITIVE_INFINITY },
      { requests: 5, per: Number.NaN },
      { requests: 5, per: 1000, maxClients: 0 },
      { requests: 5, per: 1000, maxClients: 2.5 },
    ];
    for (const rate of bad) {
      await rejection(() => new ConnectionLimiter({ rate } as LimiterOptions), 'invalid_option');
    }
  });
});

describe('ConnectionLimiter: listeners never change answers', () => {
  const full = () => {
    const limiter = new ConnectionLimiter({ perClient: 1 });
    limiter.acquire({ client: 'a', channel: 'c' });
    return limiter;
  };

  it('still refuses with limit_exceeded when a limit listener throws, and emits the listener error as error', async () => {
    const limiter = full();
    const heard: unknown[] = [];
    limiter.on('limit', () => {
      throw new Error('metrics are down');
    });
    limiter.on('error', (error) => heard.push(error));
    const error = await rejection(() => limiter.acquire({ client: 'a', channel: 'c' }), 'limit_exceeded');
    expect(error.status).toBe(429);
    expect(heard).toHaveLength(1);
    expect((heard[0] as Error).message).toBe('metrics are down');
  });

  it('turns a throwing limit listener into a process warning LONGPOLL_LISTENER_ERROR when nobody listens for error', async () => {
    const limiter = full();
    limiter.on('limit', () => {
      throw new Error('metrics are down');
    });
    const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const error = await rejection(() => limiter.acquire({ client: 'a', channel: 'c' }), 'limit_exceeded');
      expect(error.limit).toBe('client');
      expect(warnings).toHaveBeenCalledWith(expect.stringContaining('metrics are down'), expect.objectContaining({ code: 'LONGPOLL_LISTENER_ERROR' }));
    } finally {
      warnings.mockRestore();
    }
  });

  it('keeps the rate refusal when a limit listener throws', async () => {
    vi.useFakeTimers();
    try {
      const limiter = new ConnectionLimiter({ rate: { requests: 1, per: 1_000 } });
      limiter.on('limit', () => {
        throw new Error('boom');
      });
      const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
      charge(limiter, 'a');
      const error = await rejection(() => charge(limiter, 'a'), 'limit_exceeded');
      expect(error.limit).toBe('rate');
      expect(warnings).toHaveBeenCalledTimes(1);
      warnings.mockRestore();
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps the 429 when the error listener itself throws', async () => {
    const limiter = full();
    limiter.on('limit', () => {
      throw new Error('first');
    });
    limiter.on('error', () => {
      throw new Error('second');
    });
    const warnings = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      const error = await rejection(() => limiter.acquire({ client: 'a', channel: 'c' }), 'limit_exceeded');
      expect(error).toBeInstanceOf(LongPollError);
      expect(warnings).toHaveBeenCalledWith(expect.stringContaining('second'), expect.objectContaining({ code: 'LONGPOLL_LISTENER_ERROR' }));
    } finally {
      warnings.mockRestore();
    }
  });
});
