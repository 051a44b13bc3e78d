/**
 * Attacks on the frozen answer a fanout's HTTP polls share (`sharedResponse`): nothing of one
 * poll's answer (its cursor, limit, `Prefer: wait`, `Connection: close`, a header the
 * application's middleware set for that request, a composite cursor, an event stream) may reach
 * another's, none may go stale, and nothing that writes it may break the polls after it.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import express from 'express';
import express4 from 'express4';
import fastify from 'fastify';
import fastify4 from 'fastify4';
import Koa from 'koa';
import Koa2 from 'koa2';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { longPoll as expressLongPoll } from '../../src/adapters/express.js';
import { fastifyLongPoll } from '../../src/adapters/fastify.js';
import { longPoll as fetchLongPoll } from '../../src/adapters/fetch.js';
import { longPoll as koaLongPoll } from '../../src/adapters/koa.js';
import { longPoll as nodeLongPoll } from '../../src/adapters/node.js';
import { createProtocol, type PollRequest, type PollResponse } from '../../src/http/protocol.js';
import { ADAPTERS, fetchBridge, listening, PREFIX, type AdapterName, type AnyOptions } from '../support/servers.js';
import { openStream } from './events.js';
import { hold, json, send, until, type PollBody } from './requests.js';

/** What the application's own middleware puts on every response: per request, before the adapter. */
function ownHeaders(header: (name: string) => string | undefined): [string, string][] {
  const headers: [string, string][] = [];
  const id = header('x-id');
  const origin = header('origin');
  if (id !== undefined) headers.push(['x-request-id', id]);
  if (origin !== undefined) headers.push(['access-control-allow-origin', origin], ['vary', 'Origin']);
  return headers;
}

interface App {
  readonly origin: string;
  readonly url: (channel: string, query?: string) => string;
  close(): Promise<void>;
}

/** `adapter` under PREFIX behind a middleware that sets {@link ownHeaders}, on 127.0.0.1. */
async function appOf(adapter: AdapterName, broker: Broker<unknown>, options: AnyOptions = {}): Promise<App> {
  const opts = { ...(options as object), prefix: PREFIX };
  let server: Server;
  const first = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);
  switch (adapter) {
    case 'node': {
      const handler = nodeLongPoll(broker, opts);
      server = createServer((req, res) => {
        for (const [name, value] of ownHeaders((name) => first(req.headers[name]))) res.setHeader(name, value);
        handler(req, res);
      });
      break;
    }
    case 'express':
    case 'express4': {
      const framework = adapter === 'express' ? express : (express4 as unknown as typeof express);
      const app = framework();
      app.use((req, res, next) => {
        for (const [name, value] of ownHeaders((name) => req.get(name))) res.set(name, value);
        next();
      });
      app.use(PREFIX, expressLongPoll(broker, options as object));
      server = createServer(app);
      break;
    }
    case 'koa':
    case 'koa2': {
      const framework = adapter === 'koa' ? Koa : (Koa2 as unknown as typeof Koa);
      const app = new framework();
      app.use(async (ctx, next) => {
        for (const [name, value] of ownHeaders((name) => ctx.get(name) || undefined)) ctx.set(name, value);
        await next();
      });
      app.use(koaLongPoll(broker, opts));
      const callback = app.callback();
      server = createServer((req, res) => void callback(req, res));
      break;
    }
    case 'fastify':
    case 'fastify4': {
      const framework = adapter === 'fastify' ? fastify : (fastify4 as unknown as typeof fastify);
      const app = framework();
      app.addHook('onRequest', async (request, reply) => {
        for (const [name, value] of ownHeaders((name) => first(request.headers[name]))) reply.header(name, value);
      });
      await app.register(fastifyLongPoll, { ...(options as object), broker, prefix: PREFIX });
      await app.ready();
      server = app.server;
      break;
    }
    case 'fetch': {
      const handler = fetchLongPoll(broker, opts);
      // A fetch application adds its headers to the Response the handler returns.
      server = createServer(
        fetchBridge(async (request, info) => {
          const response = await handler(request, info);
          if (response.type !== 'error') {
            for (const [name, value] of ownHeaders((name) => request.headers.get(name) ?? undefined)) response.headers.set(name, value);
          }
          return response;
        }),
      );
      break;
    }
  }
  return listening(server);
}

