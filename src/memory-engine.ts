import { Buffer } from 'node:buffer';
import { monotonicFactory, ulid } from 'ulid';
import type { Batch, Cursor, Engine, EngineListener, EngineStats, JsonValue, Message, PublishedMessage } from './engine.js';
import { hashOf, tagOf } from './channel-tag.js';
import { LongPollError } from './errors.js';
import { checkOption } from './option-check.js';
import { parseFrozen } from './json.js';
import { RingBuffer, type Positioned } from './ring-buffer.js';

/** Options of {@link MemoryEngine}. */
export interface MemoryEngineOptions {
  /**
   * Messages kept per channel; the oldest go first.
   * @default 1000
   */
  capacity?: number;
  /**
   * How long a message is kept, in milliseconds. `Infinity` keeps messages until `capacity`
   * pushes them out.
   * @default 300_000
   */
  maxAge?: number;
  /**
   * Bytes of history kept over all channels together. Past it, the oldest messages of all
   * channels go first (an `evict` event with reason `'bytes'`), and a cursor behind them gets
   * `cursor_expired`. A message that would count more than a tenth of `maxBytes` is refused
   * with `payload_too_large`.
   *
   * A message counts the UTF-8 length of its JSON text (what HTTP answers send), plus its
   * payload's JSON length once more (the engine also keeps the payload as a value for `read` and
   * `poll`), plus 600 bytes for its id, timestamp and bookkeeping; a channel counts 550 bytes
   * plus twice its name while it holds messages. The counts are close to what V8 holds for
   * payloads of strings; payloads of many small numbers or keys cost more than their text.
   * @default 268_435_456 (256 MiB)
   * @example
   * ```ts
   * const engine = new MemoryEngine({ maxBytes: 64 * 1024 * 1024 });
   * ```
   */
  maxBytes?: number;
}

/** What {@link MemoryEngine.stats} reports. */
export interface MemoryEngineStats extends EngineStats {
  /** What the history counts against `maxBytes` (see {@link MemoryEngineOptions.maxBytes}). */
  readonly bytes: number;
}

interface Entry extends Positioned {
  readonly message: Message;
  /** `JSON.stringify(message)`, made from the published text: answers are built from it. */
  readonly text: string;
  readonly expiresAt: number;
  /** What it counts against `maxBytes`. */
  readonly bytes: number;
}

interface History {
  readonly channel: string;
  readonly ring: RingBuffer<Entry>;
  readonly tag: string;
  /** The channel's name as JSON, for the text of its messages. */
  readonly name: string;
  /** The UTF-8 length of `name`. */
  readonly nameBytes: number;
  /** What the channel counts against `maxBytes` besides its messages. */
  readonly bytes: number;
  /** The highest position that left this channel: a cursor before it may have missed messages. */
  evictedThrough: number;
  /** The cursor made last for this channel (see `MemoryEngine#cursor`). */
  made: MadeCursor;
}

/** A cursor and what it was made of. */
interface MadeCursor {
  readonly tag: string;
  readonly position: number;
  readonly cursor: Cursor;
  /** The read that finds nothing after `cursor`, shared by every such read (frozen). */
  readonly nothing: Batch;
}

const NO_MESSAGES: readonly Message[] = Object.freeze([]);

/** No cursor made yet. */
const NONE_MADE: MadeCursor = { tag: '', position: -1, cursor: '', nothing: Object.freeze({ messages: NO_MESSAGES, cursor: '' }) };

/** One message in publish order over all channels: {@link MemoryEngine}'s list of what goes first. */
interface Published extends Positioned {
  readonly history: History;
}

/**
 * What a message counts against `maxBytes` beyond its text and its payload: measured with V8 for
 * payloads of a few bytes, these are the frozen message object, its id and timestamp strings, the
 * pieces its text is joined from, its entry and its slots in the channel's ring and the
 * publish-order list.
 */
const MESSAGE_OVERHEAD = 600;
/**
 * What a channel counts beyond its messages and its name: its history, ring and map entry, and
 * its last cursor made with the frozen batch of a read that finds nothing after it (measured
 * likewise: test/memory-engine-heap.test.ts, 20,000 channels of one small message).
 */
const CHANNEL_OVERHEAD = 550;
/** The UTF-8 length of a message's text less its channel name and payload: the keys, id and timestamp. */
const TEXT_FRAME = '{"id":"","channel":,"data":,"publishedAt":""}'.length + 26 + 24;
/** Stale entries of the publish-order list tolerated beyond the messages held, before it is compacted. */
const STALE_SLACK = 1024;

