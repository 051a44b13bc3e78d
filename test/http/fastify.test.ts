/**
 * What is particular to the Fastify plugin, on both majors: where Fastify's own machinery (its
 * timeouts, router, body parsing, hooks, encapsulation, close) meets the protocol. The shared
 * suites (protocol, fuzz, differential, hostile) run it like every other adapter.
 */
import type { AddressInfo } from 'node:net';
import fastify5, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fastify4 from 'fastify4';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, LongPollError } from '../../src/index.js';
import { fastifyLongPoll, type FastifyLongPollOptions } from '../../src/adapters/fastify.js';
import { expectProblem, hold, json, post, send, until, type PollBody } from './requests.js';

const MAJORS = { fastify: fastify5, fastify4: fastify4 as unknown as typeof fastify5 };
type App = FastifyInstance;

describe.each(Object.keys(MAJORS) as (keyof typeof MAJORS)[])('the Fastify plugin on %s', (major) => {
  let app: App | undefined;
  let broker: Broker<unknown> | undefined;
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => {
    if ((warning as Error & { code?: string }).code === 'LONGPOLL_SERVER_TIMEOUT') warnings.push(warning);
  };

  afterEach(async () => {
    process.off('warning', onWarning);
    warnings.length = 0;
    app?.server.closeAllConnections();
    await app?.close();
    await broker?.close();
    app = undefined;
  });

  /** An app with the plugin under /channels (and whatever `setup` adds first), listening on 127.0.0.1. */
  async function start(
    options: Partial<FastifyLongPollOptions> = {},
    serverOptions: FastifyServerOptions = {},
    setup: (app: App) => void | Promise<void> = () => {},
  ): Promise<string> {
    broker = new Broker<unknown>();
    app = MAJORS[major](serverOptions);
    await setup(app);
    await app.register(fastifyLongPoll, { broker, prefix: '/channels', ...options });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  }

  it('answers a poll held past connectionTimeout and requestTimeout before either cuts it, and warns once', async () => {
    process.on('warning', onWarning);
    const origin = await start({}, { connectionTimeout: 1_200, requestTimeout: 1_000 });
    const answers = await Promise.all([hold(`${origin}/channels/a?wait=10`).answer, hold(`${origin}/channels/b?wait=10`).answer]);
    for (const answer of answers) {
      expect(answer, 'the poll was answered, not cut').toBeDefined();
      expect(answer!.status).toBe(200);
      expect(JSON.parse(answer!.text)).toMatchObject({ messages: [], timedOut: true });
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/server\.timeout \(1200 ms\)/);
  });

  it('is not cut by requestTimeout alone, which bounds only the arrival of the request', async () => {
    process.on('warning', onWarning);
    const origin = await start({ maxWait: 3_000 }, { requestTimeout: 500 });
    const answer = await hold(`${origin}/channels/a?wait=2`).answer;
    expect(answer?.status).toBe(200);
    expect(JSON.parse(answer!.text)).toMatchObject({ timedOut: true });
    expect(warnings).toHaveLength(0);
  });

  it('polls a 200-character channel name, longer than Fastify’s maxParamLength', async () => {
    const origin = await start();
    const channel = 'x'.repeat(200);
    await broker!.publish(channel, 'long');
    const response = await send(`${origin}/channels/${channel}?wait=0`);
    expect(json<PollBody>(response).messages.map((m) => m.data)).toEqual(['long']);
  });

  it('reads publish bodies with its own limits, not Fastify’s bodyLimit, while the app’s routes keep Fastify’s JSON parser', async () => {
    const origin = await start({ publish: true, maxBodyBytes: 4_096 }, { bodyLimit: 100 }, (app) => {
      app.post('/echo', async (request) => ({ echoed: request.body }));
    });
    const text = 'y'.repeat(1_000);
    expect((await post(`${origin}/channels/room`, { text })).status).toBe(201);
    expectProblem(await post(`${origin}/channels/room`, { text: 'z'.repeat(5_000) }), 413, 'payload_too_large');
    expectProblem(await post(`${origin}/channels/room`, '{"a":'), 400, 'invalid_body');
    expectProblem(await post(`${origin}/channels/room`, 'x', { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
    // Fastify 5 refuses this Content-Type before any handler; the plugin still answers as the protocol does.
    expectProblem(await post(`${origin}/channels/room`, '{}', { 'content-type': ';' }), 415, 'unsupported_media_type');
    expect((await send(`${origin}/channels/room?wait=0`)).text).toContain(text);
    // The app's own route: Fastify's parser and its bodyLimit.
    expect(json(await post(`${origin}/echo`, { a: 1 }))).toEqual({ echoed: { a: 1 } });
    expect((await post(`${origin}/echo`, { text })).status).toBe(413);
  });

  it('answers with the headers the app’s hooks set (CORS), and runs the app’s preHandler hooks', async () => {
    const origin = await start({}, {}, (app) => {
      app.addHook('onRequest', async (_request, reply) => {
        reply.header('access-control-allow-origin', '*');
        reply.header('access-control-expose-headers', 'Longpoll-Cursor');
      });
      app.addHook('preHandler', async (request, reply) => {
        if (request.headers['x-deny'] !== undefined) await reply.code(401).send({ denied: true });
      });
    });
    const polled = await send(`${origin}/channels/room?wait=0`);
    expect(polled.status).toBe(200);
    expect(polled.headers.get('access-control-allow-origin')).toBe('*');
    expect(polled.headers.get('access-control-expose-headers')).toBe('Longpoll-Cursor');
    expect(polled.headers.get('longpoll-cursor')).toBeTruthy();
    const refused = await send(`${origin}/channels/room?wait=nope`);
    expectProblem(refused, 400, 'invalid_wait');
    expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    const denied = await send(`${origin}/channels/room?wait=0`, { headers: { 'x-deny': '1' } });
    expect(denied.status).toBe(401);
    expect(json(denied)).toEqual({ denied: true });
  });

  it('answers {prefix} itself 404 problem+json and leaves other paths to the app', async () => {
    const origin = await start({}, {}, (app) => {
      app.get('/elsewhere', async () => 'the app answers');
    });
    expectProblem(await send(`${origin}/channels`), 404, 'not_found');
    expectProblem(await send(`${origin}/channels/`), 404, 'not_found');
    expect((await send(`${origin}/elsewhere`)).text).toBe('the app answers');
    const other = await send(`${origin}/nowhere`);
    expect(other.status).toBe(404);
    expect(other.headers.get('content-type')).not.toMatch(/problem/);
  });

  it('is placed by nested prefixes, and by none', async () => {
    broker = new Broker<unknown>();
    app = MAJORS[major]();
    const b = broker;
    await app.register(async (api: FastifyInstance) => api.register(fastifyLongPoll, { broker: b, prefix: '/channels' }), { prefix: '/api' });
    const root = MAJORS[major]();
    await root.register(fastifyLongPoll, { broker: b });
    try {
      await app.ready();
      await root.ready();
      expect((await app.inject({ url: '/api/channels/room?wait=0' })).statusCode).toBe(200);
      expect((await app.inject({ url: '/channels/room?wait=0' })).statusCode).toBe(404);
      expect((await root.inject({ url: '/room?wait=0' })).statusCode).toBe(200);
      expect(JSON.parse((await root.inject({ url: '/a/b' })).body)).toMatchObject({ code: 'not_found' });
    } finally {
      await root.close();
    }
  });

  it('answers held polls 503 shutting_down and closes promptly when the app closes the broker in preClose', async () => {
    const origin = await start({}, {}, (app) => {
      app.addHook('preClose', async () => broker!.close());
    });
    const held = [hold(`${origin}/channels/a?wait=30`), hold(`${origin}/channels/b?wait=30`)];
    await until(() => broker!.stats().waiters === 2, 'two polls are held');
    const started = performance.now();
    await app!.close();
    expect(performance.now() - started).toBeLessThan(2_000);
    for (const { answer } of held) expect((await answer)?.status).toBe(503);
    app = undefined;
  });

  it('refuses to register without a broker', async () => {
    app = MAJORS[major]();
    await expect(app.register(fastifyLongPoll, {} as FastifyLongPollOptions)).rejects.toThrow(LongPollError);
  });
});