/** A raw HTTP/1.1 response as read off the socket. */
interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses the complete responses at the start of `data` (bodies framed by Content-Length). */
function parseResponses(data: Buffer): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let offset = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', offset);
    if (end === -1) return answers;
    const [statusLine, ...lines] = data.subarray(offset, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? Number.NaN);
    if (!Number.isInteger(length)) throw new Error(`no Content-Length in ${statusLine}`);
    if (data.length < end + 4 + length) return answers;
    answers.push({ status: Number(statusLine!.split(' ')[1]), headers, body: data.subarray(end + 4, end + 4 + length).toString() });
    offset = end + 4 + length;
  }
}

/** Writes `requests` at once on one socket and reads until `count` responses came (bounded). */
function pipelined(origin: string, requests: string[], count: number): { answers: Promise<RawAnswer[]>; received(): number; destroy(): void } {
  const { port } = new URL(origin);
  const socket = connect(Number(port), '127.0.0.1');
  let data = Buffer.alloc(0);
  const answers = new Promise<RawAnswer[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${count} answers did not come: ${data.toString('latin1').slice(0, 300)}`));
    }, 5_000);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const parsed = parseResponses(data);
      if (parsed.length >= count) {
        clearTimeout(timer);
        resolve(parsed);
      }
    });
    socket.on('error', () => {});
  });
  socket.write(requests.map((target) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`).join(''));
  return { answers, received: () => parseResponses(data).length, destroy: () => socket.destroy() };
}

/** The data of a poll answer's messages. */
function dataOf(text: string): unknown[] {
  return (JSON.parse(text) as PollBody).messages.map((message) => message.data);
}

// The server and broker of the test that runs, closed after it (every test of the file below that
// starts one sets these).
let broker: Broker<unknown> | undefined;
let app: App | undefined;

afterEach(async () => {
  await app?.close();
  await broker?.close();
  app = undefined;
  broker = undefined;
});

