import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type Fetch, type Message, subscribe, type Subscription, type SubscriptionError } from 'longpoll-kit/client';

// The client's timing and its reading of answers, with fake timers and a scripted fetch that
// behaves like a server: it answers each request with the next step of its script, and once
// the script is exhausted it holds the request until it is aborted (as a long poll would), so
// no test can spin in an endless re-poll loop. Real servers: client.test.ts.

type Step = Response | Error | ((signal: AbortSignal) => Promise<Response>);

interface Call {
  url: URL;
  at: number;
  signal: AbortSignal;
  headers: Headers;
}

function scriptedFetch(steps: Step[]): Fetch & { calls: Call[] } {
  const calls: Call[] = [];
  const fetch = async (url: string, init: RequestInit) => {
    const signal = init.signal!;
    calls.push({ url: new URL(url), at: Date.now(), signal, headers: new Headers(init.headers) });
    const step = steps.shift();
    if (step instanceof Response) return step;
    if (step instanceof Error) throw step;
    if (step) return step(signal);
    return new Promise<Response>((_, reject) => {
      if (signal.aborted) reject(signal.reason as Error);
      signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
    });
  };
  return Object.assign(fetch, { calls });
}

const message = (id: string, data: number): Message<number> => ({ id, channel: 'room', data, publishedAt: '2026-01-01T00:00:00.000Z' });
const answer = (messages: Message<number>[], cursor: string) => Response.json({ messages, cursor, timedOut: messages.length === 0 });
const problem = (status: number, code: string, headers: Record<string, string> = {}, extra = {}) =>
  Response.json({ type: 'about:blank', title: code, status, detail: code, code, ...extra }, { status, headers });
const refused = () => new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9') });

const URL_ = 'http://127.0.0.1:9/channels/room';
const subs: Subscription<number>[] = [];
function start(fetch: Fetch, options: Parameters<typeof subscribe>[1] = {}) {
  const sub = subscribe<number>(URL_, { fetch, ...options });
  subs.push(sub);
  const seen = { messages: [] as number[], errors: [] as SubscriptionError[], resets: [] as (string | undefined)[], opened: 0 };
  sub.on('message', (m) => seen.messages.push(m.data));
  sub.on('error', (e) => seen.errors.push(e));
  sub.on('reset', (e) => seen.resets.push(e.earliestCursor));
  sub.on('open', () => seen.opened++);
  return { sub, seen };
}

const gaps = (calls: Call[]) => calls.slice(1).map((call, i) => call.at - calls[i]!.at);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  for (const sub of subs.splice(0)) sub.close();
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('backoff after network errors and 5xx', () => {
  it('grows exponentially from 1 s and is capped at 30 s by default', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const fetch = scriptedFetch(Array.from({ length: 8 }, refused));
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(125_000); // 1 + 2 + 4 + 8 + 16 + 30 + 30 + 30 s, and a bit
    expect(fetch.calls).toHaveLength(9);
    const ceilings = [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000];
    expect(seen.errors.map((e) => e.retryIn)).toEqual(ceilings.map((c) => c * 0.999));
    expect(gaps(fetch.calls)).toEqual(ceilings.map((c) => Math.round(c * 0.999)));
    expect(seen.errors.every((e) => !e.fatal && e.status === undefined)).toBe(true);
    expect(seen.errors[0]!.message).toMatch(/ECONNREFUSED/);
  });

  it('waits a uniformly random part of each ceiling (full jitter)', async () => {
    const random = vi.spyOn(Math, 'random');
    for (const r of [0.1, 0.9, 0.5, 0]) random.mockReturnValueOnce(r);
    const fetch = scriptedFetch([refused(), refused(), refused(), refused()]);
    start(fetch);
    await vi.advanceTimersByTimeAsync(10_000);
    // ceilings 1, 2, 4 and 8 s: 0.1 × 1000, 0.9 × 2000, 0.5 × 4000, then 0 (the next tick)
    expect(gaps(fetch.calls).slice(0, 3)).toEqual([100, 1800, 2000]);
    expect(gaps(fetch.calls)[3]).toBeLessThanOrEqual(1);
  });

  it('takes its initial delay and cap from the backoff option', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const fetch = scriptedFetch([problem(500, 'internal'), new Response('bad gateway', { status: 502 }), refused(), refused(), refused()]);
    const { seen } = start(fetch, { backoff: { initial: 100, max: 250 } });
    await vi.advanceTimersByTimeAsync(5000);
    expect(gaps(fetch.calls)).toEqual([50, 100, 125, 125, 125]);
    expect(seen.errors.slice(0, 2)).toMatchObject([
      { status: 500, code: 'internal', fatal: false },
      { status: 502, code: undefined, fatal: false },
    ]);
  });

  it('starts again from the initial delay after a success', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const fetch = scriptedFetch([refused(), refused(), refused(), answer([message('01A', 1)], 'c1'), refused(), refused()]);
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(6000);
    // 500, 1000, 2000; the success; a re-poll on the next turn (1 ms) that fails; then 500 and 1000 again
    expect(gaps(fetch.calls)).toEqual([500, 1000, 2000, 1, 500, 1000]);
    expect(seen.messages).toEqual([1]);
    expect(seen.opened).toBe(1);
  });

  it('never lets a retry or a request timer outlive close()', async () => {
    const fetch = scriptedFetch([refused()]);
    const { sub } = start(fetch);
    await vi.advanceTimersByTimeAsync(1);
    expect(vi.getTimerCount()).toBeGreaterThan(0); // the backoff's sleep
    sub.close();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fetch.calls).toHaveLength(1);
  });
});

