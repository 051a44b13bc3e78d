import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { longPoll as fetchLongPoll } from '../../src/adapters/fetch.js';
import { ADAPTERS, FRAMEWORK, PREFIX, refusedByRouter, startServer, type AdapterName, type TestServer } from '../support/servers.js';
import { manyRequest, request, streamRequest, type StreamRequest } from './arbitraries.js';
import { blocksOf, streamHead } from './events.js';
import { hold, until } from './requests.js';

const MAX_WAIT = 200;
const SLACK = 1_500;
const RUNS = 150;
/** `heartbeat` is short so that an event stream's first bytes end with a `: ping` once its first reads are written. */
const OPTIONS = { publish: true, maxWait: MAX_WAIT, defaultWait: 50, maxBodyBytes: 2_048, heartbeat: 50, retry: 1_500 } as const;

/** What a user can tell two answers apart by: the status, and the problem code when there is one. */
interface Outcome {
  readonly status: number;
  readonly code: string | undefined;
}

/**
 * What a WHATWG fetch runtime hands the fetch adapter for a request target: `new Request(url)`
 * resolves dot segments, turns `\` into `/` and percent-encodes some characters before any
 * adapter sees the URL. Deno, Bun and the Node bridge all build their Request this way.
 */
function normalised(target: string): string {
  const url = new URL(`http://127.0.0.1${target}`); // as the bridge builds it: '//a' is a path here, not a host
  return url.pathname + url.search;
}

/** A Request whose `url` is the target exactly as sent, as a bridge that keeps the raw request line could pass. */
class RawRequest extends Request {
  readonly #url: string;
  constructor(url: string, init?: RequestInit) {
    super(url, init);
    this.#url = url;
  }

  override get url(): string {
    return this.#url;
  }
}

