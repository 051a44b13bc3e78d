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
import { bodyChunks, socketTimeoutOf, track, written } from '../http/connection.js';
import { createProtocol, type LongPollOptions, type PollResponse } from '../http/protocol.js';

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
    // Koa writes the answer after the middleware chain: the exchange ends on the response's
    // `finish` or the socket's `close`, as on the Node adapter, not when this function returns.
    const response = await new Promise<PollResponse | undefined>((write) => {
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
        { write, bind: (exchange) => track(req, res, exchange), abandon: () => write(undefined) },
      );
    });
    if (!response || ctx.headerSent || res.destroyed) return; // nobody to answer, or someone already did
    // Koa ends the response after the middleware chain: watch it from there.
    res.once('prefinish', () => written(res, sendTimeout));
    ctx.status = response.status;
    ctx.set(response.headers);
    const { body: answer } = response;
    // Koa sends a Buffer as bytes (a plain Uint8Array it would serialise as JSON).
    ctx.body = answer === undefined ? null : typeof answer === 'string' ? answer : Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength);
  };
}