describe('Retry-After', () => {
  it.each([429, 503])('waits exactly the seconds a %i asks for, then polls again', async (status) => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const fetch = scriptedFetch([problem(status, status === 429 ? 'limit_exceeded' : 'shutting_down', { 'retry-after': '3' })]);
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(2999);
    expect(fetch.calls).toHaveLength(1);
    expect(seen.errors).toMatchObject([{ status, fatal: false, retryIn: 3000 }]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetch.calls).toHaveLength(2);
  });

  it('reads an HTTP date, and falls back to the backoff without a header', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const inFiveSeconds = new Date(Date.now() + 5000).toUTCString();
    const fetch = scriptedFetch([problem(503, 'unavailable', { 'retry-after': inFiveSeconds }), problem(503, 'unavailable'), refused()]);
    start(fetch);
    await vi.advanceTimersByTimeAsync(10_000);
    // 5 s as dated (to the second); then 0.5 × 2 s and 0.5 × 4 s: a Retry-After is a backoff step too
    expect(gaps(fetch.calls)[0]).toBeGreaterThan(4000);
    expect(gaps(fetch.calls)[0]).toBeLessThanOrEqual(5000);
    expect(gaps(fetch.calls).slice(1)).toEqual([1000, 2000]);
  });
});

describe('the request deadline', () => {
  it('abandons a request `timeoutMargin` after the wait, aborts it, and retries with backoff', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const fetch = scriptedFetch([answer([], 'c1')]); // then the held poll is never answered
    const { seen } = start(fetch, { wait: 1000, timeoutMargin: 500, backoff: { initial: 20, max: 20 } });
    await vi.advanceTimersByTimeAsync(1499);
    expect(fetch.calls.map((c) => c.url.searchParams.get('wait'))).toEqual(['0', '1']);
    expect(seen.errors).toEqual([]);
    expect(fetch.calls[1]!.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetch.calls[1]!.signal.aborted).toBe(true); // not left running
    expect(seen.errors).toMatchObject([{ fatal: false, retryIn: 10, message: expect.stringContaining('No answer within 1500 ms') }]);
    await vi.advanceTimersByTimeAsync(10);
    expect(fetch.calls).toHaveLength(3);
    // After a failure, the next poll asks for an answer at once: its deadline is the margin.
    expect(fetch.calls[2]!.url.searchParams.get('wait')).toBe('0');
    await vi.advanceTimersByTimeAsync(499);
    expect(seen.errors).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.errors[1]!.message).toContain('No answer within 500 ms');
  });

  it('is cleared as soon as the answer is read', async () => {
    const fetch = scriptedFetch([answer([], 'c1')]);
    start(fetch, { wait: 1000, timeoutMargin: 500 });
    await vi.advanceTimersByTimeAsync(0);
    // The first request's deadline is gone; only the second, held request's one is left.
    expect(fetch.calls).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(1);
    expect(fetch.calls[0]!.signal.aborted).toBe(true); // released: its connection is free
  });
});

