/**
 * Mounts a broker as Express middleware. Express is Node http underneath, so this wraps the
 * Node adapter; a body that `express.json()` already parsed is used as is.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { Broker } from 'longpoll-kit';
 * import { longPoll } from 'longpoll-kit/express';
 *
 * const app = express();
 * app.use('/channels', longPoll(new Broker(), { publish: true }));
 * ```
 *
 * @module longpoll-kit/express
 */
import type { NextFunction, Request, Response } from 'express';
import type { Broker } from '../index.js';
import type { LongPollOptions } from '../http/protocol.js';
import { longPoll as nodeLongPoll } from './node.js';

export type { Access, LongPollOptions } from '../http/protocol.js';

/**
 * Options of the Express adapter: {@link LongPollOptions} over Express' `Request`. `prefix`
 * defaults to `''` because Express strips the mount path (`app.use('/channels', …)`).
 */
export type ExpressLongPollOptions = LongPollOptions<Request>;

/**
 * Express middleware: requests outside the prefix go to `next()`; under it, paths that are not
 * exactly one channel segment (`/`, `/a/b`) are answered 404 with a problem body.
 */
export type ExpressLongPollHandler = (req: Request, res: Response, next: NextFunction) => void;

/**
 * Express middleware for `GET {prefix}/{channel}` (poll) and, with `publish`, `POST` (publish).
 *
 * @example
 * ```ts
 * app.use('/channels', longPoll(broker, { limiter, authorize: (req) => Boolean(req.get('authorization')) }));
 * ```
 */
export function longPoll<T>(broker: Broker<T>, options: ExpressLongPollOptions = {}): ExpressLongPollHandler {
  const handler = nodeLongPoll<T, Request>(broker, options);
  return (req, res, next) => handler(req, res, next);
}
