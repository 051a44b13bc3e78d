import { afterEach, describe, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { ADAPTERS, FRAMEWORK, startServer, type TestServer } from '../support/servers.js';
import { hold, json, send, type PollBody } from './requests.js';

/** The adapters that run on Node's http server and can see its socket timeout (Fastify's `connectionTimeout`). */
const NODE_SERVERS = ADAPTERS.filter((adapter) => FRAMEWORK[adapter] !== 'fetch');
const SOCKET_TIMEOUT = 1_200;

describe.each(NODE_SERVERS)('the %s adapter under a short server.timeout', (adapter) => {
  let broker: Broker<unknown> | undefined;
  let server: TestServer | undefined;
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => {
    if ((warning as Error & { code?: string }).code === 'LONGPOLL_SERVER_TIMEOUT') warnings.push(warning);
  };

  afterEach(async () => {
    process.off('warning', onWarning);
    warnings.length = 0;
    await server?.close();
    await broker?.close();
  });

  it('answers a held poll with 200 timedOut before the socket timeout would cut it, and warns once', async () => {
    process.on('warning', onWarning);
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker);
    server.server.timeout = SOCKET_TIMEOUT;

    // Two polls on their own sockets, each asking for longer than the socket timeout.
    const answers = await Promise.all([hold(server.url('room', 'wait=10')).answer, hold(server.url('other', 'wait=10')).answer]);
    for (const answer of answers) {
      expect(answer, 'the poll was answered, not cut').toBeDefined();
      expect(answer!.status).toBe(200);
      expect(JSON.parse(answer!.text)).toMatchObject({ messages: [], timedOut: true });
    }
    // The poll after the first is clamped too, and the warning is not repeated.
    const third = await send(server.url('room', 'wait=10'));
    expect(json<PollBody>(third).timedOut).toBe(true);
    expect(third.elapsed).toBeLessThan(SOCKET_TIMEOUT);
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/server\.timeout \(1200 ms\)/);
  });

  it('still delivers a message published during the clamped wait', async () => {
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker);
    server.server.timeout = SOCKET_TIMEOUT;
    process.on('warning', onWarning);
    const answer = send(server.url('room', 'wait=10'));
    setTimeout(() => void broker!.publish('room', 'in time'), 200);
    const response = await answer;
    expect(json<PollBody>(response).messages.map((m) => m.data)).toEqual(['in time']);
  });

  it('neither clamps nor warns when server.timeout is 0 (the Node default)', async () => {
    process.on('warning', onWarning);
    broker = new Broker<unknown>();
    server = await startServer(adapter, broker, { maxWait: 400 });
    expect(server.server.timeout).toBe(0);
    const response = await send(server.url('room', 'wait=10'));
    expect(json<PollBody>(response).timedOut).toBe(true);
    expect(response.elapsed).toBeGreaterThanOrEqual(370);
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toHaveLength(0);
  });
});

/**
 * The control of the tests above: not a test of longpoll-kit, but proof that SOCKET_TIMEOUT on
 * this Node version really cuts a poll nothing clamps, so that "answered, not cut" above means
 * something. If Node stopped cutting idle sockets, this fails and the tests above prove nothing.
 */
describe('control: the same server.timeout with no guard', () => {
  it('cuts a held poll that nothing clamps (the fetch bridge cannot see server.timeout)', async () => {
    const broker = new Broker<unknown>();
    const server = await startServer('fetch', broker, { maxWait: 5_000 });
    try {
      server.server.timeout = SOCKET_TIMEOUT;
      await expect(hold(server.url('room', 'wait=3')).answer).rejects.toThrow(/socket hang up/);
    } finally {
      await server.close();
      await broker.close();
    }
  });
});
