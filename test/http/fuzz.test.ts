import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type TestServer } from '../support/servers.js';
import { hold } from './requests.js';

const MAX_WAIT = 200;
/** A request must be answered within the longest wait plus this much. */
const SLACK = 1_500;
const RUNS = 400;

const headerText = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
const pollutingKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString');

const segment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('room:1', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty') },
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,12}$/) },
  fc.constantFrom('room:1', '__proto__', 'constructor', 'prototype', 'toString', '%ZZ', '%2F', '%00', '..', '.', '', 'a%20b', 'x'.repeat(201)),
  fc.string({ maxLength: 30 }).map(encodeURIComponent),
  fc.stringMatching(/^[A-Za-z0-9%._~:@!$&'()*+,;=-]{0,20}$/),
);

const path = fc.oneof(
  { weight: 6, arbitrary: segment.map((s) => `${PREFIX}/${s}`) },
  { weight: 1, arbitrary: fc.array(segment, { maxLength: 4 }).map((parts) => `/${parts.join('/')}`) },
  { weight: 1, arbitrary: fc.tuple(segment, segment).map(([a, b]) => `${PREFIX}/${a}/${b}`) },
  { weight: 1, arbitrary: fc.constantFrom(PREFIX, `${PREFIX}/`, '/', `${PREFIX}x/room`, '/CHANNELS/room') },
);

const queryValue = fc.oneof(
  fc.constantFrom('0', '0.05', '0.1', '1', '1000', '99999999999999999999', '1e3', '-1', '', '.5', 'abc', 'NaN', 'Infinity', '%ZZ', '__proto__'),
  fc.nat({ max: 2_000 }).map(String),
  fc.double({ min: 0, max: 100, noNaN: true }).map(String),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
);
const query = fc.oneof(
  fc.array(
    fc.tuple(fc.oneof(fc.constantFrom('cursor', 'wait', 'limit'), pollutingKeys, fc.stringMatching(/^[a-z]{1,6}$/)), queryValue),
    { maxLength: 5 },
  ).map((pairs) => pairs.map(([key, value]) => `${key}=${value}`).join('&')),
  fc.stringMatching(/^[A-Za-z0-9%&=._~-]{0,30}$/),
);

const prefer = fc.option(
  fc.oneof(fc.constantFrom('wait=0', 'wait=0.1', 'wait=1000', 'wait=abc', 'wait="0.1"', 'respond-async, wait=0', 'wait', 'WAIT=0.05; x=y'), headerText),
  { nil: undefined },
);
const contentType = fc.option(
  fc.oneof(
    { weight: 4, arbitrary: fc.constant('application/json') },
    fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/cloudevents+json', 'text/plain', 'application/x-www-form-urlencoded', 'json', ';'),
    headerText,
  ),
  { nil: undefined },
);

const pollutingJson = fc
  .tuple(pollutingKeys, fc.jsonValue({ maxDepth: 2 }))
  .map(([key, value]) => `{"${key}":{"polluted":true,"__proto__":{"polluted":true}},"value":${JSON.stringify(value)}}`);
const body = fc.option(
  fc.oneof(
    { weight: 3, arbitrary: fc.json({ maxDepth: 3 }) },
    { weight: 2, arbitrary: pollutingJson },
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 3_000 }).map((bytes) => Buffer.from(bytes)),
    fc.constant('"' + 'y'.repeat(3_000) + '"'),
  ),
  { nil: undefined, freq: 8 },
);

const method = fc.constantFrom('GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH');

const request = fc.record({ method, path, query, prefer, contentType, body });

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
        const ours = input.path.startsWith(`${PREFIX}/`) || adapter === 'node' || adapter === 'fetch';
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
      { numRuns: RUNS, interruptAfterTimeLimit: 20_000 },
    );
    const prototypeAfter = Object.getOwnPropertyNames(Object.prototype)
      .sort()
      .map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value] as const);
    expect(prototypeAfter).toEqual(prototypeBefore);
    // Every poll was answered: nothing is left held, no lease leaked.
    expect(broker.stats().waiters).toBe(0);
  }, 30_000);
});
