import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { ADAPTERS, FRAMEWORK, PREFIX, refusedByRouter, startServer, type AdapterName, type TestServer } from '../support/servers.js';
import { manyRequest, request, streamRequest, type StreamRequest } from './arbitraries.js';
import { streamHead } from './events.js';
import { hold, until } from './requests.js';

const MAX_WAIT = 200;
/** A request must be answered within the longest wait plus this much. */
const SLACK = 1_500;
/**
 * Runs per entry: 400 for each framework family (node, express, koa, fastify, fetch), split
 * between its majors, so that adding a major costs no time and no family loses cases.
 */
const RUNS: Readonly<Record<AdapterName, number>> = {
  node: 400,
  express: 200,
  express4: 200,
  koa: 200,
  koa2: 200,
  fastify: 200,
  fastify4: 200,
  fetch: 400,
};
/** The same for `GET {prefix}?channels=…`, a fifth as many. */
const MANY_RUNS = Object.fromEntries(Object.entries(RUNS).map(([adapter, runs]) => [adapter, runs / 5])) as Record<AdapterName, number>;
/** The same for event streams, a quarter as many. */
const STREAM_RUNS = Object.fromEntries(Object.entries(RUNS).map(([adapter, runs]) => [adapter, runs / 4])) as Record<AdapterName, number>;
/** The `retry:` every stream of the fuzzed servers starts with. */
const RETRY = 1_500;

type RequestShape = typeof request extends fc.Arbitrary<infer R> ? R : never;

/** Everything on Object.prototype before the run: the fuzz must not add or change any of it. */
const prototypeBefore = Object.getOwnPropertyNames(Object.prototype)
  .sort()
  .map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value] as const);

/** What every problem answer must be: problem+json with every member, and no stack trace. */
function expectProblemBody(status: number, contentType: string, text: string): void {
  expect(contentType, text).toMatch(/^application\/problem\+json/);
  const problem = JSON.parse(text) as Record<string, unknown>;
  expect(problem.type).toBe('about:blank');
  expect(problem.status).toBe(status);
  expect(typeof problem.title).toBe('string');
  expect(typeof problem.detail).toBe('string');
  expect(typeof problem.code).toBe('string');
  expect(text).not.toMatch(/\n\s+at /); // no stack trace
}

