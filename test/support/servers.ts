import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline, Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import express from 'express';
import express4 from 'express4';
import fastify from 'fastify';
import fastify4 from 'fastify4';
import Koa from 'koa';
import Koa2 from 'koa2';
import type { Broker } from '../../src/index.js';
import type { LongPollOptions } from '../../src/http/protocol.js';
import { longPoll as expressLongPoll } from '../../src/adapters/express.js';
import { fastifyLongPoll, type FastifyLongPollOptions } from '../../src/adapters/fastify.js';
import { longPoll as fetchLongPoll, type FetchLongPollHandler } from '../../src/adapters/fetch.js';
import { longPoll as koaLongPoll } from '../../src/adapters/koa.js';
import { longPoll as nodeLongPoll } from '../../src/adapters/node.js';

/**
 * Every adapter on every framework major the package claims, each mounted under PREFIX on a real
 * server: the adapter's code is one per framework, the server is built with the matching
 * framework package (`express4`, `koa2` and `fastify4` are npm aliases of the older majors).
 */
export const ADAPTERS = ['node', 'express', 'express4', 'koa', 'koa2', 'fastify', 'fastify4', 'fetch'] as const;
export type AdapterName = (typeof ADAPTERS)[number];

/** The framework an entry of {@link ADAPTERS} runs on, whatever its major. */
export type Framework = 'node' | 'express' | 'koa' | 'fastify' | 'fetch';
export const FRAMEWORK: Readonly<Record<AdapterName, Framework>> = {
  node: 'node',
  express: 'express',
  express4: 'express',
  koa: 'koa',
  koa2: 'koa',
  fastify: 'fastify',
  fastify4: 'fastify',
  fetch: 'fetch',
};

/**
 * Whether Fastify's router refuses a request target before any route, hook or plugin sees it:
 * a path (up to `?` or `#`, and on Fastify 4, whose `useSemicolonDelimiter` defaults to true,
 * `;`) whose percent-encoding `decodeURI` cannot decode, such as `%ZZ` or a lone `%E9`. Fastify
 * answers it `400 FST_ERR_BAD_URL` in its own JSON (an application can reshape it with its
 * `frameworkErrors` option). No other entry refuses anything before the adapter.
 */
export function refusedByRouter(adapter: AdapterName, target: string): boolean {
  if (FRAMEWORK[adapter] !== 'fastify') return false;
  const path = target.split(adapter === 'fastify4' ? /[?#;]/ : /[?#]/)[0]!;
  try {
    // find-my-way keeps `%25` as is rather than decode it twice.
    decodeURI(path.replaceAll('%25', '%2525'));
    return false;
  } catch {
    return true;
  }
}

/**
 * The framework packages by entry: both majors' apps are driven through the same calls, so the
 * older major's types are cast to the newer's (the adapters are typed against one major).
 */
const EXPRESS = { express, express4: express4 as unknown as typeof express };
const KOA = { koa: Koa, koa2: Koa2 as unknown as typeof Koa };
const FASTIFY = { fastify, fastify4: fastify4 as unknown as typeof fastify };
export const PREFIX = '/channels';

/** Options common to every adapter; `authorize` and `clientKey` get a request-like value. */
export type AnyOptions = LongPollOptions<never>;

/** A server listening on 127.0.0.1 on a free port. */
export interface TestServer {
  readonly server: Server;
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  /** `origin + PREFIX + '/' + channel` */
  url(channel: string, query?: string): string;
  /** Closes the server and every connection (bounded). */
  close(): Promise<void>;
}

/** The abort controllers of each connection's unanswered requests (see fetchBridge). */
const unanswered = new WeakMap<object, Set<AbortController>>();

function abortUnanswered(this: object): void {
  for (const controller of unanswered.get(this) ?? []) controller.abort();
  unanswered.delete(this);
}

/**
 * A minimal Node → fetch bridge, as a runtime does it: the Request's signal aborts when the
 * client's connection closes (every pipelined request on it included), and the socket's address
 * is passed as `info.remoteAddr`.
 */
export function fetchBridge(handler: FetchLongPollHandler) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const controller = new AbortController();
    let open = unanswered.get(req.socket);
    if (!open) {
      open = new Set();
      unanswered.set(req.socket, open);
      req.socket.once('close', abortUnanswered);
    }
    open.add(controller);
    res.once('finish', () => open.delete(controller));
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`, {
      method: req.method,
      headers,
      body: hasBody ? Readable.toWeb(req) : null,
      signal: controller.signal,
      ...(hasBody ? { duplex: 'half' } : {}),
    } as RequestInit);
    void handler(request, { remoteAddr: { hostname: req.socket.remoteAddress } }).then((response) => {
      // A network error: the handler saw the client go away.
      if (res.destroyed || response.type === 'error') return;
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (!response.body) {
        res.end();
        return;
      }
      // Streamed with backpressure, as a runtime writes a body (an event stream never ends by
      // itself); a client that goes away cancels the body.
      pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), res, () => {});
    });
  };
}

/** Mounts `broker` with `adapter` under PREFIX and listens on a free port of 127.0.0.1. */
export async function startServer<T>(adapter: AdapterName, broker: Broker<T>, options: AnyOptions = {}): Promise<TestServer> {
  const opts = options as LongPollOptions<unknown>;
  let server: Server;
  switch (adapter) {
    case 'node':
      server = createServer(nodeLongPoll(broker, { ...opts, prefix: PREFIX }));
      break;
    case 'express':
    case 'express4': {
      const app = EXPRESS[adapter]();
      // Express matches mount paths case-insensitively unless told otherwise (`/CHANNELS/room`
      // would reach the adapter as `/room`): that is the app's routing, not the adapter's, and
      // the README says so. Here it matches the prefix exactly, as the other adapters do.
      app.set('case sensitive routing', true);
      app.use(PREFIX, expressLongPoll(broker, opts));
      server = createServer(app);
      break;
    }
    case 'koa':
    case 'koa2': {
      const app = new KOA[adapter]();
      app.use(koaLongPoll(broker, { ...opts, prefix: PREFIX }));
      const callback = app.callback();
      server = createServer((req, res) => void callback(req, res));
      break;
    }
    case 'fastify':
    case 'fastify4': {
      const app = FASTIFY[adapter]();
      await app.register(fastifyLongPoll, { ...(opts as Omit<FastifyLongPollOptions, 'broker'>), broker: broker as Broker<unknown>, prefix: PREFIX });
      await app.ready();
      server = app.server;
      break;
    }
    case 'fetch':
      server = createServer(fetchBridge(fetchLongPoll(broker, { ...opts, prefix: PREFIX })));
      break;
  }
  return listening(server);
}

/** `server` listening on 127.0.0.1 on a free port, its URLs under {@link PREFIX}. */
export async function listening(server: Server): Promise<TestServer> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    server,
    origin,
    url: (channel, query) => `${origin}${PREFIX}/${channel}${query ? `?${query}` : ''}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