const randomPool = new Uint8Array(512);
let randomNext = randomPool.length;
/**
 * Random bytes for ids, drawn from a pool. ulid's default asks `crypto.getRandomValues` for one
 * byte per character, 16 calls per id in a new millisecond (bench/micro/pooled-random.js).
 *
 * @internal Exported for its micro-benchmark.
 */
export function pooledRandom(): number {
  if (randomNext === randomPool.length) {
    globalThis.crypto.getRandomValues(randomPool);
    randomNext = 0;
  }
  return randomPool[randomNext++]! / 256;
}

let isoSecond = Number.NaN;
let isoPrefix = '';
/**
 * `new Date(now).toISOString()`, with the part up to the second made once per second: publishes
 * that come close together share their second (bench/micro/iso-string.js).
 *
 * @internal Exported for its micro-benchmark.
 */
export function isoStringOf(now: number): string {
  const second = Math.floor(now / 1000);
  if (second !== isoSecond) {
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20); // 'YYYY-MM-DDTHH:mm:ss.'
    isoSecond = second;
  }
  const millis = now - second * 1000;
  return `${isoPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

/** Tombstone buckets: how far each group of dropped channels had got (see `#floors`). */
const BUCKETS = 1024;
const CURSOR = /^([0-9A-HJKMNP-TV-Z]{10})\.([0-9a-z]{1,7})\.([0-9a-z]{1,11})$/;
/** `.`, the separator of a cursor's parts. */
const DOT = 46;

function assertOption(valid: boolean, name: string, value: unknown, expected: string): void {
  checkOption(valid, 'MemoryEngine', name, value, expected);
}

/**
 * The embedded engine: one ring buffer per channel, bounded by `capacity` and `maxAge`.
 *
 * Positions come from one sequence per engine, so a cursor stays meaningful when its channel is
 * dropped (idle) and created again. Each engine has a random epoch: a cursor from another
 * engine, such as the one before a restart, gives `cursor_expired`. A cursor also carries a
 * short tag of its channel's name, so a cursor used on another channel is `invalid_cursor`.
 *
 * When a channel with messages is dropped, the engine remembers how far it got in one of 1,024
 * buckets (by hash of the name), so a client that comes back with an older cursor for that
 * channel gets `cursor_expired` instead of silently missing what expired. Memory stays bounded;
 * the price is an occasional false `cursor_expired` for a cursor older than a dropped channel of
 * the same bucket, which the client answers by rehydrating.
 *
 * Expired messages go lazily on every read and append, and by one unref'd sweep timer that runs
 * only while the engine holds messages.
 */
export class MemoryEngine implements Engine {
  /** Messages kept per channel. */
  readonly capacity: number;
  /** How long a message is kept, in milliseconds. */
  readonly maxAge: number;
  /** Bytes of history kept over all channels together (see {@link MemoryEngineOptions.maxBytes}). */
  readonly maxBytes: number;
  /** This engine's epoch, part of every cursor it issues. */
  readonly epoch: string = ulid().slice(10, 20);

  #sequence = 0;
  #messages = 0;
  #bytes = 0;
  readonly #channels = new Map<string, History>();
  /**
   * Every message held, in publish order over all channels, so the oldest of all is found
   * without a look at every channel. Positions come from one sequence, so this order is also
   * oldest first. Messages that left by `capacity` or `maxAge` stay here, stale, until they
   * reach the front or the list is compacted.
   */
  readonly #order = new RingBuffer<Published>(Number.POSITIVE_INFINITY);
  readonly #floors = new Float64Array(BUCKETS);
  readonly #nextId = monotonicFactory(pooledRandom);
  #listener: EngineListener | undefined;
  /** The cursor made last for a channel without history. */
  #lastCursor: MadeCursor = NONE_MADE;
  #sweeper: ReturnType<typeof setInterval> | undefined;

  /**
   * @example
   * ```ts
   * const broker = new Broker({ engine: new MemoryEngine({ capacity: 100, maxAge: 60_000, maxBytes: 64 * 1024 * 1024 }) });
   * ```
   */
  constructor(options: MemoryEngineOptions = {}) {
    const { capacity = 1000, maxAge = 300_000, maxBytes = 268_435_456 } = options;
    assertOption(Number.isSafeInteger(capacity) && capacity > 0, 'capacity', capacity, 'a positive integer');
    assertOption(typeof maxAge === 'number' && maxAge > 0, 'maxAge', maxAge, 'a positive number of milliseconds');
    assertOption(Number.isSafeInteger(maxBytes) && maxBytes > 0, 'maxBytes', maxBytes, 'a positive integer');
    this.capacity = capacity;
    this.maxAge = maxAge;
    this.maxBytes = maxBytes;
  }

