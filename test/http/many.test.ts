/** `GET {prefix}?channels=a,b,c`: one poll over many channels, on every adapter. */
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, ConnectionLimiter } from '../../src/index.js';
import { ADAPTERS, PREFIX, startServer, type AnyOptions, type TestServer } from '../support/servers.js';
import { eventually, expectProblem, hold, json, send, until, type PollBody } from './requests.js';

describe.each(ADAPTERS)('many channels in one poll, %s adapter', (adapter) => {
  let broker: Broker<unknown>;
  let server: TestServer | undefined;

  async function start(options: AnyOptions = {}): Promise<TestServer> {
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker, options);
    return server;
  }

  const many = (query: string, slash = false) => `${server!.origin}${PREFIX}${slash ? '/' : ''}?${query}`;
  const seen = (body: PollBody) => body.messages.map((m) => `${m.channel}:${String(m.data)}`).sort();

  afterEach(async () => {
    await server?.close();
    server = undefined;
    await broker?.close();
  });

  it('answers from every listed channel, then holds one poll until a publish on any of them', async () => {
    await start();
    await broker.publish('a', 1);
    await broker.publish('b', 1);
    const first = await send(many('channels=a,b,c&wait=0'));
    expect(first.status).toBe(200);
    const body = json<PollBody>(first);
    expect(seen(body)).toEqual(['a:1', 'b:1']);
    expect(first.headers.get('longpoll-cursor')).toBe(body.cursor);
    const held = send(many(`channels=a,b,c&wait=5&cursor=${encodeURIComponent(body.cursor)}`, true));
    await until(() => broker.stats().waiters === 1, 'one poll is held for three channels');
    await broker.publish('c', 'x');
    expect(seen(json<PollBody>(await held))).toEqual(['c:x']);
  });

  it('keeps the cursor when the list changes', async () => {
    await start();
    await broker.publish('a', 1);
    const first = json<PollBody>(await send(many('channels=a&wait=0')));
    await broker.publish('b', 1);
    await broker.publish('a', 2);
    const second = json<PollBody>(await send(many(`channels=a,b&wait=0&cursor=${encodeURIComponent(first.cursor)}`)));
    expect(seen(second)).toEqual(['a:2', 'b:1']);
  });

  it('is 404 without a channels parameter', async () => {
    await start();
    expectProblem(await send(`${server!.origin}${PREFIX}`), 404, 'not_found');
    expectProblem(await send(`${server!.origin}${PREFIX}/?wait=0`), 404, 'not_found');
  });

  it.each(['channels=a,', 'channels=,a', 'channels=a,a', 'channels=a,b%20c', 'channels=', 'channels=a&channels=b', `channels=${Array.from({ length: 33 }, (_, i) => `c${i}`).join(',')}`])(
    'refuses %s with 400 invalid_channels',
    async (query) => {
      await start();
      expectProblem(await send(many(`${query}&wait=0`)), 400, 'invalid_channels');
    },
  );

  it('answers only GET: 405 with Allow: GET, even with publish on', async () => {
    await start({ publish: true });
    const answer = await send(many('channels=a,b'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '1' });
    expectProblem(answer, 405, 'method_not_allowed');
    expect(answer.headers.get('allow')).toBe('GET');
  });

  it('asks authorize for every channel and names the one refused', async () => {
    await start({ authorize: (_: unknown, { channel }: { channel: string }) => channel !== 'secret' });
    const refused = expectProblem(await send(many('channels=a,secret,b&wait=0')), 403, 'forbidden');
    expect(refused.detail).toContain('secret');
    expect((await send(many('channels=a,b&wait=0'))).status).toBe(200);
  });

  it('refuses a garbage cursor with 400 before the lease, and counts one lease toward each channel', async () => {
    const limiter = new ConnectionLimiter({ perChannel: 1 });
    await start({ limiter });
    expectProblem(await send(many('channels=a,b&cursor=garbage&wait=0')), 400, 'invalid_cursor');
    const held = hold(many('channels=a,b&wait=5'));
    await until(() => limiter.stats().total === 1 && limiter.stats().channels === 2, 'one lease on two channels');
    const refused = expectProblem(await send(server!.url('b', 'wait=0')), 429, 'limit_exceeded');
    expect(refused.limit).toBe('channel');
    held.destroy();
    await held.answer;
    expect(await eventually(() => limiter.stats().total === 0 && broker.stats().waiters === 0, 500)).toBe(true);
  });
});
