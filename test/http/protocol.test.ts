import { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Broker, ConnectionLimiter, LongPollError, MemoryEngine, type BrokerOptions } from '../../src/index.js';
import { requiredOnly } from '../support/engines.js';
import type { Access } from '../../src/http/protocol.js';
import { startPoll, type PollOptions } from '../../src/poll.js';

/** The options of every poll the broker starts, HTTP or not; `seen` runs as each starts. */
function pollsOf(broker: Broker<unknown>, seen?: () => void): PollOptions[] {
  const polls: PollOptions[] = [];
  const start = broker[startPoll].bind(broker);
  broker[startPoll] = (channel, options, ticket) => {
    polls.push(options);
    seen?.();
    start(channel, options, ticket);
  };
  return polls;
}
import { ADAPTERS, FRAMEWORK, PREFIX, refusedByRouter, startServer, type AnyOptions, type TestServer } from '../support/servers.js';
import { hasHead, streamHead } from './events.js';
import { eventually, expectProblem, hold, json, post, send, until, type Answer, type PollBody } from './requests.js';

describe.each(ADAPTERS)('the %s adapter', (adapter) => {
  const framework = FRAMEWORK[adapter];
  let broker: Broker<unknown> | undefined;
  let server: TestServer | undefined;

  async function start(options: AnyOptions = {}, brokerOptions: BrokerOptions = {}): Promise<{ broker: Broker<unknown>; server: TestServer }> {
    broker = new Broker<unknown>(brokerOptions);
    server = await startServer(adapter, broker, options);
    return { broker, server };
  }

  afterEach(async () => {
    await server?.close();
    await broker?.close();
    server = undefined;
    broker = undefined;
  });

  describe('polling', () => {
    it('answers a held poll as soon as a message is published', async () => {
      const { broker, server } = await start();
      const answer = send(server.url('room:1', 'wait=5'));
      await until(() => broker.stats().waiters === 1, 'the poll is held');
      const published = await broker.publish('room:1', { text: 'hi' });
      const response = await answer;
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const body = json<PollBody>(response);
      expect(body.timedOut).toBe(false);
      expect(body.messages).toEqual([{ id: published.id, channel: 'room:1', data: { text: 'hi' }, publishedAt: published.publishedAt }]);
      expect(body.cursor).toBe(published.cursor);
      expect(response.headers.get('longpoll-cursor')).toBe(body.cursor);
      expect(response.elapsed).toBeLessThan(4_000);
    });

    it('answers every poll one publish wakes with the engine\'s text, serialising nothing again', async () => {
      const { broker, server } = await start();
      const cursor = json<PollBody>(await send(server.url('fan', 'wait=0'))).cursor;
      const polls = Array.from({ length: 10 }, () => send(server.url('fan', `cursor=${encodeURIComponent(cursor)}&wait=5`)));
      await until(() => broker.stats().waiters === 10, 'ten polls are held');
      const stringify = vi.spyOn(JSON, 'stringify');
      let published;
      try {
        published = await broker.publish('fan', { text: 'to all', n: [1, 2.5, null], 'é"\\': true });
        const answers = await Promise.all(polls);
        expect(new Set(answers.map((a) => a.text)).size).toBe(1);
        // Neither the result nor a message was serialised: the memory engine kept the text.
        const objects = stringify.mock.calls.filter(([value]) => typeof value === 'object' && value !== null && ('messages' in value || 'id' in value));
        expect(objects).toHaveLength(0);
        // And that text is exactly what serialising the result would give.
        const { cursor: next, ...message } = published;
        expect(answers[0]!.text).toBe(JSON.stringify({ messages: [message], cursor: next, timedOut: false }));
      } finally {
        stringify.mockRestore();
      }
    });

    it('serialises the result once for all the polls one publish answers, when the engine keeps no text', async () => {
      const { broker, server } = await start({}, { engine: requiredOnly(new MemoryEngine()) });
      const cursor = json<PollBody>(await send(server.url('fan', 'wait=0'))).cursor;
      const polls = Array.from({ length: 10 }, () => send(server.url('fan', `cursor=${encodeURIComponent(cursor)}&wait=5`)));
      await until(() => broker.stats().waiters === 10, 'ten polls are held');
      const stringify = vi.spyOn(JSON, 'stringify');
      try {
        await broker.publish('fan', 'to all');
        const answers = await Promise.all(polls);
        expect(new Set(answers.map((a) => a.text)).size).toBe(1);
        const results = stringify.mock.calls.filter(([value]) => typeof value === 'object' && value !== null && 'messages' in value);
        expect(results).toHaveLength(1);
      } finally {
        stringify.mockRestore();
      }
    });

    it('answers HTTP polls and Broker.poll through the one entry point a subclass can override', async () => {
      const calls: string[] = [];
      class Counted extends Broker<unknown> {
        override [startPoll](...args: Parameters<Broker<unknown>[typeof startPoll]>) {
          const [target] = args;
          calls.push(typeof target === 'string' ? target : target.channels.join(','));
          super[startPoll](...args);
        }
      }
      const counted = new Counted();
      broker = counted;
      server = await startServer(adapter, counted, {});
      const answer = send(server.url('sub', 'wait=5'));
      await until(() => counted.stats().waiters === 1, 'the poll is held');
      await counted.publish('sub', 'through the override');
      const body = json<PollBody>(await answer);
      expect(body.messages.map((m) => m.data)).toEqual(['through the override']);
      await counted.poll('direct', { wait: 0 });
      expect(calls).toEqual(['sub', 'direct']);
    });

    it('returns a backlog at once, oldest first', async () => {
      const { broker, server } = await start();
      for (const n of [1, 2, 3]) await broker.publish('room', n);
      const response = await send(server.url('room', 'wait=30'));
      expect(response.status).toBe(200);
      expect(json<PollBody>(response).messages.map((m) => m.data)).toEqual([1, 2, 3]);
      expect(response.elapsed).toBeLessThan(2_000);
    });

    it('answers 200 with timedOut and the cursor when nothing arrives within the wait', async () => {
      const { server } = await start();
      const response = await send(server.url('quiet', 'wait=0.3'));
      expect(response.status).toBe(200);
      const body = json<PollBody>(response);
      expect(body).toMatchObject({ messages: [], timedOut: true });
      expect(response.headers.get('longpoll-cursor')).toBe(body.cursor);
      expect(response.headers.get('cache-control')).toBe('no-store');
      // The server takes up to wait/16 off: 300 ms → at least 281 ms.
      expect(response.elapsed).toBeGreaterThanOrEqual(270);
    });

    it.each([204, 304] as const)('answers a timed-out poll with %i and the cursor in Longpoll-Cursor when asked to', async (timeoutStatus) => {
      const { broker, server } = await start({ timeoutStatus });
      const timedOut = await send(server.url('quiet', 'wait=0.1'));
      expect(timedOut.status).toBe(timeoutStatus);
      expect(timedOut.text).toBe('');
      expect(timedOut.headers.get('cache-control')).toBe('no-store');
      const cursor = timedOut.headers.get('longpoll-cursor');
      expect(cursor).toBeTruthy();
      await broker.publish('quiet', 'later');
      const next = await send(server.url('quiet', `cursor=${encodeURIComponent(cursor!)}&wait=1`));
      expect(next.status).toBe(200);
      expect(json<PollBody>(next).messages.map((m) => m.data)).toEqual(['later']);
    });

    it('resumes from a cursor without repeating or skipping messages', async () => {
      const { broker, server } = await start();
      await broker.publish('room', 'a');
      const first = json<PollBody>(await send(server.url('room', 'wait=0')));
      expect(first.messages.map((m) => m.data)).toEqual(['a']);
      await broker.publish('room', 'b');
      await broker.publish('room', 'c');
      const second = await send(server.url('room', `cursor=${encodeURIComponent(first.cursor)}&wait=0`));
      expect(json<PollBody>(second).messages.map((m) => m.data)).toEqual(['b', 'c']);
      const third = await send(server.url('room', `cursor=${encodeURIComponent(json<PollBody>(second).cursor)}&wait=0`));
      expect(json<PollBody>(third)).toMatchObject({ messages: [], timedOut: true });
    });

    it('treats an empty cursor= as no cursor', async () => {
      const { broker, server } = await start();
      await broker.publish('room', 'kept');
      const response = await send(server.url('room', 'cursor=&wait=0'));
      expect(json<PollBody>(response).messages.map((m) => m.data)).toEqual(['kept']);
    });

    it('answers 410 with earliestCursor when messages after the cursor were evicted', async () => {
      const { broker, server } = await start({}, { capacity: 2 });
      const empty = json<PollBody>(await send(server.url('room', 'wait=0')));
      for (const n of [1, 2, 3, 4, 5]) await broker.publish('room', n);
      const gone = await send(server.url('room', `cursor=${encodeURIComponent(empty.cursor)}&wait=0`));
      const problem = expectProblem(gone, 410, 'cursor_expired');
      expect(typeof problem.earliestCursor).toBe('string');
      const rehydrated = await send(server.url('room', `cursor=${encodeURIComponent(problem.earliestCursor as string)}&wait=0`));
      expect(json<PollBody>(rehydrated).messages.map((m) => m.data)).toEqual([4, 5]);
    });

    it('returns at most limit messages and clamps limit to 1000', async () => {
      const { broker, server } = await start({}, { capacity: 1200 });
      for (let n = 0; n < 1100; n++) await broker.publish('many', n);
      const two = json<PollBody>(await send(server.url('many', 'limit=2&wait=0')));
      expect(two.messages.map((m) => m.data)).toEqual([0, 1]);
      const clamped = json<PollBody>(await send(server.url('many', 'limit=5000&wait=0')));
      expect(clamped.messages).toHaveLength(1000);
      const byDefault = json<PollBody>(await send(server.url('many', 'wait=0')));
      expect(byDefault.messages).toHaveLength(100);
    });

    it('decodes the channel segment once', async () => {
      const { broker, server } = await start();
      await broker.publish('room:1', 'x');
      const response = await send(`${server.origin}${PREFIX}/room%3A1?wait=0`);
      expect(json<PollBody>(response).messages.map((m) => m.channel)).toEqual(['room:1']);
    });
  });

  describe('the wait', () => {
    it('clamps a wait above maxWait', async () => {
      const { server } = await start({ maxWait: 300 });
      const response = await send(server.url('room', 'wait=30'));
      expect(json<PollBody>(response).timedOut).toBe(true);
      expect(response.elapsed).toBeGreaterThanOrEqual(270);
      expect(response.elapsed).toBeLessThan(2_000);
    });

    it('takes a random jitter of up to wait/16 off the wait it holds', async () => {
      const { broker, server } = await start();
      const polls = pollsOf(broker);
      const waits: number[] = [];
      for (let i = 0; i < 5; i++) {
        const answer = send(server.url(`jitter${i}`, 'wait=16'));
        await until(() => broker.stats().waiters === 1, 'the poll is held');
        await broker.publish(`jitter${i}`, i);
        expect((await answer).status).toBe(200);
      }
      for (const options of polls) waits.push(options.wait!);
      expect(waits).toHaveLength(5);
      for (const wait of waits) {
        expect(wait).toBeGreaterThan(15_000);
        expect(wait).toBeLessThanOrEqual(16_000);
      }
      expect(new Set(waits).size).toBeGreaterThan(1);
    });

    it.each([
      ['clamps ?wait=100 to the default maxWait of 55 s', 'wait=100', 55_000],
      ['waits the default 25 s when the request names no wait', '', 25_000],
    ])('%s, less a jitter of up to 1/16', async (_, query, expected) => {
      const { broker, server } = await start();
      const polls = pollsOf(broker);
      const answer = send(server.url('defaults', query));
      await until(() => broker.stats().waiters === 1, 'the poll is held');
      await broker.publish('defaults', 'now');
      expect((await answer).status).toBe(200);
      expect(polls).toHaveLength(1);
      const wait = polls[0]!.wait!;
      expect(wait).toBeGreaterThan((expected * 15) / 16);
      expect(wait).toBeLessThanOrEqual(expected);
    });

    it('echoes the default maxWait of 55 s when Prefer asks for more', async () => {
      const { broker, server } = await start();
      const answer = send(server.url('defaults'), { headers: { prefer: 'wait=100' } });
      await until(() => broker.stats().waiters === 1, 'the poll is held');
      await broker.publish('defaults', 'now');
      const response = await answer;
      expect(response.status).toBe(200);
      expect(response.headers.get('preference-applied')).toBe('wait=55');
    });

    it('answers the polls one publish wakes alike, and only the one that asked Prefer: wait says what it applied', async () => {
      const { broker, server } = await start();
      const polls = [send(server.url('shared')), send(server.url('shared')), send(server.url('shared'), { headers: { prefer: 'wait=30' } })] as const;
      await until(() => broker.stats().waiters === 3, 'the polls are held');
      await broker.publish('shared', 'now');
      const [first, second, third] = await Promise.all(polls);
      for (const response of [first, second, third]) {
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
        expect(Number(response.headers.get('content-length'))).toBe(Buffer.byteLength(response.text));
      }
      expect(second.text).toBe(first.text);
      expect(third.text).toBe(first.text);
      expect(json<PollBody>(first).messages.map((message) => message.data)).toEqual(['now']);
      expect(first.headers.get('longpoll-cursor')).toBe(json<PollBody>(first).cursor);
      expect(first.headers.get('preference-applied')).toBeNull();
      expect(second.headers.get('preference-applied')).toBeNull();
      expect(third.headers.get('preference-applied')).toBe('wait=30');
      // A later poll from that cursor waits for the next publish, which gets its own answer.
      const next = send(server.url('shared', `cursor=${encodeURIComponent(json<PollBody>(first).cursor)}`));
      await until(() => broker.stats().waiters === 1, 'the next poll is held');
      await broker.publish('shared', 'later');
      expect(json<PollBody>(await next).messages.map((message) => message.data)).toEqual(['later']);
    });

    it('uses defaultWait when the request names none', async () => {
      const { server } = await start({ defaultWait: 200 });
      const response = await send(server.url('room'));
      expect(json<PollBody>(response).timedOut).toBe(true);
      expect(response.elapsed).toBeGreaterThanOrEqual(180);
      expect(response.elapsed).toBeLessThan(2_000);
    });

    it('honours Prefer: wait and echoes the applied wait in Preference-Applied', async () => {
      const { server } = await start();
      const response = await send(server.url('room'), { headers: { prefer: 'wait=0.2' } });
      expect(json<PollBody>(response).timedOut).toBe(true);
      expect(response.headers.get('preference-applied')).toBe('wait=0.2');
      expect(response.elapsed).toBeGreaterThanOrEqual(180);
      expect(response.elapsed).toBeLessThan(2_000);
    });

    it('echoes the clamped wait when Prefer asks for more than maxWait', async () => {
      const { server } = await start({ maxWait: 250 });
      const response = await send(server.url('room'), { headers: { prefer: 'respond-async, wait=100' } });
      expect(response.headers.get('preference-applied')).toBe('wait=0.25');
      expect(response.elapsed).toBeLessThan(2_000);
    });

    it('lets ?wait win over Prefer: wait', async () => {
      const { server } = await start();
      const response = await send(server.url('room', 'wait=0'), { headers: { prefer: 'wait=20' } });
      expect(json<PollBody>(response).timedOut).toBe(true);
      expect(response.elapsed).toBeLessThan(1_000);
    });

    it.each(['wait=soon', 'wait=-1', 'wait', 'wait=1e3', 'handling=lenient'])('ignores the unreadable Prefer %j', async (prefer) => {
      const { server } = await start({ defaultWait: 200 });
      const response = await send(server.url('room'), { headers: { prefer } });
      expect(response.status).toBe(200);
      expect(response.headers.get('preference-applied')).toBeNull();
      expect(response.elapsed).toBeGreaterThanOrEqual(180);
      expect(response.elapsed).toBeLessThan(2_000);
    });
  });

  describe('bad requests', () => {
    it.each([
      ['invalid_channel', 'bad%20name', ''],
      ['invalid_channel', 'bad%ZZ', ''],
      ['invalid_channel', 'a'.repeat(201), ''],
      ['invalid_channel', '%2F', ''],
      ['invalid_cursor', 'room', 'cursor=garbage'],
      ['invalid_cursor', 'room', 'cursor=a&cursor=b'],
      ['invalid_cursor', 'room', `cursor=${'x'.repeat(600)}`],
      ['invalid_wait', 'room', 'wait=abc'],
      ['invalid_wait', 'room', 'wait='],
      ['invalid_wait', 'room', 'wait=-1'],
      ['invalid_wait', 'room', 'wait=1e3'],
      ['invalid_wait', 'room', 'wait=.5'],
      ['invalid_wait', 'room', 'wait=1&wait=2'],
      ['invalid_limit', 'room', 'limit=0'],
      ['invalid_limit', 'room', 'limit='],
      ['invalid_limit', 'room', 'limit=1.5'],
      ['invalid_limit', 'room', 'limit=-3'],
      ['invalid_limit', 'room', 'limit=ten'],
      ['invalid_limit', 'room', 'limit=1&limit=2'],
    ])('answers 400 %s for /%s?%s', async (code, channel, query) => {
      const { server, broker } = await start();
      const path = `${PREFIX}/${channel}${query ? `?${query}` : ''}`;
      const response = await send(`${server.origin}${path}`);
      // Fastify's router answers a path it cannot decode before any plugin: its own 400.
      if (refusedByRouter(adapter, path)) expect(response.status).toBe(400);
      else expectProblem(response, 400, code);
      expect(broker.stats().waiters).toBe(0);
    });

    it('answers 400 invalid_cursor for a cursor of another channel', async () => {
      const { broker, server } = await start();
      const { cursor } = await broker.publish('one', 1);
      expectProblem(await send(server.url('two', `cursor=${encodeURIComponent(cursor)}&wait=0`)), 400, 'invalid_cursor');
    });
  });

  describe('routes and methods', () => {
    it.each([`${PREFIX}/`, `${PREFIX}/a/b`, `${PREFIX}/room/`])('answers 404 problem+json for %s', async (path) => {
      const { server } = await start();
      expectProblem(await send(`${server.origin}${path}?wait=0`), 404, 'not_found');
    });

    it('leaves requests outside the prefix alone (404 from the adapter with no app behind it)', async () => {
      const { server } = await start();
      const response = await send(`${server.origin}/elsewhere/room?wait=0`);
      expect(response.status).toBe(404);
      // Node http without `next` and fetch answer it themselves; Express, Koa and Fastify leave it to the app.
      if (framework === 'node' || framework === 'fetch') expectProblem(response, 404, 'not_found');
    });

    it.each(['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'POST'])('answers %s with 405 and Allow: GET while publish is off', async (method) => {
      const { server, broker } = await start();
      const response = await send(server.url('room'), {
        method,
        ...(method === 'OPTIONS' ? {} : { headers: { 'content-type': 'application/json' }, body: '{}' }),
      });
      expectProblem(response, 405, 'method_not_allowed');
      expect(response.headers.get('allow')).toBe('GET');
      expect(broker.stats().messages).toBe(0);
    });

    it('checks the method before the channel: PUT on a malformed channel is 405', async () => {
      const { server } = await start();
      const response = await send(`${server.origin}${PREFIX}/bad%ZZ`, { method: 'PUT', body: 'x' });
      // Fastify's router answers a path it cannot decode before any plugin: its own 400.
      if (refusedByRouter(adapter, `${PREFIX}/bad%ZZ`)) expect(response.status).toBe(400);
      else expectProblem(response, 405, 'method_not_allowed');
    });

    it('checks the route before the method: PUT on a deeper path is 404', async () => {
      const { server } = await start();
      expectProblem(await send(`${server.origin}${PREFIX}/a/b`, { method: 'PUT', body: 'x' }), 404, 'not_found');
    });

    it('answers HEAD with 405', async () => {
      const { server } = await start();
      const response = await send(server.url('room'), { method: 'HEAD' });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('GET');
    });
  });

  describe('publishing', () => {
    it('answers 201 with the message and its cursor, and a poll receives it', async () => {
      const { broker, server } = await start({ publish: true });
      const response = await post(server.url('room:1'), { text: 'hello', __proto__: { polluted: true } });
      expect(response.status).toBe(201);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const message = json(response);
      expect(Object.keys(message).sort()).toEqual(['channel', 'cursor', 'data', 'id', 'publishedAt']);
      expect(message).toMatchObject({ channel: 'room:1', data: { text: 'hello' } });
      expect(response.headers.get('longpoll-cursor')).toBe(message.cursor);
      expect(broker.stats().messages).toBe(1);
      const polled = json<PollBody>(await send(server.url('room:1', 'wait=0')));
      expect(polled.messages[0]!.id).toBe(message.id);
      expect(polled.cursor).toBe(message.cursor);
    });

    it.each(['__proto__', 'constructor', 'hasOwnProperty'])('treats %s as just a channel name and its body keys as data', async (channel) => {
      const { broker, server } = await start({ publish: true });
      const body = '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"text":"x"}';
      expect((await post(server.url(channel), body)).status).toBe(201);
      const polled = await send(server.url(channel, 'wait=0'));
      const [message] = json<PollBody>(polled).messages;
      expect(message!.channel).toBe(channel);
      // The keys arrive as the publisher sent them, as own properties of the data.
      expect(JSON.stringify(message!.data)).toBe(body);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
      expect(broker.stats().channels).toBe(1);
    });

    it('answers 405 with Allow: GET, POST to other methods', async () => {
      const { server } = await start({ publish: true });
      const response = await send(server.url('room'), { method: 'DELETE' });
      expectProblem(response, 405, 'method_not_allowed');
      expect(response.headers.get('allow')).toBe('GET, POST');
    });

    it('accepts a body of exactly 64 KiB', async () => {
      const { server } = await start({ publish: true });
      const body = JSON.stringify('x'.repeat(65_536 - 2));
      expect(Buffer.byteLength(body)).toBe(65_536);
      expect((await post(server.url('room'), body)).status).toBe(201);
    });

    it('answers 413 to a body over 64 KiB with a Content-Length', async () => {
      const { server, broker } = await start({ publish: true });
      const body = JSON.stringify('x'.repeat(65_536 - 1));
      const response = await hold(server.url('room'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        body,
      }).answer;
      expect(response?.status).toBe(413);
      expect(json({ status: 413, headers: new Headers(), text: response!.text, elapsed: 0 })).toMatchObject({ code: 'payload_too_large', status: 413 });
      expect(broker.stats().messages).toBe(0);
    });

    it('answers 413 to a chunked body over the limit with no Content-Length', async () => {
      const { server, broker } = await start({ publish: true, maxBodyBytes: 1_000 });
      const request = hold(server.url('room'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        body: JSON.stringify('y'.repeat(5_000)),
      });
      const response = await request.answer;
      expect(response?.status).toBe(413);
      expect(response?.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(response!.text)).toMatchObject({ type: 'about:blank', code: 'payload_too_large', status: 413 });
      expect(broker.stats().messages).toBe(0);
    });

    it('answers 413 to a large upload, chunked or not, without resetting the connection', async () => {
      const { server, broker } = await start({ publish: true });
      const body = Buffer.alloc(1_000_000, 'z');
      const uploads: Record<string, string | number>[] = [
        { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        { 'content-type': 'application/json', 'content-length': body.byteLength },
      ];
      for (const headers of uploads) {
        const response = await hold(server.url('room'), { method: 'POST', headers, body }).answer;
        expect(response?.status).toBe(413);
        expect(JSON.parse(response!.text)).toMatchObject({ code: 'payload_too_large' });
      }
      expect(broker.stats().messages).toBe(0);
    });

    it('accepts a chunked body under the limit', async () => {
      const { server } = await start({ publish: true });
      const response = await hold(server.url('room'), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        body: JSON.stringify({ small: true }),
      }).answer;
      expect(response?.status).toBe(201);
    });

    it.each([['text/plain'], ['application/x-www-form-urlencoded'], [undefined]])('answers 415 to Content-Type %s', async (type) => {
      const { server, broker } = await start({ publish: true });
      const response = await send(server.url('room'), {
        method: 'POST',
        body: new TextEncoder().encode('{"a":1}'),
        headers: type ? { 'content-type': type } : {},
      });
      expectProblem(response, 415, 'unsupported_media_type');
      expect(broker.stats().messages).toBe(0);
    });

    it('accepts application/json with parameters and +json types', async () => {
      const { server } = await start({ publish: true });
      expect((await post(server.url('room'), '1', { 'content-type': 'Application/JSON; charset=utf-8' })).status).toBe(201);
      expect((await post(server.url('room'), '2', { 'content-type': 'application/merge-patch+json' })).status).toBe(201);
    });

    it.each(['{"a":', '', 'undefined', "{'a':1}"])('answers 400 invalid_body to the JSON %j', async (body) => {
      const { server, broker } = await start({ publish: true });
      expectProblem(await post(server.url('room'), body), 400, 'invalid_body');
      expect(broker.stats().messages).toBe(0);
    });

    it('answers 400 invalid_body to a body that is not UTF-8', async () => {
      const { server } = await start({ publish: true });
      const response = await send(server.url('room'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: new Uint8Array([0x22, 0xff, 0xfe, 0x22]),
      });
      expectProblem(response, 400, 'invalid_body');
    });

    it('answers 503 to a publish once the broker is closed', async () => {
      const { broker, server } = await start({ publish: true });
      await broker.close();
      const response = await post(server.url('room'), 1);
      expectProblem(response, 503, 'shutting_down');
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    });
  });

  describe('authorize', () => {
    it('answers 403 when authorize returns false', async () => {
      const { server, broker } = await start({ authorize: () => false, publish: true });
      expectProblem(await send(server.url('room', 'wait=0')), 403, 'forbidden');
      expectProblem(await post(server.url('room'), 1), 403, 'forbidden');
      expect(broker.stats().messages).toBe(0);
    });

    it('answers 401 when authorize throws LongPollError unauthorized', async () => {
      const { server } = await start({
        authorize: () => {
          throw new LongPollError('unauthorized', 'Log in first');
        },
      });
      const body = expectProblem(await send(server.url('room', 'wait=0')), 401, 'unauthorized');
      expect(body.detail).toBe('Log in first');
    });

    it("receives the framework's own request and { channel, action }", async () => {
      const seen: { request: unknown; access: Access }[] = [];
      const { server } = await start({
        publish: true,
        authorize: (request: unknown, access: Access) => {
          seen.push({ request, access });
          return true;
        },
      });
      expect((await send(`${server.origin}${PREFIX}/room%3A1?wait=0`)).status).toBe(200);
      expect((await post(server.url('room:1'), 1)).status).toBe(201);
      expect(seen.map((s) => s.access)).toEqual([
        { channel: 'room:1', action: 'poll' },
        { channel: 'room:1', action: 'publish' },
      ]);
      const request = seen[0]!.request;
      if (framework === 'node') expect(request).toBeInstanceOf(IncomingMessage);
      if (framework === 'express') {
        expect(request).toBeInstanceOf(IncomingMessage);
        expect(typeof (request as { get?: unknown }).get).toBe('function');
      }
      if (framework === 'koa') {
        expect((request as { req?: unknown }).req).toBeInstanceOf(IncomingMessage);
        expect((request as { request?: unknown }).request).toBeDefined();
      }
      if (framework === 'fastify') {
        // Fastify's own request, with the Node one as `raw`.
        expect((request as { raw?: unknown }).raw).toBeInstanceOf(IncomingMessage);
        expect(typeof (request as { ip?: unknown }).ip).toBe('string');
      }
      if (framework === 'fetch') expect(request).toBeInstanceOf(Request);
    });

    it('answers 500 internal without details when authorize throws something else', async () => {
      const { server } = await start({
        authorize: () => {
          throw new Error('database password is hunter2');
        },
      });
      const response = await send(server.url('room', 'wait=0'));
      const body = expectProblem(response, 500, 'internal');
      expect(response.text).not.toMatch(/hunter2|at /);
      expect(body.detail).toBe('Internal error');
    });

    it.each([
      ['a wrong Content-Type (415)', { 'content-type': 'text/plain' }, '{"a":1}'],
      ['invalid JSON (400)', { 'content-type': 'application/json' }, '{"a":'],
      ['a body over the limit (413)', { 'content-type': 'application/json' }, JSON.stringify('x'.repeat(70_000))],
    ])('refuses a forbidden publisher 403 before looking at its body: %s', async (_, headers, body) => {
      let calls = 0;
      const { server, broker } = await start({
        publish: true,
        authorize: () => {
          calls++;
          return false;
        },
      });
      const response = await hold(server.url('room'), {
        method: 'POST',
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
        body,
      }).answer;
      expect(response?.status, response?.text).toBe(403);
      expect(JSON.parse(response!.text)).toMatchObject({ type: 'about:blank', status: 403, code: 'forbidden' });
      expect(calls).toBe(1);
      expect(broker.stats().messages).toBe(0);
    });

    it('runs after the channel check and before the query check', async () => {
      let calls = 0;
      const { server } = await start({
        authorize: () => {
          calls++;
          return false;
        },
      });
      expectProblem(await send(`${server.origin}${PREFIX}/bad%20name`), 400, 'invalid_channel');
      expect(calls).toBe(0);
      expectProblem(await send(server.url('room', 'wait=nope')), 403, 'forbidden');
      expect(calls).toBe(1);
    });
  });

  describe('connection limits', () => {
    it.each([
      ['client', { perClient: 1 }, 'b'],
      ['channel', { perChannel: 1 }, 'a'],
      ['total', { total: 1 }, 'b'],
    ] as const)('answers 429 with Retry-After and limit %s when that cap is full', async (limit, caps, secondChannel) => {
      const limiter = new ConnectionLimiter(caps);
      const { server, broker } = await start({ limiter });
      const first = hold(server.url('a', 'wait=5'));
      await until(() => broker.stats().waiters === 1 && limiter.stats().total === 1, 'the first poll is held');
      const refused = await send(server.url(secondChannel, 'wait=5'));
      const body = expectProblem(refused, 429, 'limit_exceeded');
      expect(body.limit).toBe(limit);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(limiter.stats().total).toBe(1);
      first.destroy();
      await first.answer;
    });

    it('counts polls under the key clientKey returns', async () => {
      const limiter = new ConnectionLimiter({ perClient: 1 });
      const { server, broker } = await start({
        limiter,
        clientKey: (request: unknown) => {
          const headers = framework === 'fetch' ? (request as Request).headers : undefined;
          if (headers) return headers.get('x-client-id') ?? undefined;
          // Koa's ctx has the Node request as `req`; Fastify's request has `headers` as Node's does.
          const node = framework === 'koa' ? (request as { req: IncomingMessage }).req : (request as IncomingMessage);
          return node.headers['x-client-id'] as string | undefined;
        },
      });
      const a = hold(server.url('room', 'wait=5'), { headers: { 'x-client-id': 'a' } });
      const b = hold(server.url('room', 'wait=5'), { headers: { 'x-client-id': 'b' } });
      await until(() => broker.stats().waiters === 2, 'one poll of each client is held');
      const refused = await send(server.url('room', 'wait=5'), { headers: { 'x-client-id': 'a' } });
      expect(expectProblem(refused, 429, 'limit_exceeded').limit).toBe('client');
      a.destroy();
      b.destroy();
      await Promise.all([a.answer, b.answer]);
    });

    it.each(['destroying the socket', 'aborting the fetch'])(
      'frees the waiter and the lease within 100 ms of the client %s',
      async (how) => {
        const limiter = new ConnectionLimiter();
        const { server, broker } = await start({ limiter });
        let cut: () => void;
        let settled: Promise<unknown>;
        if (how === 'destroying the socket') {
          const held = hold(server.url('room', 'wait=20'));
          cut = () => held.destroy();
          settled = held.answer;
        } else {
          const controller = new AbortController();
          settled = fetch(server.url('room', 'wait=20'), { signal: controller.signal }).catch(() => undefined);
          cut = () => controller.abort();
        }
        await until(() => broker.stats().waiters === 1 && limiter.stats().total === 1, 'the poll is held');
        cut();
        const freed = await eventually(() => broker.stats().waiters === 0 && limiter.stats().total === 0, 100);
        expect(freed, `waiters ${broker.stats().waiters}, leases ${limiter.stats().total}`).toBe(true);
        await settled;
      },
    );

    it('holds a lease during a wait=0 poll and releases it once answered', async () => {
      const limiter = new ConnectionLimiter({ perClient: 1 });
      let leasesDuringAuthorize = -1;
      const leasesDuringPoll: number[] = [];
      const { server, broker } = await start({
        limiter,
        authorize: () => {
          leasesDuringAuthorize = limiter.stats().total;
          return true;
        },
      });
      pollsOf(broker, () => leasesDuringPoll.push(limiter.stats().total));
      for (let i = 0; i < 3; i++) expect((await send(server.url('room', 'wait=0'))).status).toBe(200);
      expect(leasesDuringAuthorize).toBe(0);
      expect(leasesDuringPoll).toEqual([1, 1, 1]);
      expect(await eventually(() => limiter.stats().total === 0, 100)).toBe(true);
    });

    it('takes no lease for a rejected request: a bad query is 400, not 429, when the cap is full', async () => {
      const limiter = new ConnectionLimiter({ perClient: 1 });
      const { server, broker } = await start({ limiter });
      const first = hold(server.url('a', 'wait=5'));
      await until(() => broker.stats().waiters === 1, 'the first poll is held');
      expectProblem(await send(server.url('a', 'wait=x')), 400, 'invalid_wait');
      expect(limiter.stats().total).toBe(1);
      first.destroy();
      await first.answer;
    });
    it.each(['a garbage cursor', "another channel's cursor"])(
      'checks the cursor before the lease: %s is 400 invalid_cursor, not 429, when the cap is full',
      async (kind) => {
        const limiter = new ConnectionLimiter({ perClient: 1 });
        const { server, broker } = await start({ limiter });
        const cursor = kind === 'a garbage cursor' ? 'garbage' : (await broker.publish('b', 1)).cursor;
        const first = hold(server.url('a', 'wait=5'));
        await until(() => broker.stats().waiters === 1 && limiter.stats().total === 1, 'the first poll is held');
        expectProblem(await send(server.url('a', `cursor=${encodeURIComponent(cursor)}&wait=0`)), 400, 'invalid_cursor');
        expect(limiter.stats().total).toBe(1);
        first.destroy();
        await first.answer;
        // With room under the cap, a refused cursor still never asks for a lease.
        await until(() => limiter.stats().total === 0, 'the first lease is released');
        const acquire = vi.spyOn(limiter, 'acquire');
        expectProblem(await send(server.url('a', `cursor=${encodeURIComponent(cursor)}&wait=0`)), 400, 'invalid_cursor');
        expect(acquire).not.toHaveBeenCalled();
      },
    );
  });

  describe('event streams', () => {
    /**
     * Asks for a stream, reading an accepted one only until its head (then closing it) and any
     * other answer whole, in a second at most; the answer as {@link send} gives it.
     */
    async function ask(url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer & { streamed: boolean }> {
      const started = performance.now();
      const head = await streamHead(url, { method: init.method, headers: { accept: 'text/event-stream', ...init.headers }, timeout: 1_000 });
      expect(head?.complete, `${init.method ?? 'GET'} ${url}: answered in time`).toBe(true);
      const headers = new Headers();
      for (const [name, value] of Object.entries(head!.headers)) if (value !== undefined) headers.set(name, String(value));
      return { status: head!.status, headers, text: head!.text, streamed: head!.streamed, elapsed: performance.now() - started };
    }

    it('checks the route, then the rate, then the method, each a problem before any stream', async () => {
      const limiter = new ConnectionLimiter({ rate: { requests: 1, per: 60_000 } });
      const { server, broker } = await start({ limiter, authorize: () => false });
      // Every request below would fail every later check too.
      expectProblem(await ask(`${server.origin}${PREFIX}/a/b?wait=x`, { method: 'PUT' }), 404, 'not_found');
      expectProblem(await ask(server.url('room')), 403, 'forbidden'); // the one request the rate allows
      const limited = await ask(`${server.origin}${PREFIX}/bad%20name?wait=x`, { method: 'PUT' });
      expect(expectProblem(limited, 429, 'limit_exceeded').limit).toBe('rate');
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(broker.stats().waiters).toBe(0);
    });

    it('checks the method, the channel, authorize, the query and Last-Event-ID, then the lease, each a problem before any stream', async () => {
      const limiter = new ConnectionLimiter({ perClient: 1 });
      const asked: string[] = [];
      const { server, broker } = await start({
        limiter,
        authorize: (_request: unknown, { channel }: Access) => {
          asked.push(channel);
          if (channel === 'private') throw new LongPollError('unauthorized', 'Log in first');
          return channel !== 'secret';
        },
      });
      const many = (query: string) => `${server.origin}${PREFIX}?${query}`;
      const method = await ask(`${server.origin}${PREFIX}/bad%20name?wait=x`, { method: 'PUT' });
      expectProblem(method, 405, 'method_not_allowed');
      expect(method.headers.get('allow')).toBe('GET');
      const manyMethod = await ask(many('channels=a,bad%20name'), { method: 'POST' });
      expectProblem(manyMethod, 405, 'method_not_allowed');
      expect(manyMethod.headers.get('allow')).toBe('GET');
      expectProblem(await ask(`${server.origin}${PREFIX}/bad%20name?wait=x`), 400, 'invalid_channel');
      expectProblem(await ask(many('channels=secret,bad%20name&wait=x')), 400, 'invalid_channels');
      expect(asked).toEqual([]);
      expectProblem(await ask(server.url('secret', 'wait=x'), { headers: { 'last-event-id': 'garbage' } }), 403, 'forbidden');
      expectProblem(await ask(server.url('private', 'wait=x')), 401, 'unauthorized');
      expectProblem(await ask(many('channels=open,secret&wait=x')), 403, 'forbidden');
      // A stream holds the client's only lease: what fails the query is still a 400, not a 429.
      const stream = hold(server.url('open'), { headers: { accept: 'text/event-stream' } });
      await until(() => limiter.stats().total === 1, 'the first stream holds the lease');
      const { cursor: otherChannel } = await broker.publish('other', 1);
      for (const [query, headers, code] of [
        ['wait=x', {}, 'invalid_wait'],
        ['limit=0', {}, 'invalid_limit'],
        ['cursor=garbage', {}, 'invalid_cursor'],
        ['', { 'last-event-id': 'garbage' }, 'invalid_cursor'],
        ['', { 'last-event-id': 'x'.repeat(600) }, 'invalid_cursor'],
        ['', { 'last-event-id': otherChannel }, 'invalid_cursor'],
      ] as const) {
        expectProblem(await ask(server.url('open', query), { headers }), 400, code);
        expectProblem(await ask(many(`channels=open,b${query ? `&${query}` : ''}`), { headers }), 400, code);
      }
      expect(limiter.stats().total).toBe(1);
      expect(expectProblem(await ask(server.url('open')), 429, 'limit_exceeded').limit).toBe('client');
      expect(expectProblem(await ask(many('channels=open,b')), 429, 'limit_exceeded').limit).toBe('client');
      stream.destroy();
      await stream.answer.catch(() => undefined); // cut mid-body
      await until(() => limiter.stats().total === 0, 'the lease goes with the stream');
    });

    it('answers 503 shutting_down with Retry-After, not a stream, once the broker is closed', async () => {
      const limiter = new ConnectionLimiter();
      const { server, broker } = await start({ limiter });
      await broker.close();
      for (const url of [server.url('room'), `${server.origin}${PREFIX}?channels=room,b`]) {
        const answer = await ask(url);
        expectProblem(answer, 503, 'shutting_down');
        expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      }
      await until(() => limiter.stats().total === 0, 'no lease is left');
    });

    it.each(['text/event-stream', 'text/event-stream;q=0.5, */*', 'application/json, text/event-stream'])(
      'opens a stream for Accept %j with its own headers and none of a poll\'s, on one channel and on many',
      async (accept) => {
        const limiter = new ConnectionLimiter();
        const { server, broker } = await start({ limiter, retry: 1_234 });
        for (const url of [server.url('room', 'wait=1'), `${server.origin}${PREFIX}?channels=room,b&wait=1`]) {
          const answer = await ask(url, { headers: { accept, prefer: 'wait=2' } });
          expect(answer.status, answer.text).toBe(200);
          expect(answer.streamed).toBe(true);
          expect(answer.headers.get('content-type')).toBe('text/event-stream');
          expect(answer.headers.get('cache-control')).toBe('no-store');
          expect(answer.headers.get('x-accel-buffering')).toBe('no');
          for (const absent of ['longpoll-cursor', 'preference-applied', 'content-length']) expect(answer.headers.get(absent), absent).toBeNull();
          expect(answer.text.startsWith('retry: 1234\n')).toBe(true);
          expect(hasHead(answer.text)).toBe(true);
        }
        await until(() => limiter.stats().total === 0 && broker.stats().waiters === 0, 'the closed streams hold nothing');
      },
    );
  });

  describe('shutdown', () => {
    it('answers held polls 503 with Retry-After when broker.close() runs during a graceful server shutdown', async () => {
      const { server, broker } = await start();
      const held = [send(server.url('a', 'wait=20')), send(server.url('b', 'wait=20'))];
      await until(() => broker.stats().waiters === 2, 'both polls are held');
      const closed = new Promise<void>((resolve) => server.server.close(() => resolve()));
      await broker.close();
      for (const answer of await Promise.all(held)) {
        expectProblem(answer, 503, 'shutting_down');
        expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      }
      expect(broker.stats().waiters).toBe(0);
      server.server.closeAllConnections();
      await closed;
    });
  });

  describe('ordering', () => {
    it('shows 50 concurrent publishes in one identical order to every subscriber', async () => {
      const { server } = await start({ publish: true });
      const deadline = performance.now() + 10_000;
      async function follow(): Promise<string[]> {
        const ids: string[] = [];
        let cursor = '';
        while (ids.length < 50 && performance.now() < deadline) {
          const body = json<PollBody>(await send(server.url('race', `cursor=${encodeURIComponent(cursor)}&wait=2&limit=7`)));
          ids.push(...body.messages.map((m) => m.id));
          cursor = body.cursor;
        }
        return ids;
      }
      const followers = [follow(), follow(), follow()];
      await until(() => broker!.stats().waiters === 3, 'three followers are held');
      const published = await Promise.all(Array.from({ length: 50 }, (_, n) => post(server.url('race'), { n })));
      expect(published.every((p) => p.status === 201)).toBe(true);
      const orders = await Promise.all([...followers, follow()]);
      expect(orders[0]).toHaveLength(50);
      for (const order of orders) expect(order).toEqual(orders[0]);
      // ULIDs are monotonic within a process: publish order is id order.
      expect([...orders[0]].sort()).toEqual(orders[0]);
      expect(new Set(orders[0]).size).toBe(50);
    });
  });
});