  /** {@inheritDoc Engine.attach} */
  attach(listener: EngineListener): void {
    if (this.#listener) throw new LongPollError('invalid_option', 'This engine already serves a broker');
    this.#listener = listener;
  }

  /**
   * Stores `json` at the end of `channel` and wakes its broker's polls. `value` is the broker's
   * frozen copy of the payload; without it, `json` is parsed and frozen here.
   *
   * Each message is kept twice, as a frozen value for `read` and `poll` and as JSON text for
   * HTTP answers (`Batch.json`), so that no answer serialises it again: a message costs about
   * its JSON size more memory than the value alone, and counts so against `maxBytes`.
   *
   * @throws {@link LongPollError} `payload_too_large` when the message would count more than a
   *   tenth of `maxBytes`; nothing is stored then
   */
  async append(channel: string, json: string, value?: JsonValue): Promise<PublishedMessage> {
    const now = Date.now();
    const stale = this.#channels.get(channel);
    if (stale) this.#expire(channel, stale, now);
    let history = this.#channels.get(channel);
    const name = history ? history.name : JSON.stringify(channel);
    const nameBytes = history ? history.nameBytes : Buffer.byteLength(name);
    const jsonBytes = Buffer.byteLength(json);
    const bytes = TEXT_FRAME + nameBytes + 2 * jsonBytes + MESSAGE_OVERHEAD;
    if (bytes > this.maxBytes / 10) {
      throw new LongPollError(
        'payload_too_large',
        `The message would take ${bytes} bytes of history, more than a tenth of maxBytes (${this.maxBytes})`,
      );
    }
    if (!history) {
      const hash = hashOf(channel);
      history = {
        channel,
        ring: new RingBuffer(this.capacity),
        tag: hash.toString(36),
        name,
        nameBytes,
        // The map's key and the JSON name: two copies of the name.
        bytes: CHANNEL_OVERHEAD + 2 * nameBytes,
        evictedThrough: this.#floors[hash % BUCKETS]!,
        made: NONE_MADE,
      };
      this.#channels.set(channel, history);
      this.#bytes += history.bytes;
      this.#startSweeper();
    }
    const position = ++this.#sequence;
    const id = this.#nextId(now);
    const publishedAt = isoStringOf(now);
    const message: Message = Object.freeze({ id, channel, data: value ?? parseFrozen(json), publishedAt });
    // The same keys in the same order as the message: what JSON.stringify(message) gives.
    const text = `{"id":"${id}","channel":${name},"data":${json},"publishedAt":"${publishedAt}"}`;
    const dropped = history.ring.push({ position, message, text, expiresAt: now + this.maxAge, bytes });
    this.#order.push({ position, history });
    this.#bytes += bytes;
    if (dropped) {
      history.evictedThrough = dropped.position;
      this.#bytes -= dropped.bytes;
    } else {
      this.#messages++;
    }
    const evicted = this.#bytes > this.maxBytes ? this.#evictOldest() : undefined;
    if (this.#order.length > 2 * this.#messages + STALE_SLACK) this.#compactOrder();
    // Wake the waiters first: whatever a listener of `evicted` does cannot cost a wake-up.
    this.#listener?.appended(channel);
    if (dropped) this.#listener?.evicted(channel, 1, 'capacity');
    if (evicted) for (const [from, count] of evicted) this.#listener?.evicted(from, count, 'bytes');
    return { id, channel, data: message.data, publishedAt, cursor: this.#cursor(history.tag, position, history) };
  }

  /**
   * Drops the oldest messages of all channels until the history is within `maxBytes` again,
   * never the message just appended, and returns how many went from each channel.
   */
  #evictOldest(): Map<string, number> {
    const evicted = new Map<string, number>();
    const order = this.#order;
    while (this.#bytes > this.maxBytes && order.length > 0) {
      const { position, history } = order.first()!;
      const oldest = history.ring.first();
      // Every message held is in the list, so the front one, if still held, is its channel's
      // first; otherwise it already left by capacity or maxAge.
      if (oldest?.position !== position) {
        order.shift();
        continue;
      }
      if (position === this.#sequence) break;
      order.shift();
      history.ring.shift();
      history.evictedThrough = position;
      this.#messages--;
      this.#bytes -= oldest.bytes;
      evicted.set(history.channel, (evicted.get(history.channel) ?? 0) + 1);
      if (history.ring.length === 0) this.#drop(history.channel, history);
    }
    return evicted;
  }

  /** Removes the list's entries of messages that left by capacity or maxAge. */
  #compactOrder(): void {
    this.#order.retain(({ position, history }) => history.ring.length > 0 && position >= history.ring.first()!.position);
  }

  /** {@inheritDoc Engine.read} */
  async read(channel: string, cursor: Cursor | undefined, limit: number): Promise<Batch> {
    return this.readNow(channel, cursor, limit);
  }

  /** {@inheritDoc Engine.readNow} */
  readNow(channel: string, cursor: Cursor | undefined, limit: number): Batch {
    const stale = this.#channels.get(channel);
    if (stale) this.#expire(channel, stale, Date.now());
    const live = this.#channels.get(channel);
    const hash = live ? 0 : hashOf(channel);
    const tag = live ? live.tag : hash.toString(36);
    const floor = live ? live.evictedThrough : this.#floors[hash % BUCKETS]!;
    const after = cursor === undefined ? floor : this.#positionOf(cursor, tag, floor, live);
    if (!live) return this.#made(tag, this.#sequence).nothing;

    const { ring } = live;
    const start = ring.indexAfter(after);
    if (start === ring.length) return this.#made(tag, this.#sequence, live).nothing;
    const end = Math.min(ring.length, start + limit);
    // Read to the end: the cursor may move past other channels' positions too.
    const next = end === ring.length ? this.#sequence : ring.at(end - 1)!.position;
    // Nothing of the batch is kept: a copy of the last answer per channel would be as large as
    // the channel's messages. Polls woken together with equal cursors share one read anyway.
    // Frozen: every reader of this batch shares the array.
    const entries = ring.slice(start, end);
    const messages: Message[] = new Array<Message>(entries.length);
    const cursors: Cursor[] = new Array<Cursor>(entries.length);
    const prefix = `${this.epoch}.${tag}.`;
    let json = '[';
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      messages[i] = entry.message;
      cursors[i] = prefix + entry.position.toString(36);
      json += i === 0 ? entry.text : `,${entry.text}`;
    }
    // Read from everything retained, it started at the floor (Batch.before). Not made with
    // #cursor, whose one remembered cursor is the one held polls wait at.
    const before = cursor === undefined ? prefix + after.toString(36) : undefined;
    return { messages: Object.freeze(messages), cursor: this.#cursor(tag, next, live), json: `${json}]`, cursors: Object.freeze(cursors), before };
  }

  /**
   * The cursor just after `channel`'s newest message: the engine's latest position, as a read to
   * the channel's end returns it, whether or not the channel holds messages. Creates nothing.
   */
  async tail(channel: string): Promise<Cursor> {
    const history = this.#channels.get(channel);
    return this.#cursor(history?.tag ?? tagOf(channel), this.#sequence, history);
  }

  /** {@inheritDoc Engine.retains} */
  retains(channel: string): boolean {
    return this.#channels.has(channel);
  }

  /** What the engine holds right now, with what it counts against `maxBytes`. */
  stats(): MemoryEngineStats {
    return { channels: this.#channels.size, messages: this.#messages, bytes: this.#bytes };
  }

  /** Stops the sweep timer. The history stays readable. */
  async close(): Promise<void> {
    this.#stopSweeper();
  }

  #cursor(tag: string, position: number, history?: History): Cursor {
    return this.#made(tag, position, history).cursor;
  }

  #made(tag: string, position: number, history?: History): MadeCursor {
    // The cursor made last for a channel is made again for every poll that waits at its head:
    // reuse the string, so the polls held on the channel share one instead of holding one each,
    // and skip building it; and the read that finds nothing there, which allocates nothing then
    // (bench/micro/cursor-reuse.js). A poll over many channels reads each.
    const last = history ? history.made : this.#lastCursor;
    if (last.position === position && last.tag === tag) return last;
    const cursor = `${this.epoch}.${tag}.${position.toString(36)}`;
    const made = { tag, position, cursor, nothing: Object.freeze({ messages: NO_MESSAGES, cursor }) };
    if (history) history.made = made;
    else this.#lastCursor = made;
    return made;
  }

  /** {@inheritDoc Engine.checkCursor} */
  checkCursor(channel: string, cursor: Cursor): void {
    const history = this.#channels.get(channel);
    // The cursor made last for the channel is one of its cursors.
    if (history && cursor === history.made.cursor) return;
    this.#parse(cursor, history?.tag ?? tagOf(channel));
  }

  /**
   * The position of a cursor of `tag`'s channel, once its syntax, channel and place are checked;
   * `undefined` for a cursor of another epoch (an earlier history), whose positions mean nothing
   * here.
   */
  #parse(cursor: Cursor, tag: string): number | undefined {
    let position = this.#ownPosition(cursor, tag);
    if (position === undefined) {
      const parts = CURSOR.exec(cursor);
      position = parts ? Number.parseInt(parts[3]!, 36) : Number.NaN;
      if (!parts || !Number.isSafeInteger(position)) {
        throw new LongPollError('invalid_cursor', 'The cursor is not one this server issued');
      }
      if (parts[2] !== tag) throw new LongPollError('invalid_cursor', 'The cursor belongs to another channel');
      if (parts[1] !== this.epoch) return undefined;
    }
    if (position > this.#sequence) throw new LongPollError('invalid_cursor', 'The cursor is ahead of this history');
    return position;
  }

  /**
   * The position of `cursor` when it is `{epoch}.{tag}.{base 36}` of this engine's epoch, as
   * every cursor a client sends back is; `undefined` for anything else, which {@link #parse}
   * then reads with its regular expression. Reads the text in place: no match array and no
   * substrings (bench/micro/cursor-parse.js).
   */
  #ownPosition(cursor: Cursor, tag: string): number | undefined {
    const { epoch } = this;
    const start = epoch.length + tag.length + 2;
    const digits = cursor.length - start;
    if (digits < 1 || digits > 11 || !cursor.startsWith(epoch) || !cursor.startsWith(tag, epoch.length + 1)) return undefined;
    if (cursor.charCodeAt(epoch.length) !== DOT || cursor.charCodeAt(start - 1) !== DOT) return undefined;
    let position = 0;
    for (let i = start; i < cursor.length; i++) {
      const code = cursor.charCodeAt(i);
      const digit = code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 122 ? code - 87 : -1;
      if (digit === -1) return undefined;
      position = position * 36 + digit;
    }
    return Number.isSafeInteger(position) ? position : undefined;
  }