describe.each(ADAPTERS)('the shared answer of a fanout on the %s adapter', (adapter) => {
  it("gives each poll its own cursor, limit, Prefer and middleware headers, and never a stale body", async () => {
    broker = new Broker<unknown>();
    const limiter = new ConnectionLimiter({ perClient: 50 });
    app = await appOf(adapter, broker, { limiter });
    const { url, origin } = app;
    const c0 = json<PollBody>(await send(url('mix', 'wait=0'))).cursor;
    const composite = json<PollBody>(await send(`${origin}${PREFIX}?channels=mix,other&wait=0`)).cursor;
    const q = (extra = '') => `cursor=${encodeURIComponent(c0)}&wait=5${extra}`;
    const as = (id: string, headers: Record<string, string> = {}) => ({ headers: { 'x-id': id, origin: `http://${id}.test`, ...headers } });
    const a = send(url('mix', q()), as('a'));
    const b = send(url('mix', q()), as('b'));
    const c = send(url('mix', `cursor=${encodeURIComponent(c0)}`), as('c', { prefer: 'wait=5' }));
    const d = send(url('mix', q('&limit=1')), as('d'));
    const e = send(`${origin}${PREFIX}?channels=mix,other&cursor=${encodeURIComponent(composite)}&wait=5`, as('e'));
    const f = hold(url('mix', q()), { headers: { 'x-id': 'f', origin: 'http://f.test', connection: 'close' } });
    const stream = await openStream(url('mix', `cursor=${encodeURIComponent(c0)}`), as('s').headers);
    await until(() => broker!.stats().waiters === 7, 'seven polls are held');
    const published = await broker.publish('mix', { n: 1 });

    const answers = { a: await a, b: await b, c: await c, d: await d };
    for (const [id, answer] of Object.entries(answers)) {
      expect(answer.status, id).toBe(200);
      expect(dataOf(answer.text), id).toEqual([{ n: 1 }]);
      expect(answer.headers.get('longpoll-cursor'), id).toBe(published.cursor);
      expect(Number(answer.headers.get('content-length')), id).toBe(Buffer.byteLength(answer.text));
      expect(answer.headers.get('x-request-id'), id).toBe(id);
      expect(answer.headers.get('access-control-allow-origin'), id).toBe(`http://${id}.test`);
      expect(answer.headers.get('connection'), id).not.toBe('close');
      expect(answer.headers.get('preference-applied'), id).toBe(id === 'c' ? 'wait=5' : null);
      expect(answer.text, id).toBe(answers.a.text);
    }
    const raw = (await f.answer)!;
    expect(raw.status).toBe(200);
    expect(raw.text).toBe(answers.a.text);
    expect(raw.headers.connection).toBe('close');
    expect(raw.headers['x-request-id']).toBe('f');
    expect(raw.headers['access-control-allow-origin']).toBe('http://f.test');
    expect(raw.headers['longpoll-cursor']).toBe(published.cursor);
    const many = await e;
    expect(many.headers.get('x-request-id')).toBe('e');
    expect(dataOf(many.text)).toEqual([{ n: 1 }]);
    expect(json<PollBody>(many).cursor).not.toBe(published.cursor);
    expect(many.headers.get('longpoll-cursor')).toBe(json<PollBody>(many).cursor);
    await stream.waitFor(() => stream.messages().length === 1, 'the stream has the message');
    expect(stream.messages()[0]).toMatchObject({ id: published.cursor, data: { n: 1 } });
    expect(stream.headers.get('x-request-id')).toBe('s');

    // The next publish is answered afresh, each header still its own request's.
    const q1 = `cursor=${encodeURIComponent(published.cursor)}&wait=5`;
    const a2 = send(url('mix', q1), as('b2'));
    const b2 = send(url('mix', q1), as('a2'));
    await until(() => broker!.stats().waiters === 3, 'the stream and two polls are held');
    const next = await broker.publish('mix', { n: 2 });
    for (const [id, answer] of [['b2', await a2] as const, ['a2', await b2] as const]) {
      expect(dataOf(answer.text), id).toEqual([{ n: 2 }]);
      expect(answer.headers.get('longpoll-cursor'), id).toBe(next.cursor);
      expect(answer.headers.get('x-request-id'), id).toBe(id);
      expect(answer.headers.get('access-control-allow-origin'), id).toBe(`http://${id}.test`);
      expect(Number(answer.headers.get('content-length')), id).toBe(Buffer.byteLength(answer.text));
    }
    await stream.waitFor(() => stream.messages().length === 2, 'the stream has both');
    stream.close();
    await until(() => broker!.stats().waiters === 0 && limiter.stats().total === 0, 'nothing is held');
  });

  it('answers pipelined polls, and polls beside a client that reads nothing, with their own whole body', async () => {
    broker = new Broker<unknown>();
    const limiter = new ConnectionLimiter({ perClient: 50 });
    app = await appOf(adapter, broker, { limiter, sendTimeout: 2_000 });
    const { url, origin } = app;
    const c0 = json<PollBody>(await send(url('pipe', 'wait=0'))).cursor;
    const target = `${PREFIX}/pipe?cursor=${encodeURIComponent(c0)}&wait=5`;
    // Two polls pipelined: the first is answered at once as a timeout, the second is held.
    const twice = pipelined(origin, [target, target], 2);
    // A client that sends its poll and never reads the answer.
    const stalled = connect(Number(new URL(origin).port), '127.0.0.1');
    stalled.on('error', () => {});
    stalled.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    stalled.pause();
    const plain = send(url('pipe', `cursor=${encodeURIComponent(c0)}&wait=5`));
    // On Node's server the first pipelined poll is answered when the second comes, as a timeout,
    // and the second is held; a fetch runtime holds both (the bridge answers in order).
    const expires = adapter !== 'fetch';
    await until(() => twice.received() === (expires ? 1 : 0) && broker!.stats().waiters === (expires ? 3 : 4), 'the polls are held');
    // Large enough that a socket that reads nothing cannot take it all.
    const published = await broker.publish('pipe', { big: 'x'.repeat(3_000_000) });
    const answer = await plain;
    const [early, late] = await twice.answers;
    expect(early!.status).toBe(200);
    if (expires) {
      expect(JSON.parse(early!.body)).toEqual({ messages: [], cursor: c0, timedOut: true });
      expect(early!.headers['longpoll-cursor']).toBe(c0);
      expect(Number(early!.headers['content-length'])).toBe(Buffer.byteLength(early!.body));
    } else expect(early!.body).toBe(answer.text);
    expect(late!.status).toBe(200);
    expect(late!.body).toBe(answer.text);
    expect(late!.headers['longpoll-cursor']).toBe(published.cursor);
    expect(Number(late!.headers['content-length'])).toBe(Buffer.byteLength(answer.text));
    expect((JSON.parse(answer.text) as PollBody).messages[0]!.data).toEqual({ big: 'x'.repeat(3_000_000) });
    twice.destroy();
    stalled.destroy();
    await until(() => broker!.stats().waiters === 0 && limiter.stats().total === 0, 'nothing is held');
  });
});

