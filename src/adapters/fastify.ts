/**
 * Mounts a broker as a Fastify plugin (Fastify 4 and 5).
 *
 * @example
 * ```ts
 * import Fastify from 'fastify';
 * import { Broker, ConnectionLimiter } from 'longpoll-kit';
 * import { fastifyLongPoll } from 'longpoll-kit/fastify';
 *
 * const broker = new Broker();
 * const app = Fastify();
 * await app.register(fastifyLongPoll, { broker, prefix: '/channels', limiter: new ConnectionLimiter() });
 * app.addHook('preClose', () => broker.close());
 * await app.listen({ port: 3000 });
 * ```
 *
 * @module longpoll-kit/fastify
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LongPollError, type Broker } from '../index.js';
import { bodyChunks, socketTimeoutOf, track, writeAnswer, type ReadableBody } from '../http/connection.js';
import { createProtocol, problemResponse, type Exchange, type LongPollOptions, type PollRequest, type PollResponse, type ResponseSink } from '../http/protocol.js';

export type { Access, LongPollOptions } from '../http/protocol.js';

/**
 * Options of the Fastify plugin: {@link LongPollOptions} over Fastify's `FastifyRequest`, and the
 * broker to serve.
 */
export interface FastifyLongPollOptions extends Omit<LongPollOptions<FastifyRequest>, 'prefix'> {
  /** The broker to serve. The application owns it and closes it (see {@link fastifyLongPoll}). */
  broker: Broker<unknown>;
  /**
   * Fastify's own register option: where the plugin's routes live, `GET {prefix}/{channel}`.
   * @default ''
   */
  prefix?: string;
}

/** The Fastify plugin: a function of the instance and the options, as `app.register` takes it. */
export type FastifyLongPollPlugin = (instance: FastifyInstance, options: FastifyLongPollOptions) => Promise<void>;

/**
 * A held poll keeps this object: methods on the prototype instead of closures per request. It is
 * also where the protocol writes the answer.
 */
class FastifyPollRequest implements PollRequest<FastifyRequest>, ResponseSink {
  readonly method: string;
  readonly url: string;
  readonly socketTimeout: number | undefined;

  constructor(
    readonly raw: FastifyRequest,
    readonly reply: FastifyReply,
    readonly sendTimeout: number,
    /** Fastify refused the Content-Type as malformed: the protocol sees none (see `refusedType`). */
    readonly typeless = false,
  ) {
    // The raw request, not Fastify's view of it: the path exactly as sent, which the protocol
    // parses itself (Fastify 4 would cut it at a `;`, and `maxParamLength` would cut a channel).
    this.method = raw.raw.method ?? 'GET';
    this.url = raw.raw.url ?? '/';
    // Fastify's `connectionTimeout` is Node's `server.timeout`: the same idle timeout can cut a held poll.
    this.socketTimeout = socketTimeoutOf(raw.raw.socket);
  }

  /** `request.ip` follows the application's `trustProxy` setting, as the rest of its routes do. */
  get clientKey(): string | undefined {
    return this.raw.ip;
  }