describe('answers', () => {
  it('de-duplicates messages by id, also across a reset', async () => {
    const fetch = scriptedFetch([
      answer([message('01A', 1), message('01B', 2)], 'c2'),
      answer([message('01B', 2), message('01C', 3)], 'c3'),
      problem(410, 'cursor_expired', {}, { earliestCursor: 'c0' }),
      answer([message('01A', 1), message('01B', 2), message('01C', 3), message('01D', 4)], 'c4'),
    ]);
    const { sub, seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.messages).toEqual([1, 2, 3, 4]);
    expect(seen.resets).toEqual(['c0']);
    expect(fetch.calls.map((c) => c.url.searchParams.get('cursor'))).toEqual([null, 'c2', 'c3', 'c0', 'c4']);
    expect(sub.cursor).toBe('c4');
  });

  it('remembers the last 1000 ids only, so de-duplication uses bounded memory', async () => {
    const ids = Array.from({ length: 1001 }, (_, i) => `01ID${String(i).padStart(5, '0')}`);
    const fetch = scriptedFetch([
      answer(ids.slice(0, 1000).map((id, i) => message(id, i)), 'c1'),
      answer([message(ids[1000]!, 1000)], 'c2'),
      answer([message(ids[1]!, 1), message(ids[0]!, 0)], 'c3'), // the 1000th-newest is known; the oldest is forgotten
    ]);
    const { seen } = start(fetch, { limit: 1000 });
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.messages).toHaveLength(1002);
    expect(seen.messages.slice(-1)).toEqual([0]);
  });

  it('rehydrates from everything retained after a 410 that names no earliest cursor', async () => {
    const fetch = scriptedFetch([problem(410, 'cursor_expired')]);
    const { seen } = start(fetch, { cursor: 'old' });
    await vi.advanceTimersByTimeAsync(0);
    expect(seen.resets).toEqual([undefined]);
    expect(fetch.calls.map((c) => c.url.searchParams.get('cursor'))).toEqual(['old', null]);
  });

  it('backs off when resets follow each other, instead of looping at network speed', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const expired = () => problem(410, 'cursor_expired', {}, { earliestCursor: 'c0' });
    const fetch = scriptedFetch([expired(), expired(), expired(), expired(), answer([message('01A', 1)], 'c1'), expired(), expired()]);
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10_000);
    // the first reset polls again on the next turn (≤ 1 ms); the next ones wait 500, 1000, 2000; a success resets that
    expect(gaps(fetch.calls)).toEqual([0, 500, 1000, 2000, 1, 1, 500]);
    expect(seen.resets).toHaveLength(6);
    expect(seen.messages).toEqual([1]);
  });

  it('moves its cursor with the Longpoll-Cursor header of 204 and 304 timeouts', async () => {
    const fetch = scriptedFetch([
      new Response(null, { status: 204, headers: { 'longpoll-cursor': 'c1' } }),
      new Response(null, { status: 304, headers: { 'longpoll-cursor': 'c2' } }),
    ]);
    const { sub, seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(1000); // the 304 came at once, not held: a backoff step
    expect(fetch.calls.map((c) => c.url.searchParams.get('cursor'))).toEqual([null, 'c1', 'c2']);
    expect(sub.cursor).toBe('c2');
    expect(seen.opened).toBe(1);
  });

  it('keeps its cursor through 204 and 304 timeouts whose Longpoll-Cursor it cannot read (CORS)', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const held = (status: number) => (signal: AbortSignal) =>
      new Promise<Response>((resolve) => {
        const timer = setTimeout(() => resolve(new Response(null, { status })), 1000);
        signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
      });
    const fetch = scriptedFetch([new Response(null, { status: 204 }), held(304), held(204), answer([message('01A', 1)], 'c1')]);
    const { sub, seen } = start(fetch, { cursor: 'c0', wait: 1000 });
    await vi.advanceTimersByTimeAsync(2010);
    expect(seen.errors).toEqual([]);
    expect(seen.opened).toBe(1);
    expect(fetch.calls.map((c) => c.url.searchParams.get('cursor'))).toEqual(['c0', 'c0', 'c0', 'c0', 'c1']);
    expect(seen.messages).toEqual([1]);
    expect(sub.cursor).toBe('c1');
  });

  it('polls without a cursor through 204 timeouts when it never had one', async () => {
    const fetch = scriptedFetch([new Response(null, { status: 204 }), answer([message('01A', 1)], 'c1')]);
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.errors).toEqual([]);
    expect(fetch.calls.map((c) => c.url.searchParams.get('cursor'))).toEqual([null, null, 'c1']);
    expect(seen.messages).toEqual([1]);
  });

  it('retries, with backoff, a success that is not a poll result', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const fetch = scriptedFetch([new Response('<html>captive portal</html>', { status: 200 }), answer([], 'c1')]);
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(499);
    expect(fetch.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(fetch.calls).toHaveLength(3); // the retry succeeded; the next poll is held
    expect(seen.errors).toMatchObject([{ status: 200, fatal: false, retryIn: 500 }]);
    expect(seen.opened).toBe(1);
  });

  it('sends wait in seconds, the limit, and fresh headers with every poll', async () => {
    let token = 0;
    const fetch = scriptedFetch([answer([], 'c1')]);
    start(fetch, { wait: 1500, limit: 7, headers: () => ({ authorization: `Bearer ${++token}` }) });
    await vi.advanceTimersByTimeAsync(0);
    expect(fetch.calls.map((c) => c.headers.get('authorization'))).toEqual(['Bearer 1', 'Bearer 2']);
    expect(fetch.calls[0]!.headers.get('accept')).toBe('application/json');
    // The first poll is answered at once (so `open` is prompt); the next ones are held.
    expect(fetch.calls.map((c) => c.url.search)).toEqual(['?wait=0&limit=7', '?cursor=c1&wait=1.5&limit=7']);
  });
});