describe.each(['fastify', 'fastify4'] as const)('a header a %s hook set that Node refuses', (adapter) => {
  it('is a 500 for its own poll, answered at once, held or timed out, and the polls beside it are answered', async () => {
    broker = new Broker<unknown>();
    const limiter = new ConnectionLimiter();
    app = await appOfEcho(adapter, broker, { limiter });
    // The hook copies `?name=` into a header: a hostile client names a character outside Latin-1.
    const bad = `name=${encodeURIComponent('\u2028')}`;
    // What escaped to the process (an uncaught exception, an unhandled rejection) of this test's.
    const escapes: unknown[] = [];
    const onEscape = (error: unknown): void => {
      if ((error as { code?: unknown }).code === 'ERR_INVALID_CHAR') escapes.push(error);
    };
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
    try {
      const published = await broker.publish('hook', 1);
      const at = (query: string, headers: Record<string, string> = {}) => send(app!.url('hook', query), { headers, timeout: 4_000 });
      // Answered at once, from history.
      const immediate = await at(`${bad}&wait=0`);
      expect(immediate.status).toBe(500);
      expect(immediate.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      // Held, in the same group as a good poll (the bad one first), then woken by a publish.
      const cursor = encodeURIComponent(published.cursor);
      const heldBad = at(`${bad}&cursor=${cursor}&wait=3`);
      await until(() => broker!.stats().waiters === 1, 'the bad poll is held');
      const heldGood = at(`name=ok&cursor=${cursor}&wait=3`);
      await until(() => broker!.stats().waiters === 2, 'both polls are held');
      const next = await broker.publish('hook', 2);
      expect((await heldBad).status).toBe(500);
      const good = await heldGood;
      expect(good.status).toBe(200);
      expect(json<PollBody>(good).timedOut).toBe(false);
      expect(dataOf(good.text)).toEqual([2]);
      expect(good.headers.get('x-name')).toBe('ok');
      // Timed out.
      const timedOut = await at(`${bad}&cursor=${encodeURIComponent(next.cursor)}&wait=0.2`);
      expect(timedOut.status).toBe(500);
      // An event stream.
      const stream = await at(`${bad}&cursor=${encodeURIComponent(next.cursor)}`, { accept: 'text/event-stream' });
      expect(stream.status).toBe(500);
      await until(() => broker!.stats().waiters === 0 && limiter.stats().total === 0, 'nothing is held');
      expect(escapes).toEqual([]);
    } finally {
      process.off('uncaughtException', onEscape);
      process.off('unhandledRejection', onEscape);
    }
  });
});

/** A Fastify app whose hook copies `?name=` into an `X-Name` header, as an application might. */
async function appOfEcho(adapter: 'fastify' | 'fastify4', broker: Broker<unknown>, options: AnyOptions): Promise<App> {
  const framework = adapter === 'fastify' ? fastify : (fastify4 as unknown as typeof fastify);
  const app = framework();
  app.addHook('onRequest', async (request, reply) => {
    const { name } = request.query as { name?: string };
    if (name !== undefined) reply.header('x-name', name);
  });
  await app.register(fastifyLongPoll, { ...(options as object), broker, prefix: PREFIX });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    url: (channel, query) => `${origin}${PREFIX}/${channel}${query ? `?${query}` : ''}`,
    async close() {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

describe('a response sink that throws', () => {
  it('fails only its own poll: the shared answer stays frozen and whole, the polls after it are answered, leases go back', async () => {
    const broker = new Broker<unknown>();
    const limiter = new ConnectionLimiter();
    const protocol = createProtocol(broker, { prefix: PREFIX, limiter });
    const request = (url: string): PollRequest<undefined> => ({
      method: 'GET',
      url,
      header: () => undefined,
      body: { chunks: (async function* () {})() },
      clientKey: '127.0.0.1',
      raw: undefined,
    });
    const written: PollResponse[] = [];
    // What escaped to the process of this test's: the mutation of a frozen object.
    const escapes: unknown[] = [];
    const onEscape = (error: unknown): void => {
      if (error instanceof TypeError && error.message.includes('x-mine')) escapes.push(error);
    };
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
    // A sink that adds a header of its own to what it is given, as a custom writer might.
    let abandoned = 0;
    const mutating = {
      write(response: PollResponse) {
        (response.headers as Record<string, string>)['x-mine'] = 'yes';
        written.push(response);
      },
      // Told that nothing will be written, so that its adapter can end the request.
      abandon: () => void abandoned++,
    };
    const good = { write: (response: PollResponse) => void written.push(response) };
    try {
      const first = await broker.publish('sink', 1);
      // From history, at once: the mutation throws only if the answer is the shared one.
      const exchanges = [protocol.serve(request(`${PREFIX}/sink?wait=0`), mutating), protocol.serve(request(`${PREFIX}/sink?wait=0`), good)];
      // Held: the mutating one first in the group.
      const q = `cursor=${encodeURIComponent(first.cursor)}&wait=5`;
      exchanges.push(protocol.serve(request(`${PREFIX}/sink?${q}`), mutating), protocol.serve(request(`${PREFIX}/sink?${q}`), good));
      await until(() => broker.stats().waiters === 2, 'both are held');
      await broker.publish('sink', 2);
      await until(() => written.filter((response) => response.status === 200).length >= 2, 'the good polls are answered');
      // Only the good sinks wrote, the shared answers as made.
      expect(written).toHaveLength(2);
      expect(abandoned).toBe(2);
      expect(written.map((response) => dataOf(Buffer.from(response.body as Uint8Array).toString()))).toEqual([[1], [2]]);
      for (const response of written) {
        expect('x-mine' in response.headers).toBe(false);
        expect(Object.isFrozen(response)).toBe(true);
        expect(Object.isFrozen(response.headers)).toBe(true);
      }
      // The exchanges whose sink threw are over and gave their leases back; the good ones hold
      // theirs until their adapter ends them.
      expect(exchanges.map((exchange) => exchange.ended)).toEqual([true, false, true, false]);
      expect(limiter.stats().total).toBe(2);
      for (const exchange of exchanges) exchange.end();
      expect(limiter.stats().total).toBe(0);
      expect(broker.stats().waiters).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(escapes).toEqual([]);
    } finally {
      process.off('uncaughtException', onEscape);
      process.off('unhandledRejection', onEscape);
      await broker.close();
    }
  });
});
