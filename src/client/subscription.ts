import type { Cursor, JsonValue, Message } from '../engine.js';
import { hasBody, readAnswer, type PollOutcome } from './answer.js';
import { Backoff } from './backoff.js';
import { requestDeadline } from './deadline.js';
import { Emitter } from './emitter.js';
import { MessageQueue } from './message-queue.js';
import { resolveOptions, type HeadersInput, type ResolvedOptions, type SubscribeOptions } from './options.js';
import { RecentIds } from './recent-ids.js';
import { readText } from './response-text.js';
import { readStream, type StreamOutcome } from './stream.js';
import { SubscriptionError } from './subscription-error.js';
import { appendQuery, subscriptionUrl } from './url.js';

/** What a `reset` event carries. */
export interface ResetEvent {
  /**
   * Where polling resumes: the earliest cursor the server still retains. `undefined` when the
   * server named none; polling then resumes from everything retained.
   */
  readonly earliestCursor: Cursor | undefined;
}

/** The events of a {@link Subscription} and their listeners' signatures. */
export interface SubscriptionEvents<T> {
  /** A new message, in publish order, never one already delivered. */
  message: (message: Message<T>) => void;
  /** A poll failed. `error.fatal` says whether the subscription closes; else `error.retryIn` says when it retries. */
  error: (error: SubscriptionError) => void;
  /**
   * The cursor expired (the server evicted messages after it, or restarted with a fresh
   * history): some messages may have been missed, so reload whatever state you derive from them.
   */
  reset: (event: ResetEvent) => void;
  /**
   * The server answered: after `subscribe`, and again after every recovery from errors (as
   * EventSource does). The first poll and the first after a failure are answered at once, so
   * `open` is prompt even on a quiet channel.
   */
  open: () => void;
  /**
   * The subscription's {@link Subscription.cursor | cursor} moved: after all the messages of an
   * answer were emitted (or an empty answer moved it), or on a reset to the server's earliest
   * cursor. Save it here to resume after a reload: it is never `undefined`, and since it comes
   * after the batch's `message` events, a page that dies mid-batch resumes before that batch
   * (at-least-once; ids repeat, they are not skipped).
   */
  cursor: (cursor: Cursor) => void;
  /** The subscription closed: by `close()`, its signal, leaving a `for await` loop, or a fatal error. */
  close: () => void;
}

/** Messages delivered recently enough to be recognised if they come again. */
const RECENT_IDS = 1000;

/**
 * An empty answer that comes back in less than this share of the wait (and less than
 * {@link EARLY_ANSWER_MAX}) was not held: the server or a proxy answers at once.
 */
const EARLY_ANSWER_SHARE = 0.5;
/** A server may clamp a long wait (to its `maxWait`, 55 s by default): only a quick answer is early. */
const EARLY_ANSWER_MAX = 1000;
/**
 * An empty answer quicker than this is early whatever the wait: a wait of a few milliseconds,
 * honoured, would otherwise re-poll hundreds of times a second. So empty answers that are not
 * early come at most 20 times a second.
 */
const EARLY_ANSWER_MIN = 50;
/**
 * An event stream open at least this long ran well: its end or failure starts the backoff
 * afresh. One that ends sooner, each time, is a server that does not hold streams.
 */
const HEALTHY_STREAM = 1000;

/** Waits `ms`, or less if `signal` aborts; never rejects, and leaves no timer once aborted. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * A live subscription to one channel, or to many (the `channels` option): listen with {@link Subscription.on}, or read it with
 * `for await`. Created by {@link subscribe}, which starts polling at once.
 *
 * What the iterator sees: the subscription buffers every message (up to `bufferSize`; when the
 * buffer is full, polling pauses) from the moment it is created until a `message` listener is
 * added. So an iterator created late, even after some answers came in, starts with the first
 * message: nothing is dropped. Adding a `message` listener before any iterator exists stops the
 * buffering (and drops what it held), so a subscription used only through events never stalls
 * on a full buffer; an iterator created after that sees the messages from then on. Using both
 * is fine when the iterator comes first. A subscription that has neither pauses once
 * `bufferSize` messages wait.
 *
 * A listener that throws does not stop the others or the polling: in a browser the error goes to
 * `reportError` (the console, `window.onerror`), as EventTarget does; elsewhere (Node) it is
 * emitted as an `error` event, a {@link SubscriptionError} with code `listener_error`, not
 * `fatal`, whose `cause` is the thrown value. An `error` listener that throws is logged with
 * `console.error`, and so is any listener error while nobody listens to `error`. The process
 * never crashes because of a listener.
 *
 * @typeParam T - the messages' `data`
 */
