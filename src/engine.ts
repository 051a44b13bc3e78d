/** Any value `JSON.parse` can return. Message payloads are JSON values. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/**
 * A message as subscribers receive it.
 *
 * `data` is what `JSON.parse(JSON.stringify(published))` gives, on every engine: the history
 * holds a copy, so changing the published object afterwards changes nothing.
 */
export interface Message<T = JsonValue> {
  /** A ULID, monotonic within a process: ids sort in publish order. */
  readonly id: string;
  /** The channel it was published on. */
  readonly channel: string;
  /**
   * The payload. From a Broker it is deeply frozen: every subscriber of the channel shares it,
   * so changing it throws (in strict code) rather than changing what the others receive.
   */
  readonly data: T;
  /** When it was published, as an ISO-8601 string. */
  readonly publishedAt: string;
}

/** What `publish` returns: the stored message and the cursor just after it. */
export interface PublishedMessage<T = JsonValue> extends Message<T> {
  /** A cursor positioned just after this message. */
  readonly cursor: string;
}

/**
 * An opaque, URL-safe position in one channel's history, including the history's epoch.
 * Pass back exactly what the library gave you; a cursor belongs to the channel that issued it.
 */
export type Cursor = string;

/** A slice of a channel's history, as an engine reads it. */
export interface Batch<T = JsonValue> {
  /** Up to `limit` messages after the cursor, oldest first. */
  readonly messages: readonly Message<T>[];
  /** Where the next read continues: just after the last message returned. */
  readonly cursor: Cursor;
  /**
   * Optional: `messages` as JSON text (an array equal to `JSON.stringify(messages)`), for
   * engines that keep each message's text anyway. The HTTP adapters then answer with it instead
   * of serialising the messages again.
   */
  readonly json?: string;
  /**
   * Optional: the cursor just after each message, `cursors[i]` after `messages[i]` (the last one
   * may differ from `cursor`, which can move past positions other channels used). A Server-Sent
   * Events stream sends each as the message's `id:`, so that a reconnect resumes after the
   * last message the client received. Without it, only a batch's last message carries an id,
   * and a client cut inside a batch gets the batch's earlier messages again.
   */
  readonly cursors?: readonly Cursor[];
  /**
   * Optional, on a read from `undefined` that returns messages: the cursor just before the first
   * of them, which is where that read started. A read from it returns the same messages, or
   * `cursor_expired` once the first has left the history. A many-channel read whose limit went
   * to other channels names such a channel at it, so that its oldest message cannot leave
   * unnoticed before the next read. Given with the read, it describes the same history as the
   * messages: a separate call could not tell whether the oldest left in between.
   */
  readonly before?: Cursor;
}

/**
 * Why messages left a channel's history: pushed out by the channel's `capacity`, older than
 * `maxAge`, or the oldest of all channels when the history went past MemoryEngine's `maxBytes`.
 */
export type EvictReason = 'capacity' | 'maxAge' | 'bytes';

/** How an engine tells its broker what happened. */
export interface EngineListener {
  /**
   * New messages were appended to `channel`, by this instance or another. Called once the
   * messages are readable: a read that starts inside this call sees them.
   */
  appended(channel: string): void;
  /** Notifications may have been lost (a reconnect, say): every channel with waiters must be read again. */
  resync(): void;
  /** `count` messages left `channel`'s history. */
  evicted(channel: string, count: number, reason: EvictReason): void;
  /**
   * Optional: something failed outside any caller's operation (the connection that brings other
   * instances' wake-ups dropped, say). Engines report each outage once; the broker emits it as
   * its `error` event when someone listens, and otherwise ignores it.
   */
  error?(error: Error): void;
}

/** What an engine holds right now. */
export interface EngineStats {
  /** Channels that hold at least one message. */
  readonly channels: number;
  /** Messages held over all channels. */
  readonly messages: number;
}

/**
 * Where history lives and how instances wake each other. An engine stores messages, assigns
 * ids and cursors, and tells its one broker when a channel got new messages. It knows nothing
 * of waiters. Every engine passes the same contract suite.
 *
 * Engines throw {@link LongPollError} with `invalid_cursor` for a cursor that is not theirs to
 * read and `cursor_expired` (with `earliestCursor`) when they cannot prove that nothing after
 * the cursor was lost.
 */
export interface Engine {
  /** Called once by the broker that uses this engine, before any other call. */
  attach(listener: EngineListener): void | Promise<void>;
  /**
   * Stores `json` (a serialised JSON value) at the end of `channel` and notifies. The broker
   * also passes `value`, `JSON.parse(json)` deeply frozen, for engines that keep payloads in
   * this process: they can store it instead of parsing `json` again.
   *
   * Ordering the broker relies on: an engine that has {@link readNow} calls
   * `listener.appended(channel)` synchronously inside `append`, before it returns its promise
   * (the broker then answers held polls within the publish and reports their `deliver` events
   * after its `publish` event; an `await` before the notification would report them first). An
   * engine without `readNow` may notify later, from wherever its wake-ups come from. The
   * contract suite checks both.
   */
  append(channel: string, json: string, value?: JsonValue): Promise<PublishedMessage>;
  /** Reads up to `limit` messages after `cursor`, or everything retained when it is undefined. */
  read(channel: string, cursor: Cursor | undefined, limit: number): Promise<Batch>;
  /**
   * The same as `read`, synchronously, for engines whose history is in this process. When it
   * exists, the broker uses it to answer held polls within the publish that woke them (see
   * {@link append} for the order this requires). It must return what `read` would. Optional.
   */
  readNow?(channel: string, cursor: Cursor | undefined, limit: number): Batch;
  /**
   * Throws {@link LongPollError} `invalid_cursor` when `cursor` cannot be one of `channel`'s
   * cursors (its syntax, or another channel's), synchronously and without I/O, so that the
   * HTTP layer refuses it before it takes a lease. Whether the cursor is still retained is
   * `read`'s question. Optional: without it, `read` is the only check.
   */
  checkCursor?(channel: string, cursor: Cursor): void;
  /**
   * Optional: the cursor just after `channel`'s newest message (for a channel without messages,
   * one like `read` of it would return), so that a read from it gets only what comes next. Like
   * `read`, it stores nothing for a channel that has no history. Used for
   * `firstMessage: 'newest'`; without it, the broker reads the channel to its end.
   */
  tail?(channel: string): Promise<Cursor>;
  /** Whether `channel` holds messages now (used to count channels without double counting). */
  retains(channel: string): boolean;
  /** What the engine holds right now. */
  stats(): EngineStats;
  /** Releases timers and connections. */
  close(): Promise<void>;
}
