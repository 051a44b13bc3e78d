/**
 * Server-Sent Events on the broker: the same URLs, cursors, checks and limits as a poll, answered
 * with a stream (`Accept: text/event-stream`). A stream is a loop of ordinary broker polls that
 * writes each answer as events and polls on from the answer's cursor, so it shares the waiters,
 * the reads and (on one channel) the bytes of every poll a publish wakes.
 */
import type { Broker } from '../index.js';
import { decodeComposite, encodeComposite } from '../composite-cursor.js';
import type { Cursor } from '../engine.js';
import { LongPollError } from '../errors.js';
import { encode, PollTicket, selectMany, startPoll, type Answer, type PollOptions, type Selection } from '../poll.js';

/** Where an {@link EventStream} writes: the adapter's side of one streamed response. */
export interface StreamSink {
  /**
   * Hands bytes to the transport. Returns `false` when its buffer is full: the stream then
   * reads nothing more until the adapter calls {@link EventStream.drained}.
   */
  send(chunk: Uint8Array<ArrayBuffer>): boolean;
  /** Ends the response normally. */
  end(): void;
  /** Drops the connection: the client read nothing for `sendTimeout` ms. */
  destroy(): void;
}

/** What a stream needs of the adapter's settings, in milliseconds. */
export interface StreamSettings {
  readonly heartbeat: number;
  readonly maxStream: number;
  readonly retry: number;
  readonly sendTimeout: number;
  readonly firstMessage: 'oldest' | 'newest';
}

/** The headers of every event stream; `X-Accel-Buffering: no` keeps nginx from buffering it. */
export const STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-store',
  'x-accel-buffering': 'no',
});

/** `text/event-stream` with any parameters, case aside (RFC 9110, 8.3.1), and its `q` if any. */
const EVENT_STREAM_RANGE = /^\s*text\/event-stream\s*(?:;|$)/i;
const ZERO_Q = /;\s*q\s*=\s*0(?:\.0{0,3})?\s*(?:;|$)/i;

/**
 * Whether a request asks for an event stream: its `Accept` lists the media range
 * `text/event-stream`, in any case, with a `q` above 0 (`q=0` means "not acceptable").
 */
export function wantsStream(accept: string | undefined): boolean {
  if (accept === undefined || !/event-stream/i.test(accept)) return false;
  return accept.split(',').some((range) => EVENT_STREAM_RANGE.test(range) && !ZERO_Q.test(range));
}

/** A comment line: proxies see bytes, `EventSource` ignores it. */
const PING = encode(': ping\n\n');

/**
 * One `message` event, `text` being the message's JSON; no `id:` when it is not known (see
 * {@link eventsOf}).
 */
