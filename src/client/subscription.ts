import type { Cursor, JsonValue, Message } from '../engine.js';
import { hasBody, readAnswer, type PollOutcome } from './answer.js';
import { Backoff } from './backoff.js';
import { requestDeadline } from './deadline.js';
import { Emitter } from './emitter.js';
import { MessageQueue } from './message-queue.js';
import { resolveOptions, type ResolvedOptions, type SubscribeOptions } from './options.js';
import { RecentIds } from './recent-ids.js';
import { SubscriptionError } from './subscription-error.js';

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
  /** The subscription closed: by `close()`, its signal, leaving a `for await` loop, or a fatal error. */
  close: () => void;
}

/** Messages delivered recently enough to be recognised if they come again. */
const RECENT_IDS = 1000;

/** Waits `ms`, or less if `signal` aborts; never rejects. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
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
 * A live subscription to one channel: listen with {@link Subscription.on}, or read it with
 * `for await`. Created by {@link subscribe}, which starts polling at once.
 *
 * @typeParam T - the messages' `data`
 */
export class Subscription<T = JsonValue> implements AsyncIterable<Message<T>> {
  readonly #url: URL;
  readonly #options: ResolvedOptions;
  readonly #events = new Emitter<SubscriptionEvents<T>>();
  readonly #stop = new AbortController();
  readonly #recent = new RecentIds(RECENT_IDS);
  readonly #backoff: Backoff;
  #cursor: Cursor | undefined;
  #queue: MessageQueue<Message<T>> | undefined;
  /** Whether the last request succeeded; until one does, polls do not wait (see #poll). */
  #connected = false;
  /** Whether the last answer was a reset (410). */
  #resetting = false;
  #closed = false;
  #fatal: SubscriptionError | undefined;

  /** @internal Use {@link subscribe}. */
  constructor(url: string | URL, options: SubscribeOptions = {}) {
    this.#options = resolveOptions(options);
    // A relative URL is resolved against the page in a browser; in Node it must be absolute.
    this.#url = new URL(url, (globalThis as { location?: { href: string } }).location?.href);
    this.#cursor = this.#options.cursor;
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
   * The cursor just after the last message delivered (or the one the subscription started
   * from): keep it to resume later with `subscribe(url, { cursor })`.
   */
  get cursor(): Cursor | undefined {
    return this.#cursor;
  }

  /** Whether the subscription is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Calls `listener` on every `event`. */
  on<E extends keyof SubscriptionEvents<T>>(event: E, listener: SubscriptionEvents<T>[E]): this {
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
   * Reads the messages in order, from the moment it is called (call it right after
   * `subscribe`, as `for await` does). Leaving the loop closes the subscription; a fatal error
   * is thrown from the loop after the buffered messages. While `bufferSize` messages wait for
   * the reader, polling pauses. A subscription can be iterated once.
   */
  [Symbol.asyncIterator](): AsyncIterator<Message<T>, undefined> {
    if (this.#queue) throw new TypeError('A Subscription can be iterated only once');
    const queue = (this.#queue = new MessageQueue<Message<T>>(this.#options.bufferSize));
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
      let outcome: PollOutcome<T>;
      try {
        outcome = await this.#poll();
      } catch (error) {
        if (this.#closed) return;
        this.#connected = false;
        const retryIn = this.#backoff.next();
        this.#events.emit('error', new SubscriptionError(`The poll failed: ${describe(error)}`, { fatal: false, retryIn, cause: error }));
        await sleep(retryIn, this.#stop.signal);
        continue;
      }
      if (this.#closed) return;
      if (outcome.kind === 'failure') {
        const { message, status, code, fatal, retryAfter } = outcome;
        if (fatal) return this.#fail(new SubscriptionError(message, { status, code, fatal }));
        this.#connected = false;
        const retryIn = retryAfter ?? this.#backoff.next();
        this.#events.emit('error', new SubscriptionError(message, { status, code, fatal, retryIn }));
        await sleep(retryIn, this.#stop.signal);
        continue;
      }
      if (!this.#connected) {
        this.#connected = true;
        this.#events.emit('open');
      }
      if (outcome.kind === 'reset') {
        const again = this.#resetting;
        this.#resetting = true;
        this.#cursor = outcome.earliestCursor;
        this.#events.emit('reset', { earliestCursor: outcome.earliestCursor });
        // A reset right after a reset means the server rejects its own earliest cursor: back
        // off rather than ask again at network speed.
        if (again) await sleep(this.#backoff.next(), this.#stop.signal);
        continue;
      }
      this.#resetting = false;
      this.#backoff.reset();
      for (const message of outcome.messages) {
        if (this.#closed) return;
        this.#deliver(message);
      }
      // Only after the whole batch: if a listener closed the subscription mid-batch, resuming
      // from `cursor` repeats a few messages rather than skipping the rest of the batch.
      this.#cursor = outcome.cursor;
    }
  }

  /** One request, bounded by its own deadline and by `close()`. */
  async #poll(): Promise<PollOutcome<T>> {
    const { limit, timeoutMargin, headers } = this.#options;
    // The first poll, and the first after a failure, asks for an answer at once: `open` then
    // says promptly that the server is reachable (and the backlog is in), instead of after a
    // whole wait on a quiet channel. Every poll after a success is held.
    const wait = this.#connected ? this.#options.wait : 0;
    const url = new URL(this.#url);
    if (this.#cursor !== undefined) url.searchParams.set('cursor', this.#cursor);
    url.searchParams.set('wait', String(Math.round(wait) / 1000));
    // Ask for no more than the iterator's buffer can take, so the buffer stays bounded.
    url.searchParams.set('limit', String(Math.min(limit, this.#queue?.free ?? limit)));
    // Read at call time, so a fetch installed after subscribe() (a polyfill, a test) is used.
    const fetcher = this.#options.fetch ?? globalThis.fetch;
    const deadline = requestDeadline(this.#stop.signal, wait + timeoutMargin);
    try {
      const response = await fetcher(url.href, {
        headers: { accept: 'application/json', ...toRecord(typeof headers === 'function' ? headers() : headers) },
        signal: deadline.signal,
        cache: 'no-store',
      });
      const text = hasBody(response.status) ? await response.text() : '';
      return readAnswer<T>(response.status, response.headers, text);
    } catch (error) {
      // The deadline's reason says more than the AbortError some fetch implementations throw.
      throw deadline.signal.aborted && !this.#stop.signal.aborted ? (deadline.signal.reason as unknown) : error;
    } finally {
      deadline.release();
    }
  }

  #deliver(message: Message<T>): void {
    if (!this.#recent.add(message.id)) return;
    this.#events.emit('message', message);
    this.#queue?.push(message);
  }

  #fail(error: SubscriptionError): void {
    if (this.#closed) return;
    this.#fatal = error;
    this.#events.emit('error', error);
    this.close();
  }
}

function toRecord(headers: HeadersInit | undefined): Record<string, string> {
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