describe('closing', () => {
  it('stops at once when a message listener closes it, without moving its cursor past the batch', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1), message('01B', 2), message('01C', 3)], 'c3')]);
    const { sub, seen } = start(fetch, { cursor: 'c0' });
    sub.on('message', () => sub.close());
    await vi.advanceTimersByTimeAsync(1000);
    expect(seen.messages).toEqual([1]);
    expect(sub.cursor).toBe('c0'); // resuming repeats a message rather than skipping two
    expect(fetch.calls).toHaveLength(1);
  });

  it('aborts the request in flight and emits close once, on close() or its signal', async () => {
    const fetch = scriptedFetch([]);
    const controller = new AbortController();
    const { sub } = start(fetch, { signal: controller.signal });
    const closed = vi.fn();
    sub.on('close', closed);
    await vi.advanceTimersByTimeAsync(0);
    controller.abort();
    expect(fetch.calls[0]!.signal.aborted).toBe(true);
    sub.close();
    expect(closed).toHaveBeenCalledOnce();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('closes without a request when its signal is already aborted', async () => {
    const fetch = scriptedFetch([]);
    const { sub } = start(fetch, { signal: AbortSignal.abort() });
    const closed = vi.fn();
    sub.on('close', closed);
    await vi.advanceTimersByTimeAsync(0);
    expect(closed).toHaveBeenCalledOnce();
    expect(fetch.calls).toHaveLength(0);
  });

  it('ends a for-await loop after the buffered messages, and throws a fatal error there', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1), message('01B', 2)], 'c2'), problem(401, 'unauthorized')]);
    const { sub, seen } = start(fetch);
    const read: number[] = [];
    const loop = (async () => {
      for await (const m of sub) read.push(m.data);
    })();
    const outcome = expect(loop).rejects.toMatchObject({ status: 401, code: 'unauthorized', fatal: true });
    await vi.advanceTimersByTimeAsync(0);
    await outcome;
    expect(read).toEqual([1, 2]);
    expect(seen.errors).toHaveLength(1);
    expect(fetch.calls).toHaveLength(2);
    expect(() => sub[Symbol.asyncIterator]()).toThrow(/only once/);
  });

  it('reports a listener that throws without stopping the others', async () => {
    const reported: unknown[] = [];
    vi.stubGlobal('reportError', (error: unknown) => reported.push(error));
    const fetch = scriptedFetch([answer([message('01A', 1)], 'c1')]);
    const sub = subscribe<number>(URL_, { fetch });
    subs.push(sub);
    const seen: number[] = [];
    sub.on('message', () => {
      throw new Error('a bug in the page');
    });
    sub.on('message', (m) => seen.push(m.data));
    await vi.advanceTimersByTimeAsync(0);
    vi.unstubAllGlobals();
    expect(seen).toEqual([1]);
    expect(reported).toMatchObject([{ message: 'a bug in the page' }]);
    expect(sub.closed).toBe(false);
  });
});

