import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { ADAPTERS, FRAMEWORK, PREFIX, refusedByRouter, startServer, type AdapterName, type TestServer } from '../support/servers.js';
import { request } from './arbitraries.js';
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
  });

  afterAll(async () => {
    await server.close();
    await broker.close();
  });

  it('never answers 5xx, never hangs past the wait, and always answers errors with problem+json', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (input) => {
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
        const ours =
          (input.path.startsWith(`${PREFIX}/`) || framework === 'node' || framework === 'fetch') && !refusedByRouter(adapter, input.path);
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
        if (status === 405) expect(answer!.headers.allow).toBe('GET, POST');
        if (status === 429 || status === 503) expect(Number(answer!.headers['retry-after'])).toBeGreaterThanOrEqual(1);

        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      { numRuns: RUNS[adapter], interruptAfterTimeLimit: 20_000 },
    );
    const prototypeAfter = Object.getOwnPropertyNames(Object.prototype)
      .sort()
      .map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value] as const);
    expect(prototypeAfter).toEqual(prototypeBefore);
    // Every poll was answered: nothing is left held, no lease leaked.
    expect(broker.stats().waiters).toBe(0);
  }, 30_000);
});
