/**
 * A parser of `text/event-stream` (the "Parsing an event stream" and "Interpreting an event
 * stream" rules of the WHATWG HTML standard, §9.2.5–9.2.6), fed with the body's bytes as they
 * arrive. It works on bytes rather than decoded text so that its bound counts real bytes: the
 * line terminators (LF, CRLF, CR) are ASCII, so a line never splits a UTF-8 sequence and each
 * line is decoded on its own. Chunks may end anywhere, a CRLF split between two chunks included.
 */

/** One event the stream dispatched, as `EventSource` would fire it. */
export interface ServerSentEvent {
  /** The `event:` field, or `'message'` when the event named none. */
  readonly type: string;
  /** The `data:` lines joined with `\n`. */
  readonly data: string;
  /** The last `id:` of the stream up to and including this event's block (`''` before any). */
  readonly lastEventId: string;
}

/** What the parser calls while it reads. */
export interface EventStreamHandlers {
  /** An event with data. */
  event(event: ServerSentEvent): void;
  /**
   * A block that set `id:` but carried no data: `EventSource` fires nothing for it, yet it
   * moves the last event ID (a stream says where it starts this way).
   */
  id(lastEventId: string): void;
  /** A valid `retry:` field (ASCII digits only): the reconnection time in milliseconds. */
  retry(ms: number): void;
}

/** The pending event passed the parser's bound; the caller abandons the stream. */
export class EventTooLargeError extends Error {
  override readonly name = 'EventTooLargeError';
}

const LF = 0x0a;
const CR = 0x0d;
const UTF8_BOM = '\uFEFF';

/**
 * Reads one stream. `maxEventBytes` bounds what it holds at once: the bytes of the line being
 * read plus the `data` of the event being built. Comments and unknown fields are dropped as
 * their line ends, so a stream of `: ping` lines holds nothing; an endless line, or an event
 * whose data never ends, throws {@link EventTooLargeError} from {@link push} once it passes the
 * bound, without having held more than that.
 */
export class EventStreamParser {
  readonly #handlers: EventStreamHandlers;
  readonly #maxEventBytes: number;
  /** `ignoreBOM`: only the stream's first line drops a BOM (below), never a later one. */
  readonly #decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  /** The current line's bytes so far, in the pieces the chunks brought. */
  #line: Uint8Array[] = [];
  #lineBytes = 0;
  #data = '';
  #dataBytes = 0;
  #hasData = false;
  #type = '';
  #idSet = false;
  /** The `id:` of the block being read: it becomes the last event ID only when the block ends. */
  #idBuffer = '';
  #lastEventId = '';
  /** The previous chunk ended in CR: an LF at the start of the next one is the same terminator. */
  #afterCR = false;
  #firstLine = true;

  constructor(handlers: EventStreamHandlers, maxEventBytes: number) {
    this.#handlers = handlers;
    this.#maxEventBytes = maxEventBytes;
  }

  /**
   * The last event ID: the last `id:` (without a NUL) of a block that ended, `''` before any. An
   * `id:` of a block the stream cut off never becomes it: its event was not delivered.
   */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** Reads the next bytes; calls the handlers for every event they complete. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    let start = 0;
    if (this.#afterCR) {
      this.#afterCR = false;
      if (chunk[0] === LF) start = 1;
    }
    // The next LF and CR at or after `start`, found once each, so a chunk with many lines of one
    // kind is not rescanned for the other at every line.
    let lf = -2;
    let cr = -2;
    while (start < chunk.length) {
      if (lf !== -1 && lf < start) lf = chunk.indexOf(LF, start);
      if (cr !== -1 && cr < start) cr = chunk.indexOf(CR, start);
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (end === -1) {
        this.#keep(chunk.subarray(start));
        return;
      }
      this.#keep(chunk.subarray(start, end));
      this.#endLine();
      if (chunk[end] === CR && end + 1 === chunk.length) {
        this.#afterCR = true;
        return;
      }
      start = chunk[end] === CR && chunk[end + 1] === LF ? end + 2 : end + 1;
    }
  }

  /**
   * The stream ended. An event not yet ended by a blank line is dropped, as the standard says:
   * a stream cut mid-event must not deliver half of it.
   */
  end(): void {
    this.#line = [];
    this.#lineBytes = 0;
    this.#idBuffer = this.#lastEventId;
    this.#resetEvent();
  }

  #keep(piece: Uint8Array): void {
    if (piece.length === 0) return;
    this.#lineBytes += piece.length;
    if (this.#lineBytes + this.#dataBytes > this.#maxEventBytes) {
      this.end();
      throw new EventTooLargeError(`An event passed ${this.#maxEventBytes} bytes`);
    }
    // A copy: the caller's chunk may be a view of a buffer that the stream reuses.
    this.#line.push(piece.slice());
  }

  #endLine(): void {
    const bytes = this.#lineBytes;
    let line = this.#decode();
    if (this.#firstLine) {
      this.#firstLine = false;
      if (line.startsWith(UTF8_BOM)) line = line.slice(1);
    }
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#type = value;
        break;
      case 'data':
        this.#data += `${value}\n`;
        this.#dataBytes += bytes + 1;
        this.#hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.#idBuffer = value;
          this.#idSet = true;
        }
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.#handlers.retry(Number(value));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  #decode(): string {
    const pieces = this.#line;
    this.#line = [];
    this.#lineBytes = 0;
    if (pieces.length === 0) return '';
    if (pieces.length === 1) return this.#decoder.decode(pieces[0]);
    const whole = new Uint8Array(pieces.reduce((sum, piece) => sum + piece.length, 0));
    let at = 0;
    for (const piece of pieces) {
      whole.set(piece, at);
      at += piece.length;
    }
    return this.#decoder.decode(whole);
  }

  #dispatch(): void {
    const hasData = this.#hasData;
    const idSet = this.#idSet;
    const data = this.#data.slice(0, -1);
    const type = this.#type || 'message';
    // As the standard's buffer, the id outlives the block: an event without `id:` keeps the last.
    this.#lastEventId = this.#idBuffer;
    this.#resetEvent();
    if (hasData) this.#handlers.event({ type, data, lastEventId: this.#lastEventId });
    else if (idSet) this.#handlers.id(this.#lastEventId);
  }

  #resetEvent(): void {
    this.#data = '';
    this.#dataBytes = 0;
    this.#hasData = false;
    this.#type = '';
    this.#idSet = false;
  }
}