describe('the async iterator, created late', () => {
  it('hands a late iterator every message, from the first one the subscription received', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1), message('01B', 2), message('01C', 3)], 'c3'), answer([message('01D', 4)], 'c4')]);
    const sub = subscribe<number>(URL_, { fetch });
    subs.push(sub);
    await vi.advanceTimersByTimeAsync(100); // answers came in before anyone reads
    const read: number[] = [];
    for await (const m of sub) {
      read.push(m.data);
      if (read.length === 4) break;
    }
    expect(read).toEqual([1, 2, 3, 4]);
  });

  it('asks for no more messages than its buffer takes, from the first poll on', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1), message('01B', 2)], 'c2')]);
    const sub = subscribe<number>(URL_, { fetch, bufferSize: 2, limit: 50 });
    subs.push(sub);
    await vi.advanceTimersByTimeAsync(10);
    expect(fetch.calls[0]!.url.searchParams.get('limit')).toBe('2');
    // The buffer is full and nobody reads yet: polling pauses instead of dropping.
    expect(fetch.calls).toHaveLength(1);
    const iterator = sub[Symbol.asyncIterator]();
    expect(await iterator.next()).toEqual({ value: message('01A', 1), done: false });
    await vi.advanceTimersByTimeAsync(10);
    expect(fetch.calls).toHaveLength(2);
    expect(fetch.calls[1]!.url.searchParams.get('limit')).toBe('1');
  });

  it('never stalls a subscription read only through message listeners', async () => {
    const pair = (n: number) => answer([message(`01${n}A`, n), message(`01${n}B`, n)], `c${n}`);
    const fetch = scriptedFetch([pair(1), pair(2), pair(3)]);
    const { seen } = start(fetch, { bufferSize: 2 });
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.messages).toEqual([1, 1, 2, 2, 3, 3]);
    expect(fetch.calls).toHaveLength(4);
  });

  it('keeps the buffered messages and the fatal error for an iterator created after the end', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1)], 'c1'), problem(403, 'forbidden')]);
    const sub = subscribe<number>(URL_, { fetch });
    subs.push(sub);
    await vi.advanceTimersByTimeAsync(10);
    expect(sub.closed).toBe(true);
    sub.on('message', () => {}); // too late to matter
    const read: number[] = [];
    await expect(
      (async () => {
        for await (const m of sub) read.push(m.data);
      })(),
    ).rejects.toMatchObject({ status: 403, fatal: true });
    expect(read).toEqual([1]);
  });

  it('reads from its creation on when a message listener came first', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1)], 'c1'), (signal) => held(signal, 1000, answer([message('01B', 2)], 'c2'))]);
    const { sub, seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10);
    const iterator = sub[Symbol.asyncIterator]();
    const next = iterator.next();
    await vi.advanceTimersByTimeAsync(1000);
    expect(await next).toEqual({ value: message('01B', 2), done: false });
    expect(seen.messages).toEqual([1, 2]);
  });
});

/** Answers `response` after `ms`, like a server holding the poll; aborts with the request. */
function held(signal: AbortSignal, ms: number, response: Response): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const timer = setTimeout(() => resolve(response), ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

describe('closing from a listener', () => {
  it('leaves no timer when an error listener closes it during a Retry-After', async () => {
    const fetch = scriptedFetch([problem(503, 'shutting_down', { 'retry-after': '20' })]);
    const { sub } = start(fetch);
    sub.on('error', () => sub.close());
    await vi.advanceTimersByTimeAsync(10);
    expect(sub.closed).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    expect(fetch.calls).toHaveLength(1);
  });

  it('leaves no timer when a reset listener closes it during a reset backoff', async () => {
    const expired = () => problem(410, 'cursor_expired', {}, { earliestCursor: 'c0' });
    const fetch = scriptedFetch([expired(), expired()]);
    const { sub, seen } = start(fetch);
    sub.on('reset', () => {
      if (seen.resets.length === 2) sub.close();
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(sub.closed).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('leaves no timer when an open listener closes it', async () => {
    const fetch = scriptedFetch([answer([], 'c1')]);
    const { sub } = start(fetch);
    sub.on('open', () => sub.close());
    await vi.advanceTimersByTimeAsync(10);
    expect(vi.getTimerCount()).toBe(0);
    expect(fetch.calls).toHaveLength(1);
  });
});

describe('a Retry-After that cannot be taken as it is', () => {
  const pastDate = 'Sun, 06 Nov 1994 08:49:37 GMT';
  it.each([['0'], ['1.5'], [pastDate], ['soon'], ['-5']])('backs off instead of looping on Retry-After: %s', async (value) => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const fetch = scriptedFetch(Array.from({ length: 50 }, () => problem(503, 'shutting_down', { 'retry-after': value })));
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10_000);
    // backoff steps of 999, 1998 and 3996 ms: the 5th request would come at about 15 s
    expect(fetch.calls).toHaveLength(4);
    expect(seen.errors.map((e) => e.retryIn)).toEqual([999, 1998, 3996, 7992]);
  });

  it('waits no longer than backoff.max, also for a Retry-After a timer cannot hold', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const fetch = scriptedFetch([problem(503, 'shutting_down', { 'retry-after': '99999999' })]);
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(fetch.calls).toHaveLength(1);
    expect(seen.errors).toMatchObject([{ retryIn: 30_000 }]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fetch.calls).toHaveLength(2);
  });
});

describe('the cursor event', () => {
  it('gives the cursor to save after each batch was emitted, never undefined', async () => {
    const fetch = scriptedFetch([
      answer([message('01A', 1), message('01B', 2)], 'c2'),
      problem(410, 'cursor_expired'),
      answer([message('01C', 3)], 'c3'),
      problem(410, 'cursor_expired', {}, { earliestCursor: 'c0' }),
    ]);
    const sub = subscribe<number>(URL_, { fetch });
    subs.push(sub);
    const log: string[] = [];
    sub.on('message', (m) => log.push(`message ${m.data} (cursor ${String(sub.cursor)})`));
    sub.on('cursor', (cursor) => log.push(`cursor ${cursor}`));
    await vi.advanceTimersByTimeAsync(10);
    expect(log).toEqual(['message 1 (cursor undefined)', 'message 2 (cursor undefined)', 'cursor c2', 'message 3 (cursor undefined)', 'cursor c3', 'cursor c0']);
  });
});

/** A 200 answer whose body arrives in `parts`, one every `every` ms; the request's abort errors it. */
function trickle(signal: AbortSignal, body: string, parts: number, every: number, stallAfter = Infinity): Response {
  const bytes = new TextEncoder().encode(body);
  const size = Math.ceil(bytes.length / parts);
  let sent = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        controller.error(signal.reason);
      }, { once: true });
      const push = () => {
        controller.enqueue(bytes.slice(sent * size, (sent + 1) * size));
        sent++;
        if (sent === parts) controller.close();
        else if (sent < stallAfter) timer = setTimeout(push, every);
      };
      timer = setTimeout(push, every);
    },
  });
  return new Response(stream, { status: 200, headers: { 'content-type': 'application/json' } });
}