  #positionOf(cursor: Cursor, tag: string, floor: number, history: History | undefined): number {
    // Held polls come back with the cursor made last for their channel: no need to parse it
    // again (bench/micro/cursor-reuse.js).
    const last = history ? history.made : this.#lastCursor;
    const position = cursor === last.cursor && tag === last.tag ? last.position : this.#parse(cursor, tag);
    if (position === undefined) {
      throw new LongPollError('cursor_expired', 'The cursor is from an earlier history; resume from earliestCursor', {
        earliestCursor: this.#cursor(tag, floor, history),
      });
    }
    if (position < floor) {
      throw new LongPollError('cursor_expired', 'Messages after the cursor have expired; resume from earliestCursor', {
        earliestCursor: this.#cursor(tag, floor, history),
      });
    }
    return position;
  }

  #expire(channel: string, history: History, now: number): void {
    const { ring } = history;
    let count = 0;
    while (ring.length > 0 && ring.first()!.expiresAt <= now) {
      const entry = ring.shift()!;
      history.evictedThrough = entry.position;
      this.#bytes -= entry.bytes;
      count++;
    }
    if (count === 0) return;
    this.#messages -= count;
    if (ring.length === 0) this.#drop(channel, history);
    this.#listener?.evicted(channel, count, 'maxAge');
  }

  #drop(channel: string, history: History): void {
    const bucket = Number.parseInt(history.tag, 36) % BUCKETS;
    this.#floors[bucket] = Math.max(this.#floors[bucket]!, history.evictedThrough);
    this.#channels.delete(channel);
    this.#bytes -= history.bytes;
    if (this.#channels.size === 0) this.#stopSweeper();
  }

  #startSweeper(): void {
    if (this.#sweeper || this.maxAge === Number.POSITIVE_INFINITY) return;
    const period = Math.min(Math.max(this.maxAge / 2, 100), 30_000);
    this.#sweeper = setInterval(() => this.#sweep(), period);
    this.#sweeper.unref();
  }

  #stopSweeper(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [channel, history] of this.#channels) this.#expire(channel, history, now);
  }
}
