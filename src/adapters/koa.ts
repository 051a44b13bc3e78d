/**
 * Mounts a broker as Koa middleware. A body that a body parser already put on
 * `ctx.request.body` is used as is.
 *
 * @example
 * ```ts
 * import Koa from 'koa';
 * import { Broker } from 'longpoll-kit';
 * import { longPoll } from 'longpoll-kit/koa';
 *
 * const app = new Koa();
 * app.use(longPoll(new Broker(), { prefix: '/channels' }));
 * ```
 *
 * @module longpoll-kit/koa
 */
import type { Context, Next } from 'koa';
import type { Broker } from '../index.js';
import { bodyChunks, socketTimeoutOf, track, writeAnswer } from '../http/connection.js';
import { createProtocol, type LongPollOptions } from '../http/protocol.js';

export type { Access, LongPollOptions } from '../http/protocol.js';

/** Options of the Koa adapter: {@link LongPollOptions} over Koa's `Context`. */
export type KoaLongPollOptions = LongPollOptions<Context>;

/** Koa middleware: requests outside the prefix go to `next()`. */
export type KoaLongPollMiddleware = (ctx: Context, next: Next) => Promise<void>;

/**
 * Koa middleware for `GET {prefix}/{channel}` (poll) and, with `publish`, `POST` (publish).
 * `authorize` and `clientKey` receive Koa's `ctx`; the client key defaults to the socket's
 * remote address. Koa runs on Node's http server, so it gets the Node adapter's guard: when
 * `server.timeout` is shorter than the wait, waits are clamped to answer before it and a
 * `LONGPOLL_SERVER_TIMEOUT` warning is emitted once.
 *
 * @example
 * ```ts
 * app.use(longPoll(broker, { prefix: '/channels', limiter, publish: true }));
 * ```
 */
export function longPoll<T>(broker: Broker<T>, options: KoaLongPollOptions = {}): KoaLongPollMiddleware {
  const protocol = createProtocol(broker, options);
  const { sendTimeout } = protocol.settings;
  return async (ctx, next) => {
    if (!protocol.owns(ctx.url)) {
      await next();
      return;
    }
    const { req, res } = ctx;
    const { body } = ctx.request as typeof ctx.request & { body?: unknown };
    // The answer is written to Node's response directly, as the Node adapter writes it, so that
    // the exchange ends on its `finish` or the socket's `close` and an unread answer is timed;
    // Koa only learns the status, for the middleware around this one.
    ctx.respond = false;
    await new Promise<void>((done) => {
      protocol.serve(
        {
          method: ctx.method,
          url: ctx.url,
          header: (name) => ctx.get(name) || undefined,
          body: body === undefined ? { chunks: bodyChunks(req) } : { parsed: body },
          clientKey: req.socket.remoteAddress,
          raw: ctx,
          // Koa runs on Node's http server: the same socket timeout can cut a held poll.
          socketTimeout: socketTimeoutOf(req.socket),
        },
        {
          bind: (exchange) => track(req, res, exchange),
          write: (response) => {
            if (!ctx.headerSent) ctx.status = response.status;
            writeAnswer(res, response, sendTimeout);
            done();
          },
          abandon: done,
        },
      );
    });
  };
}