describe('reading a large answer', () => {
  const backlog = JSON.stringify({ messages: Array.from({ length: 10 }, (_, i) => message(`01B${i}`, i)), cursor: 'c10', timedOut: false });

  it('reads a body that keeps coming for longer than the deadline', async () => {
    const fetch = scriptedFetch([(signal) => Promise.resolve(trickle(signal, backlog, 5, 400))]);
    const { seen } = start(fetch, { timeoutMargin: 500 });
    await vi.advanceTimersByTimeAsync(2100);
    expect(seen.errors).toEqual([]);
    expect(seen.messages).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('abandons a body that stops coming for timeoutMargin', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const fetch = scriptedFetch([(signal) => Promise.resolve(trickle(signal, backlog, 5, 400, 2))]);
    const { seen } = start(fetch, { timeoutMargin: 500 });
    await vi.advanceTimersByTimeAsync(1299);
    expect(seen.errors).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(seen.errors).toMatchObject([{ fatal: false, message: expect.stringContaining('no progress within 500 ms') }]);
    expect(fetch.calls[0]!.signal.aborted).toBe(true);
    expect(seen.messages).toEqual([]);
  });
});

describe('a listener that throws', () => {
  it('becomes an error event in Node, and neither crashes the process nor stops the polling', async () => {
    expect((globalThis as { reportError?: unknown }).reportError).toBeUndefined();
    const fetch = scriptedFetch([answer([message('01A', 1)], 'c1'), answer([message('01B', 2)], 'c2')]);
    const sub = subscribe<number>(URL_, { fetch });
    subs.push(sub);
    const bug = new Error('a bug in the app');
    const errors: SubscriptionError[] = [];
    const seen: number[] = [];
    sub.on('message', (m) => {
      if (m.data === 1) throw bug;
    });
    sub.on('message', (m) => seen.push(m.data));
    sub.on('error', (e) => errors.push(e));
    await vi.advanceTimersByTimeAsync(10);
    expect(seen).toEqual([1, 2]);
    expect(errors).toMatchObject([{ code: 'listener_error', fatal: false, cause: bug, message: expect.stringContaining('a bug in the app') }]);
    expect(sub.closed).toBe(false);
    expect(fetch.calls).toHaveLength(3);
  });

  it('logs a listener that throws when nobody listens to error', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const fetch = scriptedFetch([answer([message('01A', 1)], 'c1'), answer([message('01B', 2)], 'c2')]);
    const sub = subscribe<number>(URL_, { fetch });
    subs.push(sub);
    sub.on('message', () => {
      throw new Error('a bug in the app');
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(logged).toHaveBeenCalledTimes(2);
    expect(logged.mock.calls[0]![1]).toMatchObject({ message: 'a bug in the app' });
    expect(fetch.calls).toHaveLength(3);
  });

  it('logs an error listener that throws, instead of looping or crashing', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const fetch = scriptedFetch([problem(500, 'internal')]);
    const { sub } = start(fetch);
    sub.on('error', () => {
      throw new Error('a bug in the error handler');
    });
    await vi.advanceTimersByTimeAsync(10);
    expect(logged).toHaveBeenCalledOnce();
    expect(logged.mock.calls[0]![1]).toMatchObject({ message: 'a bug in the error handler' });
    expect(sub.closed).toBe(false);
  });
});

describe('a server that does not hold polls', () => {
  it('backs off when empty answers come back far sooner than the wait', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const fetch = scriptedFetch(Array.from({ length: 50 }, (_, i) => answer([], `c${i}`)));
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10_000);
    // the first poll asks wait=0 (answered at once, rightly); then backoff steps of 500, 1000,
    // 2000, 4000 ms, the first raised to backoff.initial
    expect(gaps(fetch.calls)).toEqual([0, 1000, 1000, 2000, 4000]);
    expect(seen.errors).toEqual([]);
    expect(seen.opened).toBe(1);
  });

  it('yields to the event loop between polls, even when every answer is ready at once', async () => {
    vi.useRealTimers();
    let n = 0;
    const calls: number[] = [];
    const fetch: Fetch = async (_url, init) => {
      calls.push(++n);
      if (n > 2000) return held(init.signal!, 60_000, answer([], 'end'));
      return answer([message(`01N${n}`, n)], `c${n}`);
    };
    const sub = subscribe<number>(URL_, { fetch, wait: 0 });
    subs.push(sub);
    sub.on('message', () => {});
    const pollsBeforeATimer = await new Promise<number>((resolve) => setTimeout(() => resolve(calls.length), 0));
    sub.close();
    expect(pollsBeforeATimer).toBeLessThan(10);
  });
});

