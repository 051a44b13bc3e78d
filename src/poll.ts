import type { Cursor, JsonValue, Message } from './engine.js';
import type { ManyWaiter } from './waiter.js';

/** Options of {@link Broker.read}. */
export interface ReadOptions {
  /** Read after this cursor; without one, read everything retained. */
  cursor?: Cursor;
  /**
   * The most messages to return; values above 1000 are clamped to 1000.
   * @default 100
   */
  limit?: number;
  /**
   * Where a read without a cursor starts (for many channels: each channel the cursor does not
   * name): with everything retained (`'oldest'`), or after the newest message, so that only
   * what is published next is returned (`'newest'`; a poll then waits for it).
   * @default 'oldest'
   */
  firstMessage?: 'oldest' | 'newest';
}

/** Options of {@link Broker.poll}. */
export interface PollOptions extends ReadOptions {
  /**
   * How long to hold the poll when nothing is new, in milliseconds. `0` answers at once;
   * `Infinity` waits until a message, an abort or `close()`. The core has no maximum; the HTTP
   * adapters clamp.
   * @default 25_000
   */
  wait?: number;
  /** Aborting it rejects the poll with `signal.reason` and forgets the waiter at once. */
  signal?: AbortSignal;
}

/**
 * What {@link Broker.poll} and {@link Broker.read} resolve to. Polls woken by one publish with
 * equal cursors receive the very same frozen object.
 */
export interface PollResult<T = JsonValue> {
  /** Messages after the cursor, oldest first, at most `limit`. */
  readonly messages: readonly Message<T>[];
  /** Pass it to the next poll: it continues just after the last message returned. */
  readonly cursor: Cursor;
  /** `true` when the wait ran out with nothing new; always `false` from `read`. */
  readonly timedOut: boolean;
}

/*
 * Everything below is the seam between the broker and the HTTP layer. It is internal: the
 * package's entry points do not export it, and `Broker[startPoll]` is keyed by a symbol that
 * only this file declares.
 */

/**
 * The broker's entry point for a poll that answers a {@link PollTicket} instead of a promise.
 * `Broker.poll` goes through it too, so there is one path whatever a subclass overrides.
 *
 * @internal
 */
export const startPoll: unique symbol = Symbol('longpoll-kit.startPoll');

/**
 * The channels of a many-channel poll, checked, and the position the composite cursor gives each,
 * by index (`undefined`: everything retained, or with `firstMessage: 'newest'` the channel's
 * end). Made once per request (`Broker[selectMany]`, or `selectionOf` in read-many.ts) and handed
 * to `Broker[startPoll]`, so that the cursor is decoded once. The positions are the poll's own:
 * the broker moves them as it reads.
 *
 * @internal
 */
export class Selection {
  constructor(
    readonly channels: readonly string[],
    readonly cursors: (Cursor | undefined)[],
    /** The parked poll the cursor is the answer of, which the poll may take over. */
    readonly parked?: ManyWaiter<unknown>,
  ) {}
}

/**
 * The broker's check of a many-channel request's channels and composite cursor, which returns
 * the {@link Selection} to poll with: what `Broker.checkCursor` does, with its result kept.
 *
 * @internal
 */
export const selectMany: unique symbol = Symbol('longpoll-kit.selectMany');

/** What this module uses of Node's `Buffer`, which other runtimes may lack. */
interface BufferClass {
  from(text: string, encoding: 'utf8'): Uint8Array<ArrayBuffer>;
  allocUnsafe(size: number): Uint8Array<ArrayBuffer>;
}
const NodeBuffer = (globalThis as { Buffer?: BufferClass }).Buffer;
const utf8 = new TextEncoder();
/**
 * UTF-8 bytes of `text`: `Buffer.from` where there is one, which takes small buffers from a shared
 * pool instead of allocating each (bench/micro/answer-bytes.js), `TextEncoder` elsewhere.
 */
export const encode: (text: string) => Uint8Array<ArrayBuffer> =
  NodeBuffer === undefined ? (text) => utf8.encode(text) : (text) => NodeBuffer.from(text, 'utf8');

/**
 * `size` bytes to fill: a `Buffer` where there is one, which a Node socket writes as it is (a
 * plain `Uint8Array` it wraps in a new `Buffer` on every write).
 */
export const bytes: (size: number) => Uint8Array<ArrayBuffer> =
  NodeBuffer === undefined ? (size) => new Uint8Array(size) : (size) => NodeBuffer.allocUnsafe(size);

/**
 * A poll's result as the broker hands it over, carrying what the HTTP layer writes: the JSON
 * text of the result and its UTF-8 bytes, each made at most once however many polls the answer
 * goes to (a fanout answers thousands of polls with one `Answer`; bench/micro/answer-bytes.js).
 *
 * @internal
 */
