import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { ADAPTERS, FRAMEWORK, PREFIX, refusedByRouter, startServer, type AdapterName, type TestServer } from '../support/servers.js';
import { manyRequest, request } from './arbitraries.js';
import { hold } from './requests.js';

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

type RequestShape = typeof request extends fc.Arbitrary<infer R> ? R : never;

/** Everything on Object.prototype before the run: the fuzz must not add or change any of it. */
const prototypeBefore = Object.getOwnPropertyNames(Object.prototype)
  .sort()
  .map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value] as const);

describe.each(ADAPTERS)('fuzzing the %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let server: TestServer;

  beforeAll(async () => {
    broker = new Broker<unknown>({ capacity: 50 });
    server = await startServer(adapter, broker, {
      publish: true,
      maxWait: MAX_WAIT,
      defaultWait: 50,
      maxBodyBytes: 2_048,
      limiter: new ConnectionLimiter({ perClient: 1_000 }),
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
    if (status >= 400 && ours && input.method !== 'HEAD') {
      expect(contentType).toMatch(/^application\/problem\+json/);
      const problem = JSON.parse(text) as Record<string, unknown>;
      expect(problem.type).toBe('about:blank');
      expect(problem.status).toBe(status);
      expect(typeof problem.title).toBe('string');
      expect(typeof problem.detail).toBe('string');
      expect(typeof problem.code).toBe('string');
      expect(text).not.toMatch(/\n\s+at /); // no stack trace
    }
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
});