describe('answers larger than maxBodyBytes', () => {
  /** A poll answer padded with spaces (valid JSON) to exactly `bytes` bytes. */
  const padded = (messages: Message<number>[], cursor: string, bytes: number) => {
    const text = JSON.stringify({ messages, cursor, timedOut: messages.length === 0 });
    return new Response(text + ' '.repeat(bytes - text.length), { status: 200, headers: { 'content-type': 'application/json' } });
  };
  const limits = (calls: Call[]) => calls.map((call) => call.url.searchParams.get('limit'));

  it('reads an answer of 8 MiB by default, and asks again with half the limit for one byte more', async () => {
    const fetch = scriptedFetch([padded([message('01A', 1)], 'c1', 8_388_609), padded([message('01A', 1)], 'c1', 8_388_608)]);
    const { sub, seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10);
    expect(limits(fetch.calls)).toEqual(['100', '50', '100']);
    expect(seen.messages).toEqual([1]);
    expect(seen.errors).toEqual([]);
    expect(sub.cursor).toBe('c1');
  });

  it('asks for the full limit again once an answer had fewer messages than it asked for', async () => {
    const fetch = scriptedFetch([
      padded([], 'c0', 1001),
      padded([], 'c0', 1001),
      answer([message('01A', 1), message('01B', 2)], 'c2'), // 2 of 25: the backlog is read
      answer([message('01C', 3)], 'c3'),
    ]);
    const { seen } = start(fetch, { maxBodyBytes: 1000 });
    await vi.advanceTimersByTimeAsync(10);
    expect(limits(fetch.calls)).toEqual(['100', '50', '25', '100', '100']);
    expect(seen.messages).toEqual([1, 2, 3]);
  });

  it('keeps the halved limit while answers come full, so a backlog of large messages is not asked for whole each time', async () => {
    const fetch = scriptedFetch([
      padded([], 'c0', 1001),
      answer([message('01A', 1), message('01B', 2)], 'c2'),
      answer([message('01C', 3), message('01D', 4)], 'c4'),
    ]);
    const { seen } = start(fetch, { maxBodyBytes: 1000, limit: 4 });
    await vi.advanceTimersByTimeAsync(10);
    expect(limits(fetch.calls)).toEqual(['4', '2', '2', '2']);
    expect(seen.messages).toEqual([1, 2, 3, 4]);
  });

  it('reports answer_too_large when one message does not fit, backs off, and keeps asking for one', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const big = () => padded([], 'c0', 2000);
    const fetch = scriptedFetch([big(), big(), big(), big()]);
    const { sub, seen } = start(fetch, { maxBodyBytes: 1000, limit: 2 });
    await vi.advanceTimersByTimeAsync(10);
    expect(limits(fetch.calls)).toEqual(['2', '1']);
    expect(seen.errors).toMatchObject([{ code: 'answer_too_large', status: 200, fatal: false, retryIn: 500 }]);
    await vi.advanceTimersByTimeAsync(500);
    expect(limits(fetch.calls)).toEqual(['2', '1', '1']);
    expect(seen.errors).toHaveLength(2);
    expect(sub.closed).toBe(false);
  });

  it('does not read an oversized problem body, and acts on its status', async () => {
    const fetch = scriptedFetch([new Response('x'.repeat(2000), { status: 404 })]);
    const { sub, seen } = start(fetch, { maxBodyBytes: 1000 });
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.errors).toMatchObject([{ status: 404, fatal: true }]);
    expect(sub.closed).toBe(true);
  });
});