function messageEvent(id: Cursor | undefined, text: string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: message\ndata: ${text}\n\n`;
}

/**
 * Where each of many channels was before an answer, as {@link eventsOf} moves them: `unknown`
 * lists the channels whose position only the broker knew (a stream with `firstMessage: 'newest'`
 * whose cursor did not name them), which an `id:` must not leave out.
 */
interface Positions {
  readonly positions: Map<string, Cursor | undefined>;
  readonly unknown: Set<string>;
}

/**
 * The events of an answer. Each carries the cursor just after its message: on one channel the
 * engine's (`Batch.cursors`); on many (`before`: where each channel was before the answer), the
 * composite cursor with that message's channel moved. A message whose cursor is unknown (an
 * engine without `Batch.cursors`, or a many-channel stream with `firstMessage: 'newest'` before
 * a message of each channel its cursor did not name) has no `id:`, and a client cut just after
 * it gets it again: a duplicate, never a gap. The last message always has the answer's cursor.
 */
function eventsOf(answer: Answer<unknown>, before: Positions | undefined): string {
  const { messages, cursor } = answer.result;
  const { cursors } = answer;
  const texts = answer.messageTexts();
  let text = '';
  const last = messages.length - 1;
  for (let i = 0; i < last; i++) {
    const message = messages[i]!;
    let id = cursors?.[i];
    if (before) {
      const { positions, unknown } = before;
      if (id !== undefined) {
        positions.set(message.channel, id);
        unknown.delete(message.channel);
      }
      id = id !== undefined && unknown.size === 0 ? encodeComposite(positions) : undefined;
    }
    text += messageEvent(id, texts[i]!);
  }
  return text + messageEvent(cursor, texts[last]!);
}

/**
 * Streams that wrote an answer and poll again on the next turn: at most every open stream, once
 * (a stream in it holds no waiter and gets no answer until it polls), emptied every turn.
 */
const again: EventStream[] = [];
/** `setImmediate` where there is one (Node, Bun), else a zero timeout. */
const nextTurn: (callback: () => void) => void =
  (globalThis as { setImmediate?: (callback: () => void) => void }).setImmediate ?? ((callback) => void setTimeout(callback, 0));

/** Why a stream's held poll is forgotten. */
const gone = new LongPollError('internal', 'The stream ended');

/**
 * One event stream: from its starting cursor, poll, write what comes as events, and poll on.
 * It is the ticket of each of its polls in turn, so a stream holds at most one waiter, and none
 * while the client is not reading (backpressure: nothing piles up in the process). A poll that
 * times out writes a heartbeat. `cursor_expired` is written as a `reset` event and the stream
 * goes on from the earliest retained cursor. Anything else (the broker closing, the engine down)
 * ends the stream; the client reconnects with `Last-Event-ID`.
 *
 * The protocol {@link open}s it: its first read decides between the stream and a problem answer
 * (the broker closing, the engine down), as for a poll. The adapter then hands it a
 * {@link StreamSink} with {@link attach}, calls {@link drained} when the transport can take more,
 * and {@link stop} when the connection is gone (the exchange does).
 */
export class EventStream extends PollTicket<unknown> {
  #sink: StreamSink | undefined;
  #cursor: Cursor | undefined;
  /** Whether the stream's first read was answered: later polls wait, and a timeout is a heartbeat. */
  #started = false;
  #paused = false;
  #stopped = false;
  #stall: ReturnType<typeof setTimeout> | undefined;
  readonly #endAt: number;
  /** Until the first read answers: who writes the response (see {@link open}). */
  #respond: ((refusal: LongPollError | undefined) => void) | undefined;
  /** The first read's outcome, written once the response is attached. */
  #first: (() => void) | undefined;
  /** {@link finish} was asked before the response was open: it ends right after its first read. */
  #finishing = false;
  /**
   * The poll out waits for the time left, not a heartbeat: its timeout is the end, even when it
   * comes a millisecond early by `Date.now()` (the expiry lists answer up to a millisecond early),
   * which would otherwise write a ping less than a heartbeat after the last event.
   */
  #last = false;

  /**
   * @param target - the channel, or the channels of a many-channel stream
   * @param cursor - where it starts: `Last-Event-ID`, else `?cursor=`, else `firstMessage`
   * @param heartbeat - the settings' heartbeat, shortened below a transport timeout if need be
   */
  constructor(
    readonly broker: Broker<unknown>,
    readonly target: string | readonly string[],
    cursor: Cursor | undefined,
    readonly limit: number,
    readonly settings: StreamSettings,
    readonly heartbeat: number,
  ) {
    super();
    this.#cursor = cursor;
    const { maxStream } = settings;
    this.#endAt = Date.now() + maxStream - Math.random() * (maxStream / 8);
  }

  /**
   * Makes the stream's first read. A failure other than `cursor_expired` is `respond`ed as the
   * refusal the request gets instead of a stream (a `503` once the broker is closing, not a `200`
   * that ends at once); anything else calls `respond(undefined)`, which writes the stream's
   * response, and the adapter {@link attach}es it.
   */
  open(respond: (refusal: LongPollError | undefined) => void): void {
    this.#respond = respond;
    this.#next();
  }

  /**
   * Starts the stream on `sink`: the `retry:` line and, when the stream has a starting cursor,
   * its `id:`, then what its first read found.
   */
  attach(sink: StreamSink): void {
    this.#sink = sink;
    const cursor = this.#cursor;
    const head = `retry: ${this.settings.retry}\n${cursor === undefined ? '' : `id: ${cursor}\n`}\n`;
    const sent = this.#send(encode(head));
    const first = this.#first;
    this.#first = undefined;
    if (first) first();
    else if (sent) this.#next();
  }

  /** The first read answered: the response opens with `first` to write, or is `refusal`. */
  #opened(first: () => void, refusal?: LongPollError): void {
    const respond = this.#respond!;
    this.#respond = undefined;
    if (refusal) {
      this.stop();
      respond(refusal);
      return;
    }
    this.#first = first;
    respond(undefined);
    if (this.#finishing) this.finish();
  }

  /** The transport took what it had: read on from the last cursor written. */
  drained(): void {
    if (this.#stopped) {
      // The end is on its way to a client that reads again: its clock starts over.
      this.#stall?.refresh();
      return;
    }
    clearTimeout(this.#stall);
    this.#stall = undefined;
    if (!this.#paused) return;
    this.#paused = false;
    this.#next();
  }

  /**
   * The connection is gone, or the response was handed to the transport in full: forget the
   * held poll and stop the send clock. Idempotent.
   */
  stop(): void {
    clearTimeout(this.#stall);
    this.#stall = undefined;
    if (this.#stopped) return;
    this.#stopped = true;
    this.cancel(gone);
  }

  /**
   * Ends the response normally (`maxStream`, the broker closing, a pipelined request). What was
   * written may still wait for a client that reads nothing, so the send clock keeps running
   * until the adapter reports the end handed over ({@link stop}); past `sendTimeout` without
   * progress the connection is destroyed, and the lease goes with it.
   */
  finish(): void {
    if (this.#stopped) return;
    if (this.#respond) {
      this.#finishing = true; // the response is not open yet
      return;
    }
    this.#stopped = true;
    this.cancel(gone);
    const sink = this.#sink;
    if (!sink) return;
    this.#stall ??= this.#clock(sink);
    sink.end();
  }

  /** {@inheritDoc PollTicket.resolve} */
  resolve(answer: Answer<unknown>): void {
    if (this.#stopped) return;
    if (this.#respond) {
      this.#opened(() => this.resolve(answer));
      return;
    }
    const { result } = answer;
    let chunk: Uint8Array<ArrayBuffer> | undefined;
    if (result.messages.length > 0) {
      const { target } = this;
      chunk =
        typeof target === 'string'
          ? // Every stream a publish wakes on one channel writes the same bytes.
            (answer.events ??= encode(eventsOf(answer, undefined)))
          : encode(eventsOf(answer, this.#positions(target, answer)));
    } else if (!this.#started) {
      // The first read found nothing: the client learns where it starts, unless it said so
      // itself. A composite cursor that lacks a listed channel did not: with 'newest', that
      // channel starts at its newest message, a position only the broker knew.
      if (result.cursor !== this.#cursor) chunk = encode(`id: ${result.cursor}\n\n`);
    } else if (this.#last || Date.now() >= this.#endAt) {
      this.finish();
      return;
    } else chunk = PING;
    this.#started = true;
    this.#cursor = result.cursor;
    if (chunk === undefined) {
      this.#next();
      return;
    }
    // Full: no poll until the transport drains, so a publish meanwhile writes nothing more.
    if (!this.#send(chunk)) {
      this.held?.release();
      return;
    }
    // Still held, at the cursor just written and for another heartbeat (`keeps`): the next
    // publish answers it. Within a heartbeat of `maxStream`, it polls again instead: that
    // poll's wait ends with the stream.
    if (this.held) {
      if (this.#endAt - Date.now() < this.heartbeat) {
        this.held.release();
        this.again();
      }
      return;
    }
    if (result.messages.length > 0) this.again();
    else this.#next();
  }

  /**
   * A stream on one channel takes answer after answer from the same held poll while it writes
   * them as they come. The broker asks only while it holds the stream's poll, which it never
   * does before the response is open (the first read waits for nothing), once the stream has
   * stopped (stopping cancels the poll) or while it is paused (pausing releases it).
   */
  override get keeps(): boolean {
    return typeof this.target === 'string';
  }

  /**
   * Polls again after writing messages, on the next turn of the event loop: once every stream
   * the same publish woke has written its events and Node has handed them to the sockets (it
   * uncorks them in a `process.nextTick`, which runs after the microtasks of a publish made in a
   * promise continuation), so the writes of a fanout are not held up by the polls that follow
   * them (bench/micro/stream-repoll.js). Nothing is missed: the poll reads from the cursor.
   */
  protected again(): void {
    if (again.push(this) === 1) nextTurn(EventStream.#pollAgain);
  }

  /** Polls from the last cursor now: what {@link again} defers (its micro-benchmark's alternative). */
  protected pollNow(): void {
    this.#next();
  }

  static readonly #pollAgain = (): void => {
    for (const stream of again.splice(0)) stream.#next();
  };

  /** {@inheritDoc PollTicket.reject} */
  reject(error: unknown): void {
    if (this.#stopped) return;
    const failure = LongPollError.from(error);
    const earliest = failure.earliestCursor;
    const reset = failure.code === 'cursor_expired' && earliest !== undefined;
    if (this.#respond) {
      this.#opened(() => this.reject(error), reset ? undefined : failure);
      return;
    }
    if (!reset) {
      this.finish();
      return;
    }
    // A stream never answers 410 (`EventSource` would give up): it says so, and goes on.
    this.#started = true;
    this.#cursor = earliest;
    if (this.#send(encode(`event: reset\nid: ${earliest}\ndata: ${JSON.stringify({ earliestCursor: earliest })}\n\n`))) this.#next();
  }

  /**
   * Where each of many channels was before `answer`. No position means everything retained,
   * which is a place to resume from; unless the stream reads with `firstMessage: 'newest'`:
   * then the channel started at its newest message, a position only the broker knew. The
   * answer's cursor still has it for a channel the answer has no message of; the others are
   * known once the events reach one of their messages.
   */
  #positions(list: readonly string[], answer: Answer<unknown>): Positions {
    const positions = decodeComposite(this.#cursor, list);
    const unknown = new Set<string>();
    if (this.settings.firstMessage !== 'newest') return { positions, unknown };
    let after: Map<string, Cursor | undefined> | undefined;
    for (const [channel, position] of positions) {
      if (position !== undefined) continue;
      if (answer.result.messages.some((message) => message.channel === channel)) unknown.add(channel);
      else positions.set(channel, (after ??= decodeComposite(answer.result.cursor, list)).get(channel));
    }
    return { positions, unknown };
  }

  /** Polls from the last cursor: at once for the first read, then up to a heartbeat. */
  #next(): void {
    if (this.#stopped) return;
    const left = this.#endAt - Date.now();
    // The first read is made however short `maxStream` is: it decides what the request gets.
    if (left <= 0 && !this.#respond) {
      this.finish();
      return;
    }
    this.#last = this.#started && left <= this.heartbeat;
    const options: PollOptions = {
      cursor: this.#cursor,
      wait: this.#started ? Math.min(this.heartbeat, left) : 0,
      limit: this.limit,
      firstMessage: this.settings.firstMessage,
    };
    const { target } = this;
    let selection: string | Selection;
    try {
      // A many-channel stream's poll answered with its cursor may still be parked: held again as it is.
      selection = typeof target === 'string' ? target : this.broker[selectMany](target, this.#cursor);
    } catch (error) {
      this.reject(error);
      return;
    }
    this.broker[startPoll](selection, options, this);
  }

  /** Writes `chunk`; when the transport is full, pauses and starts the send clock. */
  #send(chunk: Uint8Array<ArrayBuffer>): boolean {
    const sink = this.#sink!;
    if (sink.send(chunk)) return true;
    this.#paused = true;
    this.#stall ??= this.#clock(sink);
    return false;
  }

  /** The send clock: `sendTimeout` ms without progress, and the connection is dropped. */
  #clock(sink: StreamSink): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => {
      this.stop();
      sink.destroy();
    }, this.settings.sendTimeout);
    timer.unref?.();
    return timer;
  }
}