export class Answer<T = JsonValue> {
  #text: string | undefined;
  #bytes: Uint8Array<ArrayBuffer> | undefined;

  /**
   * @param result - the frozen result
   * @param messagesJson - `JSON.stringify(result.messages)`, when the engine kept the text of
   *   the messages (`Batch.json`), so that no answer serialises a payload again
   * @param cursors - where the engine said (`Batch.cursors`): the cursor of the message's
   *   channel just after each message; an answer over many channels has them per channel
   * @param texts - where {@link messageTexts} keeps its texts: answers made from one read share
   *   it, so that each message is serialised once however many answers it goes to
   */
  constructor(
    readonly result: PollResult<T>,
    readonly messagesJson: string | undefined,
    readonly cursors?: readonly (Cursor | undefined)[],
    readonly texts: MessageTexts = {},
  ) {}

  /** `JSON.stringify` of each message, made once per read (see the constructor's `texts`). */
  messageTexts(): readonly string[] {
    this.texts.list ??= this.result.messages.map((message) => JSON.stringify(message));
    return this.texts.list;
  }

  /**
   * The answer as Server-Sent Events, made by the first event stream that writes a
   * single-channel answer and shared by every stream it goes to (see `src/http/sse.ts`).
   */
  events: Uint8Array<ArrayBuffer> | undefined = undefined;

  /** `JSON.stringify(result)`, assembled from the engine's text when there is one. */
  get text(): string {
    if (this.#text === undefined) {
      const { result, messagesJson } = this;
      this.#text =
        messagesJson === undefined
          ? JSON.stringify(result)
          : `{"messages":${messagesJson},"cursor":${JSON.stringify(result.cursor)},"timedOut":${result.timedOut}}`;
    }
    return this.#text;
  }

  /** {@link text} as UTF-8. */
  get bytes(): Uint8Array<ArrayBuffer> {
    this.#bytes ??= encode(this.text);
    return this.#bytes;
  }
}

/** The JSON text of each message of a read, shared by the answers made from it. @internal */
export interface MessageTexts {
  list?: readonly string[];
}

/** A frozen timeout result and its answer. */
export function timedOut<T>(cursor: Cursor): Answer<T> {
  return new Answer<T>(Object.freeze({ messages: [], cursor, timedOut: true }), '[]');
}

/** What a {@link PollTicket} can cancel once the broker holds its poll. @internal */
export interface HeldPoll {
  /** Forgets the held poll and rejects its ticket with `reason`; nothing if already answered. */
  fail(reason: unknown): void;
  /** Forgets the held poll without a word to its ticket; nothing if already answered. */
  release(): void;
  /** Answers the held poll now, as if its wait had run out; nothing if already answered. */
  expire(): void;
}

/**
 * Who gets one poll's answer: the promise of `Broker.poll`, or an HTTP exchange. The broker calls
 * exactly one of `resolve` and `reject`, once; neither may throw. Whoever owns the ticket calls
 * {@link cancel} when the answer is no longer wanted (an abort signal, a closed connection).
 *
 * @internal
 */
export abstract class PollTicket<T = JsonValue> {
  /** The broker's held poll, while it holds one. */
  held: HeldPoll | undefined = undefined;
  /** Set by {@link cancel}: the broker checks it after every read, before it holds the poll. */
  cancelled: { readonly reason: unknown } | undefined = undefined;
  /**
   * Set by {@link expire} while the poll is not held yet (still reading, or not started): the
   * broker then answers it as a timeout after its read instead of holding it.
   */
  expired = false;

  /**
   * Whether the broker may leave the poll held after an answer, at the answer's cursor and with
   * its wait started over, instead of taking it off: a ticket that takes answer after answer (an
   * event stream on one channel) and releases the poll itself (`held.release()`) when it wants
   * no more.
   */
  get keeps(): boolean {
    return false;
  }

  /** The poll's answer. */
  abstract resolve(answer: Answer<T>): void;

  /** Why the poll failed. */
  abstract reject(error: unknown): void;

  /** Throws the reason it was cancelled for, if it was. */
  throwIfCancelled(): void {
    if (this.cancelled) throw this.cancelled.reason;
  }

  /** The answer is no longer wanted: a held poll is forgotten at once and rejected with `reason`. */
  cancel(reason: unknown): void {
    if (this.cancelled) return;
    this.cancelled = { reason };
    this.held?.fail(reason);
  }

  /**
   * Answers the poll now as a timeout (its cursor resumes exactly) if the broker holds it, or
   * as soon as its read finds nothing new if it does not hold it yet.
   */
  expire(): void {
    if (this.held) this.held.expire();
    else this.expired = true;
  }
}