describe('answers that break the protocol', () => {
  it('refuses an answer with more messages than the limit asked for: nothing delivered, the cursor kept', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const three = [message('01A', 1), message('01B', 2), message('01C', 3)];
    const fetch = scriptedFetch([answer(three, 'c3'), answer(three.slice(0, 2), 'c2')]);
    const { sub, seen } = start(fetch, { cursor: 'c0', limit: 2 });
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.messages).toEqual([]);
    expect(sub.cursor).toBe('c0');
    expect(seen.errors).toMatchObject([{ code: 'too_many_messages', status: 200, fatal: false, retryIn: 500 }]);
    await vi.advanceTimersByTimeAsync(500);
    expect(seen.messages).toEqual([1, 2]);
    expect(fetch.calls.map((call) => call.url.searchParams.get('cursor'))).toEqual(['c0', 'c0', 'c2']);
  });

  it('backs off from answers that repeat delivered messages without moving the cursor, and reports no_progress', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    const same = () => answer([message('01A', 1)], 'c1');
    const fetch = scriptedFetch([same(), same(), same(), same(), answer([message('01A', 1), message('01B', 2)], 'c1'), same()]);
    const { seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(5000);
    // 500, 1000, 2000 ms of backoff; the answer with a new message is progress and resets it
    expect(gaps(fetch.calls)).toEqual([0, 500, 1000, 2000, 1, 500]);
    expect(seen.errors.map((error) => error.code)).toEqual(['no_progress', 'no_progress', 'no_progress', 'no_progress']);
    expect(seen.messages).toEqual([1, 2]);
  });

  it('takes repeated messages with a moved cursor as progress (a retried answer, a reset)', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1)], 'c1'), answer([message('01A', 1)], 'c1b')]);
    const { sub, seen } = start(fetch);
    await vi.advanceTimersByTimeAsync(10);
    expect(seen.errors).toEqual([]);
    expect(seen.messages).toEqual([1]);
    expect(sub.cursor).toBe('c1b');
    expect(fetch.calls).toHaveLength(3); // the third poll came at once, and is held
  });
});

describe('wait: 0 (short polling)', () => {
  it('polls again backoff.initial after each empty answer, and at once after messages', async () => {
    const fetch = scriptedFetch([answer([], 'c0'), answer([], 'c0'), answer([message('01A', 1)], 'c1'), answer([], 'c1'), answer([], 'c1')]);
    const { seen } = start(fetch, { wait: 0, backoff: { initial: 300, max: 10_000 } });
    await vi.advanceTimersByTimeAsync(2000);
    expect(gaps(fetch.calls)).toEqual([300, 300, 1, 300, 300]);
    expect(fetch.calls.every((call) => call.url.searchParams.get('wait') === '0')).toBe(true);
    expect(seen.messages).toEqual([1]);
    expect(seen.errors).toEqual([]);
  });
});

describe('options and listeners', () => {
  it('removes a once listener with off', async () => {
    const fetch = scriptedFetch([answer([message('01A', 1)], 'c1')]);
    const { sub } = start(fetch);
    const listener = vi.fn();
    sub.once('message', listener);
    sub.off('message', listener);
    await vi.advanceTimersByTimeAsync(10);
    expect(listener).not.toHaveBeenCalled();
  });

  it('sends a limit above 1000 as 1000, the most a server gives', async () => {
    const fetch = scriptedFetch([]);
    start(fetch, { limit: 5000 });
    await vi.advanceTimersByTimeAsync(0);
    expect(fetch.calls[0]!.url.searchParams.get('limit')).toBe('1000');
  });

  it.each([
    [{ maxBodyBytes: 0 }, /maxBodyBytes/],
    [{ maxBodyBytes: 1.5 }, /maxBodyBytes/],
    [{ timeoutMargin: 0 }, /timeoutMargin/],
    [{ backoff: { max: 2 ** 31 } }, /backoff\.max/],
  ])('refuses %o with invalid_option', (options, message) => {
    expect(() => subscribe(URL_, options)).toThrow(expect.objectContaining({ name: 'LongPollError', code: 'invalid_option', message: expect.stringMatching(message) }));
  });

  it('refuses a relative URL outside a browser with invalid_option', () => {
    expect(() => subscribe('/channels/room')).toThrow(expect.objectContaining({ name: 'LongPollError', code: 'invalid_option', message: expect.stringContaining('absolute') }));
  });
});