describe.each(ADAPTERS)('fuzzing the %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let server: TestServer;
  let limiter: ConnectionLimiter;

  beforeAll(async () => {
    broker = new Broker<unknown>({ capacity: 50 });
    limiter = new ConnectionLimiter({ perClient: 1_000 });
    server = await startServer(adapter, broker, {
      publish: true,
      maxWait: MAX_WAIT,
      defaultWait: 50,
      maxBodyBytes: 2_048,
      limiter,
      retry: RETRY,
    });
    // Some history to return at once, including on a channel named like a prototype key.
    await broker.publish('room:1', { text: 'hi' });
    await broker.publish('__proto__', { text: 'just a name' });
    await broker.publish('a', 1);
    await broker.publish('b', 2);
  });

  afterAll(async () => {
    await server.close();
    await broker.close();
  });

  /** Sends `input` and checks what every answer must be: no 5xx, no hang, problem+json errors. */
  async function fuzzOnce(input: RequestShape): Promise<void> {
    const target = `${server.origin}${input.path}${input.query ? `?${input.query}` : ''}`;
    const headers: Record<string, string | number> = {};
    if (input.prefer !== undefined) headers.prefer = input.prefer;
    if (input.contentType !== undefined) headers['content-type'] = input.contentType;
    const sendsBody = input.body !== undefined && input.method !== 'GET' && input.method !== 'HEAD';
    if (sendsBody) headers['content-length'] = Buffer.byteLength(input.body!);
    const started = performance.now();
    const answer = await hold(target, {
      method: input.method,
      headers,
      ...(sendsBody ? { body: input.body } : {}),
      timeout: MAX_WAIT + SLACK,
    }).answer;
    const elapsed = performance.now() - started;

    expect(answer, `answered ${input.method} ${target}`).toBeDefined();
    const { status, text } = answer!;
    expect(status, text).toBeLessThan(500);
    expect(elapsed).toBeLessThan(MAX_WAIT + SLACK);
    const contentType = String(answer!.headers['content-type'] ?? '');
    // Express, Koa and Fastify leave what is outside their prefix to the app; Fastify's router
    // answers a path it cannot decode itself, before any plugin (see refusedByRouter).
    const framework = FRAMEWORK[adapter];
    // `{prefix}?channels=…` is the adapter's on every framework.
    const many = (input.path === PREFIX || input.path === `${PREFIX}/`) && new URLSearchParams(input.query).has('channels');
    const ours =
      (input.path.startsWith(`${PREFIX}/`) || many || framework === 'node' || framework === 'fetch') && !refusedByRouter(adapter, input.path);
    if (ours) expect(answer!.headers['cache-control']).toBe('no-store');
    if (status >= 400 && ours && input.method !== 'HEAD') expectProblemBody(status, contentType, text);
    if ((status === 200 || status === 201) && input.method !== 'HEAD') {
      expect(contentType).toMatch(/^application\/json/);
      expect(() => JSON.parse(text) as unknown).not.toThrow();
      expect(answer!.headers['longpoll-cursor']).toBeTruthy();
    }
    if (status === 405) expect(answer!.headers.allow).toBe(many ? 'GET' : 'GET, POST');
    if (status === 429 || status === 503) expect(Number(answer!.headers['retry-after'])).toBeGreaterThanOrEqual(1);

    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }

  it('never answers 5xx, never hangs past the wait, and always answers errors with problem+json', async () => {
    await fc.assert(fc.asyncProperty(request, fuzzOnce), { numRuns: RUNS[adapter], interruptAfterTimeLimit: 20_000 });
    const prototypeAfter = Object.getOwnPropertyNames(Object.prototype)
      .sort()
      .map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value] as const);
    expect(prototypeAfter).toEqual(prototypeBefore);
    // Every poll was answered: nothing is left held, no lease leaked.
    expect(broker.stats().waiters).toBe(0);
  }, 30_000);

  it('never answers 5xx or hangs on GET ?channels= with hostile lists and cursors', async () => {
    // Cursors the server issued: composite ones of other lists, a single channel's, another broker's.
    const other = new Broker<unknown>();
    await other.publish('a', 1);
    const issued = [
      (await broker.readMany(['room:1', 'a'])).cursor,
      (await broker.readMany(['a', 'b', 'c'])).cursor,
      (await broker.readMany(['__proto__', 'room:1'], { limit: 1 })).cursor,
      (await broker.read('room:1')).cursor,
      (await other.readMany(['a', 'room:1'])).cursor,
    ];
    await other.close();
    await fc.assert(fc.asyncProperty(manyRequest(issued), fuzzOnce), { numRuns: MANY_RUNS[adapter], interruptAfterTimeLimit: 10_000 });
    expect(broker.stats().waiters).toBe(0);
  }, 20_000);
  /**
   * Sends `input` asking for an event stream and checks what every answer must be: an accepted
   * stream's head (its `retry:` and an `id:`) within the bound, else an answer as for a poll.
   */
  async function streamOnce(input: StreamRequest): Promise<string> {
    const { path, query } = input.target;
    const target = `${server.origin}${path}${query ? `?${query}` : ''}`;
    const headers: Record<string, string | number> = { accept: input.accept };
    if (input.lastEventId !== undefined) headers['last-event-id'] = input.lastEventId;
    const sendsBody = input.body !== undefined && input.method !== 'GET' && input.method !== 'HEAD';
    if (sendsBody) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(input.body) });
    const started = performance.now();
    const head = await streamHead(target, { method: input.method, headers, ...(sendsBody ? { body: input.body } : {}), timeout: SLACK });
    const elapsed = performance.now() - started;
    const what = `${input.method} ${target} (Last-Event-ID ${JSON.stringify(input.lastEventId)})`;
    expect(head, `answered ${what}`).toBeDefined();
    const { status, text, streamed } = head!;
    expect(head!.complete, `${what}: the head or the whole answer in time, got ${status} ${JSON.stringify(text.slice(0, 300))}`).toBe(true);
    expect(status, text).toBeLessThan(500);
    expect(elapsed).toBeLessThan(SLACK);
    const many = (path === PREFIX || path === `${PREFIX}/`) && new URLSearchParams(query).has('channels');
    const framework = FRAMEWORK[adapter];
    const ours = (path.startsWith(`${PREFIX}/`) || many || framework === 'node' || framework === 'fetch') && !refusedByRouter(adapter, path);
    if (ours) expect(head!.headers['cache-control']).toBe('no-store');
    if (streamed) {
      expect(input.method).toBe('GET');
      expect(head!.headers['x-accel-buffering']).toBe('no');
      expect(head!.headers['longpoll-cursor']).toBeUndefined();
      // The head: `retry:`, and at once the starting cursor when the request named one.
      const start = input.lastEventId?.trim() || new URLSearchParams(query).get('cursor') || undefined;
      expect(text.split('\n\n')[0], what).toBe(`retry: ${RETRY}${start === undefined ? '' : `\nid: ${start}`}`);
    } else if (ours && input.method === 'GET') {
      // A GET of ours that asks for a stream is a stream or a problem, never a poll's answer.
      expect(status, text).toBeGreaterThanOrEqual(400);
    }
    if (status >= 400 && ours && input.method !== 'HEAD') expectProblemBody(status, String(head!.headers['content-type'] ?? ''), text);
    if (status === 405) expect(head!.headers.allow).toBe(many ? 'GET' : 'GET, POST');
    if (status === 429 || status === 503) expect(Number(head!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    return streamed ? 'stream' : String(status);
  }

  it('never answers 5xx or hangs to event stream requests with hostile Accept, Last-Event-ID and queries, and frees every lease', async () => {
    // Cursors the server issued: this channel's, another's, composite ones, another broker's.
    const other = new Broker<unknown>();
    await other.publish('a', 1);
    await other.publish('room:1', 1);
    const issued = [
      (await broker.read('room:1')).cursor,
      (await broker.read('room:1', { limit: 1 })).cursor,
      (await broker.read('a')).cursor,
      (await broker.read('__proto__')).cursor,
      (await broker.readMany(['room:1', 'a'])).cursor,
      (await broker.readMany(['a', 'b', 'c'], { limit: 1 })).cursor,
      (await other.read('room:1')).cursor,
      (await other.readMany(['a', 'room:1'])).cursor,
    ];
    await other.close();
    // And cursors of channels and lists with history, to resume them from.
    const resume: Record<string, string[]> = {};
    for (const list of ['room:1', 'a', '__proto__', 'room:1,a', 'a,b,c', '__proto__,room:1']) {
      const names = list.split(',');
      const read = (limit: number) => (names.length === 1 ? broker.read(list, { limit }) : broker.readMany(names, { limit }));
      resume[list] = [(await read(1)).cursor, (await read(100)).cursor];
    }
    const outcomes = new Set<string>();
    await fc.assert(
      fc.asyncProperty(streamRequest(issued, { anywhere: true, resume }), async (input) => {
        outcomes.add(await streamOnce(input));
      }),
      { numRuns: STREAM_RUNS[adapter], interruptAfterTimeLimit: 10_000 },
    );
    // The runs reached streams and the refusals before them.
    expect([...outcomes]).toEqual(expect.arrayContaining(['stream', '400']));
    // Every stream was closed by its client: nothing is left held, no lease leaked.
    await until(() => limiter.stats().total === 0 && broker.stats().waiters === 0, 'every lease and waiter is released');
  }, 20_000);
});