  header(name: string): string | undefined {
    if (this.typeless && name === 'content-type') return undefined;
    const value = this.raw.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  get body(): PollRequest<FastifyRequest>['body'] {
    // The plugin's content-type parser hands the unread body on (after the application's
    // `preParsing` hooks, if any); methods Fastify parses no body for leave it on the request.
    const payload = this.raw.body as ReadableBody | undefined;
    return { chunks: bodyChunks(payload ?? this.raw.raw) };
  }

  bind(exchange: Exchange): void {
    track(this.raw.raw, this.reply.raw, exchange);
  }

  write(response: PollResponse): void {
    const res = this.reply.raw;
    let answer = response;
    if (!res.headersSent && !res.destroyed) {
      // Headers the application's hooks put on the reply (CORS, for one) go out too; ours win.
      try {
        for (const [name, value] of Object.entries(this.reply.getHeaders())) {
          if (value !== undefined) res.setHeader(name, value);
        }
      } catch (error) {
        // One that Node refuses (a hook that copies the query into a header, and a character
        // outside Latin-1 in it): a 500, as Fastify answers its own routes. Thrown on, it would
        // leave the poll unanswered, or escape a publish or a timer.
        answer = problemResponse(error);
      }
    }
    writeAnswer(res, answer, this.sendTimeout);
  }
}

/**
 * Passes the body on unread: the protocol reads it itself, after `authorize`, within
 * `maxBodyBytes` and `bodyTimeout`, and answers every refusal with its own problem+json.
 */
function unparsed(_request: FastifyRequest, payload: unknown, done: (error: null, body: unknown) => void): void {
  done(null, payload);
}

/**
 * The Fastify plugin: `GET {prefix}/{channel}` polls, and `POST` publishes when `publish` is on;
 * every other method is answered `405` with `Allow`, and `{prefix}` itself (reserved for
 * many-channel requests) and deeper paths `404`, all as problem+json. Fastify's own `prefix`
 * register option places it.
 *
 * - **Routes.** One wildcard route per method under the prefix, whose path the plugin parses
 *   itself: Fastify's `maxParamLength` (100) does not cut a 200-character channel name.
 * - **Bodies.** The plugin's routes take no part in Fastify's body parsing (its `bodyLimit`,
 *   its JSON parser, its 415): the body is read after `authorize`, with `maxBodyBytes` and
 *   `bodyTimeout`, and every error is the plugin's problem+json.
 * - **Encapsulation.** The plugin is encapsulated, as Fastify plugins with routes are: its
 *   content-type parser applies to its own routes only (the application's JSON routes keep
 *   Fastify's), the `prefix` option works, and it decorates nothing, so there is nothing to
 *   share with the parent context. The application's hooks (`onRequest`, `preHandler`…) and its
 *   reply headers (CORS) apply to it as to any route.
 * - **Answers.** Through `reply.hijack()`, on the raw response; headers already set on the reply
 *   are copied first. A lease and a held poll last until the answer is handed to the socket or
 *   the connection closes; an answer the client does not read for `sendTimeout` ms destroys the
 *   connection.
 * - **Timeouts.** Fastify's `connectionTimeout` is the server's socket timeout: when it is set
 *   and shorter than `maxWait`, waits are clamped to answer before it, and a process warning
 *   with code `LONGPOLL_SERVER_TIMEOUT` is emitted once. `requestTimeout` only bounds the arrival
 *   of the request, so it does not cut a held poll.
 * - **Client key.** `request.ip`, which follows the application's `trustProxy`.
 * - **Closing.** The application owns the broker: close it in a `preClose` hook, so that held
 *   polls are answered `503 shutting_down` and `app.close()` does not wait for their waits to run
 *   out (`onClose` runs only after every in-flight request has finished).
 *
 * @throws LongPollError `invalid_option` (when registered) for a missing broker or a bad option
 * @example
 * ```ts
 * await app.register(fastifyLongPoll, { broker, prefix: '/channels', limiter, publish: true, maxBodyBytes: 16_384 });
 * ```
 */
export const fastifyLongPoll: FastifyLongPollPlugin = async (instance, options) => {
  const { broker, prefix: _placedByFastify, ...rest } = options;
  if (typeof broker?.publish !== 'function') throw new LongPollError('invalid_option', 'fastifyLongPoll needs a broker: { broker }');
  // The prefix of this context, as Fastify built it from every `prefix` on the way here.
  const prefix = instance.prefix.replace(/\/+$/, '');
  const protocol = createProtocol<FastifyRequest, unknown>(broker, { ...rest, prefix });
  const { sendTimeout } = protocol.settings;

  instance.removeAllContentTypeParsers();
  instance.addContentTypeParser('*', unparsed);

  function serve(request: FastifyRequest, reply: FastifyReply, typeless?: boolean): void {
    reply.hijack();
    const poll = new FastifyPollRequest(request, reply, sendTimeout, typeless);
    protocol.serve(poll, poll);
  }
  const handler = (request: FastifyRequest, reply: FastifyReply): void => serve(request, reply);
  // Fastify 5 refuses a Content-Type it cannot parse (`;`, `json`, an empty one) on methods that
  // may carry a body, before any handler. Such a request can only be refused (the protocol
  // publishes JSON only), so it is answered by the protocol as one without a Content-Type: the
  // same answer as on every other adapter, as problem+json. Any other error is the application's.
  instance.setErrorHandler((error, request, reply) => {
    if ((error as { code?: unknown }).code !== 'FST_ERR_CTP_INVALID_MEDIA_TYPE') throw error;
    serve(request, reply, true);
  });
  instance.all('/*', handler);
  if (prefix !== '') instance.all('', handler);
};

// How Fastify names the plugin in its logs and `printPlugins()`.
Object.defineProperty(fastifyLongPoll, Symbol.for('fastify.display-name'), { value: 'longpoll-kit' });

export default fastifyLongPoll;