export class Subscription<T = JsonValue> implements AsyncIterable<Message<T>> {
  /** The URL every request starts from (with `?channels=` when the option lists them). */
  readonly #url: string;
  readonly #options: ResolvedOptions;
  readonly #events = new Emitter<SubscriptionEvents<T>>((error, event) => this.#listenerThrew(error, event));
  readonly #stop = new AbortController();
  readonly #recent = new RecentIds(RECENT_IDS);
  readonly #backoff: Backoff;
  #cursor: Cursor | undefined;
  /** The iterator's buffer; also before the iterator exists, until a `message` listener is added. */
  #queue: MessageQueue<Message<T>> | undefined;
  #iterated = false;
  /** Whether the last request succeeded; until one does, polls do not wait (see #poll). */
  #connected = false;
  /**
   * The `limit` lowered after an answer larger than `maxBodyBytes`; `undefined` once an answer
   * had fewer messages than asked for (the backlog is read) and the full limit applies again.
   */
  #limitCap: number | undefined;
  /** Whether the last answer was a reset (410). */
  #resetting = false;
  #closed = false;
  #fatal: SubscriptionError | undefined;
  /** The last `retry:` of an event stream: the delay before reconnecting after a normal end. */
  #retry: number | undefined;

  /** @internal Use {@link subscribe}. */
  constructor(url: string | URL, options: SubscribeOptions = {}) {
    this.#options = resolveOptions(options);
    this.#url = subscriptionUrl(url, this.#options.channels);
    this.#cursor = this.#options.cursor;
    this.#queue = new MessageQueue<Message<T>>(this.#options.bufferSize);
    this.#backoff = new Backoff(this.#options.backoff.initial, this.#options.backoff.max);
    const { signal } = this.#options;
    if (signal?.aborted) {
      // Closed before it started, but after the caller could attach a `close` listener.
      queueMicrotask(() => this.close());
      return;
    }
    signal?.addEventListener('abort', () => this.close(), { once: true, signal: this.#stop.signal });
    this.#run().catch((error: unknown) => this.#fail(new SubscriptionError('The subscription failed', { fatal: true, cause: error })));
  }

  /**
   * The cursor just after the last batch delivered (or the one the subscription started from;
   * with `transport: 'sse'`, the last `id:` the stream sent, at the latest after its event):
   * keep it to resume later with `subscribe(url, { cursor })`. It moves once a whole batch was
   * emitted, so inside a `message` listener it is still the previous batch's cursor; save it
   * from the `cursor` event instead.
   */
  get cursor(): Cursor | undefined {
    return this.#cursor;
  }

  /** Whether the subscription is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Calls `listener` on every `event`. A `message` listener added before any iterator stops the iterator's buffering. */
  on<E extends keyof SubscriptionEvents<T>>(event: E, listener: SubscriptionEvents<T>[E]): this {
    if (event === 'message') this.#stopBuffering();
    this.#events.on(event, listener);
    return this;
  }

  /** Removes a listener added with `on` or `once`. */
  off<E extends keyof SubscriptionEvents<T>>(event: E, listener: SubscriptionEvents<T>[E]): this {
    this.#events.off(event, listener);
    return this;
  }

  /** Calls `listener` on the next `event` only. */
  once<E extends keyof SubscriptionEvents<T>>(event: E, listener: SubscriptionEvents<T>[E]): this {
    if (event === 'message') this.#stopBuffering();
    this.#events.once(event, listener);
    return this;
  }

  /**
   * Stops at once: aborts the request in flight (the server frees its waiter), cancels any
   * backoff, ends the iterator after the messages it buffered, and emits `close`. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    this.#queue?.end(this.#fatal);
    this.#events.emit('close');
    this.#events.clear();
  }

  /**
   * Reads the messages in order, from the first one the subscription received, however late it
   * is called, unless a `message` listener was added before it (then from the moment it is
   * called; see {@link Subscription}). Leaving the loop closes the subscription; a fatal error is
   * thrown from the loop after the buffered messages. While `bufferSize` messages wait for the
   * reader, polling pauses. A subscription can be iterated once.
   */
  [Symbol.asyncIterator](): AsyncIterator<Message<T>, undefined> {
    if (this.#iterated) throw new TypeError('A Subscription can be iterated only once');
    this.#iterated = true;
    const queue = (this.#queue ??= new MessageQueue<Message<T>>(this.#options.bufferSize));
    if (this.#closed) queue.end(this.#fatal);
    return {
      next: () => queue.next(),
      return: async () => {
        queue.discard();
        this.close();
        return { value: undefined, done: true };
      },
    };
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      await this.#queue?.room();
      if (this.#closed) return;
      const pause = await this.#step();
      // Listeners may have closed the subscription: then no timer may be left running.
      if (this.#closed) return;
      // Always a macrotask between polls (a timer fires no sooner than the next turn), even when
      // every answer is ready at once (an injected fetch, a cache): the loop never starves timers
      // and I/O. In Node and browsers a 0 ms timer waits about 1 ms.
      await sleep(pause ?? 0, this.#stop.signal);
    }
  }

  /** One request and what it brings; returns how long to wait before the next one, if at all. */
  #step(): Promise<number | undefined> {
    return this.#options.transport === 'sse' ? this.#streamStep() : this.#pollStep();
  }

  /** One poll and what its answer says; returns how long to wait before the next one, if at all. */
  async #pollStep(): Promise<number | undefined> {
    // The first poll, and the first after a failure, asks for an answer at once: `open` then
    // says promptly that the server is reachable (and the backlog is in), instead of after a
    // whole wait on a quiet channel. Every poll after a success is held.
    const wait = this.#connected ? this.#options.wait : 0;
    // Ask for no more than the iterator's buffer can take, so the buffer stays bounded.
    const limit = Math.min(this.#limitCap ?? this.#options.limit, this.#queue?.free ?? Infinity);
    const startedAt = Date.now();
    let outcome: PollOutcome<T>;
    try {
      outcome = await this.#poll(wait, limit);
    } catch (error) {
      return this.#networkError('The poll failed', error);
    }
    if (this.#closed) return;
    if (outcome.kind === 'oversized') {
      // Fewer messages make a smaller answer: halve the limit and ask again at once.
      this.#limitCap = Math.max(1, Math.floor(limit / 2));
      if (limit > 1) return undefined;
      const message = `The answer for one message passed maxBodyBytes (${this.#options.maxBodyBytes} bytes)`;
      outcome = { kind: 'failure', message, status: 200, code: 'answer_too_large', fatal: false, retryAfter: undefined };
    } else if (outcome.kind === 'messages' && this.#repeats(outcome.messages, outcome.cursor)) {
      // Dropping the duplicates is right, but succeeding with them would let a server that
      // repeats itself have the client poll again at once, forever.
      const message = 'The server sent only messages already delivered, without moving the cursor';
      outcome = { kind: 'failure', message, status: 200, code: 'no_progress', fatal: false, retryAfter: undefined };
    }
    if (outcome.kind === 'failure') return this.#failed(outcome);
    this.#opened();
    if (this.#closed) return;
    if (outcome.kind === 'reset') return this.#resetTo(outcome.earliestCursor);
    this.#resetting = false;
    if (outcome.messages.length < limit) this.#limitCap = undefined;
    for (const message of outcome.messages) {
      if (this.#closed) return;
      this.#deliver(message);
    }
    if (this.#closed) return;
    // Only after the whole batch: if a listener closed the subscription mid-batch, resuming
    // from `cursor` repeats a few messages rather than skipping the rest of the batch. A timeout
    // without a readable cursor (a 204/304 whose header CORS hides) keeps the current one.
    if (outcome.cursor !== undefined) this.#moveCursor(outcome.cursor);
    if (outcome.timedOut) {
      // Short polling: an empty answer at once is what was asked for; the interval bounds the rate.
      if (this.#options.wait === 0) {
        this.#backoff.reset();
        return this.#options.backoff.initial;
      }
      // An empty answer far sooner than the wait asked for was not held (a server or proxy that
      // answers at once): a backoff step, not a success, or the client would poll in a tight
      // loop. Full jitter alone may draw a delay near 0, hence the floor.
      const early = Math.max(EARLY_ANSWER_MIN, Math.min(wait * EARLY_ANSWER_SHARE, EARLY_ANSWER_MAX));
      if (wait > 0 && Date.now() - startedAt < early) return Math.max(this.#backoff.next(), this.#options.backoff.initial);
    }
    this.#backoff.reset();
    return undefined;
  }

  /** Whether an answer with messages brings nothing: every message already delivered, the cursor where it was. */
  #repeats(messages: readonly Message<T>[], cursor: Cursor | undefined): boolean {
    if (messages.length === 0 || (cursor !== undefined && cursor !== this.#cursor)) return false;
    return messages.every((message) => this.#recent.has(message.id));
  }

  /** One request, bounded by its own deadline and by `close()`. */
  async #poll(wait: number, limit: number): Promise<PollOutcome<T>> {
    const { maxBodyBytes, timeoutMargin, headers } = this.#options;
    const query: [string, string][] = this.#cursor === undefined ? [] : [['cursor', this.#cursor]];
    query.push(['wait', String(Math.round(wait) / 1000)], ['limit', String(limit)]);
    const url = appendQuery(this.#url, query);
    // Read at call time, so a fetch installed after subscribe() (a polyfill, a test) is used.
    const fetcher = this.#options.fetch ?? globalThis.fetch;
    const deadline = requestDeadline(this.#stop.signal, wait + timeoutMargin);
    try {
      const response = await fetcher(url, {
        headers: { accept: 'application/json', ...toRecord(typeof headers === 'function' ? headers() : headers) },
        signal: deadline.signal,
        cache: 'no-store',
      });
      // The deadline bounded the wait for the headers; the body only has to keep coming.
      deadline.extend(timeoutMargin);
      const text = hasBody(response.status) ? await readText(response, maxBodyBytes, () => deadline.extend(timeoutMargin)) : '';
      return readAnswer<T>(response.status, response.headers, text, limit);
    } catch (error) {
      // The deadline's reason says more than the AbortError some fetch implementations throw.
      throw deadline.signal.aborted && !this.#stop.signal.aborted ? (deadline.signal.reason as unknown) : error;
    } finally {
      deadline.release();
    }
  }

  /**
   * One event stream, from connecting to its end; returns how long to wait before reconnecting.
   * It resumes with `Last-Event-ID` only, not `?cursor=` too: that is where the server looks
   * first and what every SSE server and proxy knows, the URL stays the same for every
   * reconnect, and one request never carries two positions that could disagree.
   */
  async #streamStep(): Promise<number | undefined> {
    const { idleTimeout, maxBodyBytes, headers, backoff } = this.#options;
    let openedAt: number | undefined;
    /** The stream's last event was a reset; a second one in a row stops the stream. */
    let afterReset = false;
    let stalled = false;
    let outcome: StreamOutcome;
    try {
      outcome = await readStream<T>(
        {
          url: this.#url,
          fetch: this.#options.fetch ?? globalThis.fetch,
          headers: toRecord(typeof headers === 'function' ? headers() : headers),
          cursor: this.#cursor,
          idleTimeout,
          maxEventBytes: maxBodyBytes,
          signal: this.#stop.signal,
        },
        {
          open: () => {
            openedAt = Date.now();
            this.#resetting = false;
            this.#opened();
          },
          message: (message, cursor) => {
            if (this.#closed) return;
            afterReset = false;
            this.#deliver(message);
            if (cursor !== undefined && !this.#closed) this.#moveCursor(cursor);
          },
          reset: (earliestCursor) => {
            if (this.#closed || stalled) return;
            // A reset right after a reset (no message between) means the server rejects its
            // own earliest cursor: each would make the app reload its state, as fast as the
            // server can write them. Stop, and back off as a poll does after two 410s.
            if (afterReset) stalled = true;
            else this.#applyReset(earliestCursor);
            afterReset = true;
          },
          cursor: (cursor) => {
            if (!this.#closed) this.#moveCursor(cursor);
          },
          retry: (ms) => (this.#retry = ms),
          room: () => (this.#queue && this.#queue.free <= 0 ? this.#queue.room() : undefined),
          closed: () => this.#closed || stalled,
        },
      );
    } catch (error) {
      // A stream that ran well before it broke starts the backoff afresh; one that breaks at
      // once, every time, climbs it.
      if (openedAt !== undefined && Date.now() - openedAt >= HEALTHY_STREAM) this.#backoff.reset();
      const idle = error instanceof DOMException && error.name === 'TimeoutError' && openedAt !== undefined;
      return this.#networkError('The stream failed', error, idle ? 'idle_timeout' : undefined);
    }
    if (this.#closed) return;
    if (stalled) {
      const message = 'The server sent a reset right after a reset, without a message between';
      outcome = { kind: 'failure', message, status: 200, code: 'no_progress', fatal: false, retryAfter: undefined };
    }
    if (outcome.kind === 'failure') return this.#failed(outcome);
    if (outcome.kind === 'reset') {
      this.#opened();
      return this.#closed ? undefined : this.#resetTo(outcome.earliestCursor);
    }
    // A normal end: the server's `retry:` (within backoff.max), but a stream that ends soon
    // after it opened, again and again, climbs the backoff, so no server makes a tight loop.
    const retry = Math.min(this.#retry ?? backoff.initial, backoff.max);
    if (openedAt !== undefined && Date.now() - openedAt >= HEALTHY_STREAM) {
      this.#backoff.reset();
      return retry;
    }
    return Math.min(Math.max(retry, this.#backoff.next(), backoff.initial), backoff.max);
  }

  /** A request that brought no answer (a network error, a deadline): retried after a backoff step. */
  #networkError(what: string, error: unknown, code?: string): number | undefined {
    if (this.#closed) return;
    this.#connected = false;
    const retryIn = this.#backoff.next();
    this.#events.emit('error', new SubscriptionError(`${what}: ${describe(error)}`, { code, fatal: false, retryIn, cause: error }));
    return retryIn;
  }

  /** An answer that is a failure: fatal, or retried after a backoff step or the server's `Retry-After`. */
  #failed(outcome: Extract<PollOutcome<T>, { kind: 'failure' }>): number | undefined {
    const { message, status, code, fatal, retryAfter } = outcome;
    if (fatal) {
      this.#fail(new SubscriptionError(message, { status, code, fatal }));
      return;
    }
    this.#connected = false;
    // A Retry-After is honoured, within bounds: never below the next backoff step (a `0` or a
    // past date must not make a retry loop), never above backoff.max.
    const step = this.#backoff.next();
    const retryIn = retryAfter === undefined ? step : Math.min(Math.max(retryAfter, step), this.#options.backoff.max);
    this.#events.emit('error', new SubscriptionError(message, { status, code, fatal, retryIn }));
    return retryIn;
  }

  /** The server answered: `open`, unless the last request succeeded too. */
  #opened(): void {
    if (this.#connected) return;
    this.#connected = true;
    this.#events.emit('open');
  }

  /** A 410: resume from `earliestCursor`; returns the delay before the next request. */
  #resetTo(earliestCursor: Cursor | undefined): number | undefined {
    const again = this.#resetting;
    this.#resetting = true;
    this.#applyReset(earliestCursor);
    // A reset right after a reset means the server rejects its own earliest cursor: back
    // off rather than ask again at network speed.
    return again ? this.#backoff.next() : undefined;
  }

  #applyReset(earliestCursor: Cursor | undefined): void {
    this.#cursor = earliestCursor;
    this.#events.emit('reset', { earliestCursor });
    if (earliestCursor !== undefined && !this.#closed) this.#events.emit('cursor', earliestCursor);
  }

  #moveCursor(cursor: Cursor): void {
    if (cursor === this.#cursor) return;
    this.#cursor = cursor;
    this.#events.emit('cursor', cursor);
  }

  #deliver(message: Message<T>): void {
    if (!this.#recent.add(message.id)) return;
    this.#events.emit('message', message);
    this.#queue?.push(message);
  }

  /** Stops buffering for an iterator that does not exist yet: an events user listens to `message`. */
  #stopBuffering(): void {
    // After a close, what the buffer holds (and a fatal error) still waits for a late iterator.
    if (this.#iterated || this.#closed || !this.#queue) return;
    this.#queue.discard(); // wakes a loop paused on the full buffer
    this.#queue = undefined;
  }

  #listenerThrew(error: unknown, event: keyof SubscriptionEvents<T>): void {
    const { reportError } = globalThis as { reportError?: (error: unknown) => void };
    if (typeof reportError === 'function') return reportError(error);
    // With no `error` listener to tell, the console is the last place it is not lost.
    if (event === 'error' || this.#closed || !this.#events.has('error')) {
      console.error(`A longpoll-kit Subscription ${String(event)} listener threw:`, error);
      return;
    }
    const message = `A ${String(event)} listener threw: ${describe(error)}`;
    this.#events.emit('error', new SubscriptionError(message, { code: 'listener_error', fatal: false, cause: error }));
  }

  #fail(error: SubscriptionError): void {
    if (this.#closed) return;
    this.#fatal = error;
    this.#events.emit('error', error);
    this.close();
  }
}

function toRecord(headers: HeadersInput | undefined): Record<string, string> {
  return headers === undefined ? {} : Object.fromEntries(new Headers(headers));
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    // undici's "fetch failed" hides the reason (ECONNREFUSED…) in `cause`.
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
    return `${error.message}${cause}`;
  }
  return String(error);
}
