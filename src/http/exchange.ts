import { LongPollError, type Lease } from '../index.js';
import { PollTicket, type Answer } from '../poll.js';
import { pollResponse, problemResponse, sharedResponse, type PollResponse } from './answer.js';
import type { RequestBody } from './body.js';
import type { EventStream } from './sse.js';

/** A request as an adapter hands it to the protocol. */
export interface PollRequest<Req> {
  /** The HTTP method, upper case. */
  readonly method: string;
  /** The path and query as received, e.g. `/channels/room:1?cursor=abc`. */
  readonly url: string;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
  /**
   * The body: raw chunks, or a value middleware already parsed, which is used as is when the
   * Content-Type is JSON (else 415) and the request has a body (else 400: a parser's `{}` for
   * nothing).
   */
  readonly body: RequestBody;
  /** The client key to use when no `clientKey` option is given. */
  readonly clientKey: string | undefined;
  /** The framework's own request, handed to `authorize` and `clientKey`. */
  readonly raw: Req;
  /**
   * The transport's own idle timeout on the connection, in milliseconds (Node's
   * `server.timeout`); `0` or absent for none. When it is shorter than the wait, the protocol
   * answers a little before it, so that a held poll is answered rather than cut, and warns once
   * (`LONGPOLL_SERVER_TIMEOUT`).
   */
  readonly socketTimeout?: number;
}

/** Where an {@link Exchange} writes its answer. */
export interface ResponseSink {
  /** Writes the answer; called at most once per request, never after the exchange ended. */
  write(response: PollResponse): void;
  /**
   * Called once with the exchange the sink serves, before anything is written: where an adapter
   * ties the exchange to its connection (see `Exchange.end`).
   */
  bind?(exchange: Exchange): void;
  /** Called when the exchange ends before anything was written: nothing ever will be. */
  abandon?(): void;
}

/** Why a poll of a connection that went away ends. */
const gone = new LongPollError('internal', 'The client went away');

/** What an exchange is doing: waiting to write (its sink), written, or ended. */
const WRITTEN = 1;
const ENDED = 2;

/**
 * One request from acceptance to the end of its connection's need for it. It holds what the
 * request acquired (the lease, the broker's held poll) and gives it all back in {@link end},
 * which the adapter calls when the answer has been handed to the socket (`finish`) or the
 * connection is gone, whichever comes first; a fetch runtime, when the request's signal aborts
 * or the answer's body has been taken.
 */
export class Exchange extends PollTicket<unknown> {
  /** The lease of an accepted poll, held until {@link end}. */
  lease: Lease | undefined = undefined;
  /** `Preference-Applied`, when the request asked `Prefer: wait`. */
  applied: string | undefined = undefined;
  /** The event stream, when the request asked for one: it ends with the exchange. */
  stream: EventStream | undefined = undefined;
  #state: ResponseSink | typeof WRITTEN | typeof ENDED;

  constructor(
    sink: ResponseSink,
    readonly timeoutStatus: 200 | 204 | 304,
  ) {
    super();
    this.#state = sink;
    sink.bind?.(this);
  }

  /** Whether the connection no longer needs the exchange: nothing more is acquired for it. */
  get ended(): boolean {
    return this.#state === ENDED;
  }

  /** {@inheritDoc PollTicket.resolve} */
  resolve(answer: Answer<unknown>): void {
    let response: PollResponse;
    try {
      const { applied, timeoutStatus } = this;
      response = applied === undefined ? sharedResponse(answer, timeoutStatus) : pollResponse(answer, applied, timeoutStatus);
    } catch (error) {
      response = problemResponse(error);
    }
    this.write(response);
  }

  /** {@inheritDoc PollTicket.reject} */
  reject(error: unknown): void {
    this.write(problemResponse(error));
  }

  /**
   * Answers a held poll now as a timeout, or ends an event stream normally: a request pipelined
   * behind it is waiting.
   */
  override expire(): void {
    if (this.stream) this.stream.finish();
    else super.expire();
  }

  /**
   * Writes the answer, once; nothing after the exchange ended. A sink that throws ends the
   * exchange and is told, as for a client gone before its answer (`abandon`: a fetch request then
   * gets a network error, a Koa middleware returns). The broker calls `resolve` inside a publish,
   * a timer or another poll's answer, where a throw would leave the polls after this one
   * unanswered or escape as an uncaught error.
   */
  write(response: PollResponse): void {
    const sink = this.#state;
    if (typeof sink !== 'object') return;
    this.#state = WRITTEN;
    try {
      sink.write(response);
    } catch {
      this.end();
      sink.abandon?.();
    }
  }

  /**
   * The connection needs nothing more of this request: its answer was handed to the socket, or the
   * connection is gone. Forgets a held poll at once and releases the lease. Idempotent.
   */
  end(): void {
    const state = this.#state;
    if (state === ENDED) return;
    this.#state = ENDED;
    if (typeof state === 'object') state.abandon?.();
    // A poll that was answered has nothing to cancel.
    if (state !== WRITTEN) this.cancel(gone);
    this.stream?.stop();
    this.lease?.release();
    this.lease = undefined;
  }
}
