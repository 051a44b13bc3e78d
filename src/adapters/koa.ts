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
import { createProtocol, type LongPollOptions } from '../http/protocol.js';

export type { Access, LongPollOptions } from '../http/protocol.js';

/** Options of the Koa adapter: {@link LongPollOptions} over Koa's `Context`. */
export type KoaLongPollOptions = LongPollOptions<Context>;

/** Koa middleware: requests outside the prefix go to `next()`. */
export type KoaLongPollMiddleware = (ctx: Context, next: Next) => Promise<void>;

/**
 * Koa middleware for `GET {prefix}/{channel}` (poll) and, with `publish`, `POST` (publish).
 * `authorize` and `clientKey` receive Koa's `ctx`; the client key defaults to the socket's
 * remote address.
 *
 * @example
 * ```ts
 * app.use(longPoll(broker, { prefix: '/channels', limiter, publish: true }));
 * ```
 */
export function longPoll<T>(broker: Broker<T>, options: KoaLongPollOptions = {}): KoaLongPollMiddleware {
  const protocol = createProtocol(broker, options);
  return async (ctx, next) => {
    if (!protocol.owns(ctx.url)) {
      await next();
      return;
    }
    const controller = new AbortController();
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) controller.abort(new Error('The client went away'));
    });
    const { body } = ctx.request as typeof ctx.request & { body?: unknown };
    const response = await protocol.handle({
      method: ctx.method,
      url: ctx.url,
      header: (name) => ctx.get(name) || undefined,
      body: body === undefined ? { chunks: ctx.req } : { parsed: body },
      signal: controller.signal,
      clientKey: ctx.req.socket.remoteAddress,
      raw: ctx,
    });
    try {
      if (controller.signal.aborted) return; // nobody to answer; Koa writes nothing to a closed socket
      ctx.status = response.status;
      ctx.set(response.headers);
      ctx.body = response.body ?? null;
    } finally {
      response.written();
    }
  };
}