describe('every adapter on every framework major, given the same request', () => {
  const broker = new Broker<unknown>({ capacity: 50 });
  const servers = {} as Record<AdapterName, TestServer>;

  beforeAll(async () => {
    // One broker behind all of them, so that they answer from the same state.
    const limiter = new ConnectionLimiter({ perClient: 1_000 });
    for (const adapter of ADAPTERS) servers[adapter] = await startServer(adapter, broker, { ...OPTIONS, limiter });
    await broker.publish('room:1', { text: 'hi' });
    await broker.publish('a', 1);
    await broker.publish('b', 2);
  });

  afterAll(async () => {
    await Promise.all(ADAPTERS.map((adapter) => servers[adapter]?.close()));
    await broker.close();
  });

  async function outcome(adapter: AdapterName, target: string, input: RequestShape): Promise<Outcome> {
    const headers: Record<string, string | number> = {};
    if (input.prefer !== undefined) headers.prefer = input.prefer;
    if (input.contentType !== undefined) headers['content-type'] = input.contentType;
    const sendsBody = input.body !== undefined && input.method !== 'GET' && input.method !== 'HEAD';
    if (sendsBody) headers['content-length'] = Buffer.byteLength(input.body!);
    const answer = await hold(`${servers[adapter].origin}${target}`, {
      method: input.method,
      headers,
      ...(sendsBody ? { body: input.body } : {}),
      timeout: MAX_WAIT + SLACK,
    }).answer;
    expect(answer, `${adapter} answered ${input.method} ${target}`).toBeDefined();
    const problem = String(answer!.headers['content-type'] ?? '').startsWith('application/problem+json') && input.method !== 'HEAD';
    return { status: answer!.status, code: problem ? (JSON.parse(answer!.text) as { code: string }).code : undefined };
  }

  it('answers with the same status and problem code on every adapter (fetch: for the target its runtime passes on)', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (input) => {
        const target = `${input.path}${input.query ? `?${input.query}` : ''}`;
        const outcomes = await Promise.all(ADAPTERS.map((adapter) => outcome(adapter, target, input)));
        const node = outcomes[0]!;
        const under = input.path.startsWith(`${PREFIX}/`);
        for (const [i, adapter] of ADAPTERS.entries()) {
          const other = outcomes[i]!;
          const framework = FRAMEWORK[adapter];
          if (framework === 'node') {
            expect(other, `${adapter} vs node for ${input.method} ${target}`).toEqual(node);
          } else if (refusedByRouter(adapter, target)) {
            // Fastify's router refuses the target before any plugin runs: its own 400, no problem code.
            expect(other, `${adapter} for ${input.method} ${target}`).toEqual({ status: 400, code: undefined });
          } else if (framework === 'express' || framework === 'koa' || framework === 'fastify') {
            // They hand what is outside their prefix to the app, whose own 404 has no problem code
            // (Fastify's plugin also owns `{prefix}` itself, which node answers the same).
            const ours = under || (framework === 'fastify' && input.path === PREFIX);
            if (ours) expect(other, `${adapter} vs node for ${input.method} ${target}`).toEqual(node);
            // Fastify's own 404 route parses the body first, as every Fastify route does: an
            // empty JSON body is its 400, a Content-Type it cannot parse its 415.
            else if (framework === 'fastify') expect([node.status, 400, 415]).toContain(other.status);
            else expect(other.status, `${adapter} vs node for ${input.method} ${target}`).toBe(node.status);
          } else {
            // The fetch runtime rewrote the target before the adapter saw it: compare with node on that target.
            const seen = normalised(target);
            const expected = seen === target ? node : await outcome('node', seen, input);
            expect(other, `fetch (${seen}) vs node for ${input.method} ${target}`).toEqual(expected);
          }
        }
      }),
      { numRuns: RUNS, interruptAfterTimeLimit: 20_000 },
    );
    expect(broker.stats().waiters).toBe(0);
  }, 30_000);

  /** The status and the whole body (parsed when JSON), for answers that must match byte for byte. */
  async function whole(adapter: AdapterName, target: string, input: RequestShape): Promise<{ status: number; body: unknown; cursor: unknown }> {
    const headers: Record<string, string | number> = {};
    if (input.prefer !== undefined) headers.prefer = input.prefer;
    if (input.contentType !== undefined) headers['content-type'] = input.contentType;
    const sendsBody = input.body !== undefined && input.method !== 'GET' && input.method !== 'HEAD';
    if (sendsBody) headers['content-length'] = Buffer.byteLength(input.body!);
    const answer = await hold(`${servers[adapter].origin}${target}`, {
      method: input.method,
      headers,
      ...(sendsBody ? { body: input.body } : {}),
      timeout: MAX_WAIT + SLACK,
    }).answer;
    expect(answer, `${adapter} answered ${input.method} ${target}`).toBeDefined();
    const isJson = /json/.test(String(answer!.headers['content-type'] ?? ''));
    return { status: answer!.status, body: isJson && answer!.text !== '' ? JSON.parse(answer!.text) : answer!.text, cursor: answer!.headers['longpoll-cursor'] };
  }

  it('answers GET ?channels= with hostile lists and cursors with the same status and body on every adapter', async () => {
    const other = new Broker<unknown>();
    await other.publish('a', 1);
    const issued = [
      (await broker.readMany(['room:1', 'a'])).cursor,
      (await broker.readMany(['a', 'b', 'c'], { limit: 1 })).cursor,
      (await broker.read('room:1')).cursor,
      (await other.readMany(['a', 'room:1'])).cursor,
    ];
    await other.close();
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(manyRequest(issued), async (input) => {
        const target = `${input.path}?${input.query}`;
        const answers = await Promise.all(ADAPTERS.map((adapter) => whole(adapter, target, input)));
        const node = answers[0]!;
        statuses.add(node.status);
        expect(node.status, JSON.stringify(node.body)).toBeLessThan(500);
        for (const [i, adapter] of ADAPTERS.entries()) {
          if (FRAMEWORK[adapter] === 'fetch') {
            // The fetch runtime may re-encode the query before the adapter sees it.
            const seen = normalised(target);
            const expected = seen === target ? node : await whole('node', seen, input);
            expect(answers[i], `fetch (${seen}) vs node for ${input.method} ${target}`).toEqual(expected);
          } else {
            expect(answers[i], `${adapter} vs node for ${input.method} ${target}`).toEqual(node);
          }
        }
      }),
      { numRuns: 100, interruptAfterTimeLimit: 10_000 },
    );
    // The runs reached the poll, and the refusals.
    expect([...statuses]).toEqual(expect.arrayContaining([200, 400]));
    // And a cursor of another history: the same 410 and earliestCursor everywhere.
    const expired = { method: 'GET' as const, path: PREFIX, query: '', prefer: undefined, contentType: undefined, body: undefined };
    const target = `${PREFIX}?channels=a,room:1,b&wait=0&cursor=${encodeURIComponent(issued[3]!)}`;
    const answers = await Promise.all(ADAPTERS.map((adapter) => whole(adapter, target, expired)));
    expect(answers[0]).toMatchObject({ status: 410, body: { code: 'cursor_expired' } });
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    expect(broker.stats().waiters).toBe(0);
  }, 20_000);

  /**
   * What a user can tell of an answer to a stream request: the status, the headers that say what
   * it is, and the problem, or an event stream's first bytes up to its first heartbeat (the
   * `retry:` line, the `id:`, and every event its first reads wrote).
   */
  async function streamed(adapter: AdapterName, target: string, input: StreamRequest) {
    const headers: Record<string, string | number> = { accept: input.accept };
    if (input.lastEventId !== undefined) headers['last-event-id'] = input.lastEventId;
    const sendsBody = input.body !== undefined && input.method !== 'GET' && input.method !== 'HEAD';
    if (sendsBody) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(input.body) });
    const head = await streamHead(`${servers[adapter].origin}${target}`, {
      method: input.method,
      headers,
      ...(sendsBody ? { body: input.body } : {}),
      timeout: MAX_WAIT + SLACK,
      enough: (text) => blocksOf(text).includes(': ping'),
    });
    expect(head?.complete, `${adapter} answered ${input.method} ${target} in time: ${JSON.stringify(head?.text.slice(0, 300))}`).toBe(true);
    const { status, text, streamed: stream } = head!;
    const type = String(head!.headers['content-type'] ?? '');
    const pick = (name: string) => head!.headers[name];
    return {
      status,
      stream,
      type: type.split(';')[0],
      cacheControl: pick('cache-control'),
      accelBuffering: pick('x-accel-buffering'),
      cursor: pick('longpoll-cursor'),
      allow: pick('allow'),
      retryAfter: pick('retry-after'),
      body: type.startsWith('application/problem+json') && input.method !== 'HEAD' ? (JSON.parse(text) as unknown) : text,
    };
  }

  it('answers stream requests with hostile Last-Event-ID and queries with the same status, problem and first bytes on every adapter', async () => {
    const other = new Broker<unknown>();
    await other.publish('a', 1);
    await other.publish('room:1', 1);
    const issued = [
      (await broker.read('room:1')).cursor,
      (await broker.read('room:1', { limit: 1 })).cursor,
      (await broker.read('a')).cursor,
      (await broker.readMany(['room:1', 'a'])).cursor,
      (await broker.readMany(['a', 'b', 'c'], { limit: 1 })).cursor,
      (await other.read('room:1')).cursor,
      (await other.readMany(['a', 'room:1'])).cursor,
    ];
    await other.close();
    // And cursors whose messages were evicted since (capacity 50): a stream from them starts with a reset.
    issued.push((await broker.read('a')).cursor, (await broker.readMany(['b', 'a'])).cursor);
    for (let i = 0; i < 60; i++) await broker.publish('a', i);
    // And cursors of channels and lists with history, to resume them from.
    const resume: Record<string, string[]> = {};
    for (const list of ['room:1', 'a', 'b', 'room:1,a', 'a,b,c']) {
      const names = list.split(',');
      const read = (limit: number) => (names.length === 1 ? broker.read(list, { limit }) : broker.readMany(names, { limit }));
      resume[list] = [(await read(1)).cursor, (await read(100)).cursor];
    }
    const seen = new Set<string>();
    /** Sends `input` to every adapter and compares each answer with node's. */
    async function compare(input: StreamRequest): Promise<void> {
      const target = `${input.target.path}${input.target.query ? `?${input.target.query}` : ''}`;
      const answers = await Promise.all(ADAPTERS.map((adapter) => streamed(adapter, target, input)));
      const node = answers[0]!;
      const text = String(node.body);
      seen.add(node.stream ? (text.includes('event: reset') ? 'reset' : text.includes('event: message') ? 'message' : 'stream') : String(node.status));
      expect(node.status, JSON.stringify(node.body)).toBeLessThan(500);
      for (const [i, adapter] of ADAPTERS.entries()) {
        const what = `${adapter} vs node for ${input.method} ${target} (Last-Event-ID ${JSON.stringify(input.lastEventId)})`;
        if (refusedByRouter(adapter, target)) {
          expect(answers[i]!.status, what).toBe(400);
        } else if (FRAMEWORK[adapter] === 'fetch') {
          const seenTarget = normalised(target);
          const expected = seenTarget === target ? node : await streamed('node', seenTarget, input);
          expect(answers[i], `${what} (fetch saw ${seenTarget})`).toEqual(expected);
        } else {
          expect(answers[i], what).toEqual(node);
        }
      }
    }
    // No POST: every adapter must answer from the same history.
    const methods = ['GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'HEAD', 'PUT', 'OPTIONS', 'DELETE'];
    await fc.assert(fc.asyncProperty(streamRequest(issued, { methods, resume }), compare), { numRuns: 100, interruptAfterTimeLimit: 10_000 });
    // And streams that start with a reset, on one channel and on many.
    const evicted = { method: 'GET', accept: 'text/event-stream', body: undefined };
    await compare({ ...evicted, target: { path: `${PREFIX}/a`, query: 'limit=3' }, lastEventId: issued.at(-2) });
    await compare({ ...evicted, target: { path: PREFIX, query: 'channels=a,b&limit=3' }, lastEventId: issued.at(-1) });
    // The runs reached streams with history, resets and none, and the refusals before a stream.
    expect([...seen]).toEqual(expect.arrayContaining(['message', 'reset', 'stream', '400', '404']));
    await until(() => broker.stats().waiters === 0, 'every stream let go of its waiter');
  }, 20_000);

  it.each([
    [`${PREFIX}/./room:1`, 404, 'not_found'],
    [`/x/..${PREFIX}/room:1`, 404, 'not_found'],
    [`${PREFIX}/a\\b`, 400, 'invalid_channel'],
    [`${PREFIX}/room:1?wait=0#fragment`, 200, undefined],
  ])('routes %s as the Node adapters do when the Request keeps the raw target: %i', async (target, status, code) => {
    const handler = fetchLongPoll(broker, { ...OPTIONS, prefix: PREFIX });
    const response = await handler(new RawRequest(`http://127.0.0.1${target}`));
    expect(response.status).toBe(status);
    const body = (await response.json()) as { code?: string };
    expect(body.code).toBe(code);
    // And what the Node adapter answers for the same bytes on the wire:
    const node = await hold(`${servers.node.origin}${target.replace(/#.*/, '')}`).answer;
    expect(node?.status).toBe(status);
  });
});

type RequestShape = typeof request extends fc.Arbitrary<infer R> ? R : never;
