import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import express4 from 'express4';
import Koa from 'koa';
import Koa2 from 'koa2';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { longPoll as expressLongPoll } from '../../src/adapters/express.js';
import { longPoll as koaLongPoll } from '../../src/adapters/koa.js';
import { hold, json, post, send } from './requests.js';

/**
 * Apps whose own body parser runs before the adapter, as the protocol allows, and whose own route
 * after it answers what is outside the prefix, on each framework major (the older major's types
 * cast to the newer's: the adapters are typed against one). Fastify parses no body for the
 * plugin's routes: test/http/fastify.test.ts.
 */
function expressApp(framework: typeof express) {
  return (broker: Broker<unknown>): Server => {
    const app = framework();
    app.use(framework.json());
    app.use('/channels', expressLongPoll(broker, { publish: true }));
    app.use((_req, res) => void res.status(404).type('text/plain').send('the app answers'));
    return createServer(app);
  };
}

function koaApp(framework: typeof Koa) {
  return (broker: Broker<unknown>): Server => {
    const app = new framework();
    // A stand-in for koa-bodyparser / @koa/bodyparser: it reads JSON into ctx.request.body, and
    // like them leaves `{}` there when it parses nothing (another type, an empty body, a GET).
    app.use(async (ctx, next) => {
      let body: unknown = {};
      if (ctx.is('application/json')) {
        const chunks: Buffer[] = [];
        for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
        const text = Buffer.concat(chunks).toString();
        if (text !== '') body = { parsedBy: 'app', ...(JSON.parse(text) as object) };
      }
      (ctx.request as typeof ctx.request & { body?: unknown }).body = body;
      await next();
    });
    app.use(koaLongPoll(broker, { prefix: '/channels', publish: true }));
    app.use((ctx) => {
      ctx.status = 404;
      ctx.body = 'the app answers';
    });
    const callback = app.callback();
    return createServer((req, res) => void callback(req, res));
  };
}

const APPS = {
  express: expressApp(express),
  express4: expressApp(express4 as unknown as typeof express),
  koa: koaApp(Koa),
  koa2: koaApp(Koa2 as unknown as typeof Koa),
};

describe.each(Object.keys(APPS) as (keyof typeof APPS)[])('the %s adapter as middleware', (name) => {
  let broker: Broker<unknown> | undefined;
  let server: Server | undefined;

  afterEach(async () => {
    server?.closeAllConnections();
    if (server) await new Promise((resolve) => server!.close(resolve));
    await broker?.close();
  });

  async function start(): Promise<string> {
    broker = new Broker<unknown>();
    server = APPS[name](broker).listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('passes requests outside its prefix on to the app', async () => {
    const origin = await start();
    for (const path of ['/elsewhere', '/channelsroom', '/other/room']) {
      const response = await send(`${origin}${path}`);
      expect(response.status).toBe(404);
      expect(response.text).toBe('the app answers');
    }
    // Under the prefix, the adapter answers, also for what it does not know.
    expect((await send(`${origin}/channels/a/b`)).headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it.each([
    [415, 'unsupported_media_type', 'text/plain', '{"a":1}'],
    [415, 'unsupported_media_type', 'application/x-www-form-urlencoded', 'a=1'],
    [415, 'unsupported_media_type', 'none', ''],
    [400, 'invalid_body', 'application/json', ''],
  ] as const)('answers %i %s, not 201 with the {} a body parser left, to Content-Type %s and the body %j', async (status, code, type, body) => {
    const origin = await start();
    const answer = await hold(`${origin}/channels/room`, {
      method: 'POST',
      headers: { ...(type === 'none' ? {} : { 'content-type': type }), 'content-length': Buffer.byteLength(body) },
      body,
    }).answer;
    expect(answer?.status, answer?.text).toBe(status);
    expect(answer!.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer!.text)).toMatchObject({ status, code });
    expect(broker!.stats().messages).toBe(0);
  });

  it('publishes the body the app already parsed, as is', async () => {
    const origin = await start();
    const response = await post(`${origin}/channels/room`, { text: 'parsed' });
    expect(response.status).toBe(201);
    const expected = name.startsWith('koa') ? { parsedBy: 'app', text: 'parsed' } : { text: 'parsed' };
    expect(json(response).data).toEqual(expected);
    // A poll on the same app still works: GET has no body for the parser to take.
    const polled = json<{ messages: { data: unknown }[] }>(await send(`${origin}/channels/room?wait=0`));
    expect(polled.messages.map((m) => m.data)).toEqual([expected]);
  });
});
