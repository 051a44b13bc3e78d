import { LongPollError, type LongPollErrorCode } from '../index.js';
import { firstRepeat } from '../first-repeat.js';
import { DEFAULT_LIMIT, MAX_LIMIT } from '../limits.js';

/** What a GET asks for, once its query and headers are validated. */
export interface PollParams {
  /**
   * The `cursor` parameter as sent, at most 512 characters; `undefined` when absent or empty
   * (`cursor=`), which means "everything retained". Whether it is one of the channel's cursors
   * is for the broker to tell (`Broker.checkCursor`).
   */
  readonly cursor: string | undefined;
  /** Milliseconds, clamped to the maximum. */
  readonly wait: number;
  /** The most messages to return: from 1 to 1000 (larger values are clamped); 100 when absent. */
  readonly limit: number;
  /** The `Prefer: wait` the client sent, if readable: it is echoed in `Preference-Applied`. */
  readonly preferred: boolean;
}

const SECONDS = /^\d+(\.\d+)?$/;
const INTEGER = /^\d+$/;
/** Longer than any cursor an engine issues; a longer one is not ours. */
export const MAX_CURSOR = 512;

/** What no cursor holds (cursors are URL-safe): controls, spaces, and what is not ASCII. */
const NOT_A_CURSOR = /[^\x21-\x7e]/;

/**
 * Refuses a cursor with a character no engine's cursor has. The engine checks the cursors of
 * the channels a request lists, but not a composite cursor's entries for other channels, nor
 * anything when it has no `checkCursor`; and an event stream writes its starting cursor as its
 * first `id:` line, where a line break would let the URL write events of its own.
 *
 * @throws {@link LongPollError} `invalid_cursor`
 */
export function checkCursorText(cursor: string): void {
  if (NOT_A_CURSOR.test(cursor)) throw new LongPollError('invalid_cursor', 'The cursor is not one this server issued');
}

/** What the protocol reads of a query: {@link parseQuery} makes it; `URLSearchParams` has it too. */
export interface Query {
  /** Every value of the parameter `name`, in order. */
  getAll(name: string): readonly string[];
  /** Whether the parameter `name` is there. */
  has(name: string): boolean;
}

/** The parameters the protocol reads; {@link parseQuery} keeps no others. */
const PARAMETERS = new Set(['channels', 'cursor', 'wait', 'limit']);

/**
 * The protocol's parameters of a query string (with or without its `?`), decoded exactly as
 * `URLSearchParams` decodes them: `+` is a space, percent-encoding is UTF-8, and what does not
 * decode is kept as it is. One pass over the text, which decodes only the components that have
 * a `%` or a `+` and keeps only the four parameters the protocol reads: the query of a
 * many-channel poll is several hundred characters (bench/micro/query-parse.js).
 */
export function parseQuery(search: string): Query {
  const values = new Map<string, string[]>();
  for (let start = search.startsWith('?') ? 1 : 0; start < search.length; ) {
    const ampersand = search.indexOf('&', start);
    const end = ampersand === -1 ? search.length : ampersand;
    if (end > start) {
      const equals = search.indexOf('=', start);
      const nameEnd = equals === -1 || equals > end ? end : equals;
      const name = componentOf(search, start, nameEnd);
      if (PARAMETERS.has(name)) {
        const value = nameEnd === end ? '' : componentOf(search, nameEnd + 1, end);
        const list = values.get(name);
        if (list) list.push(value);
        else values.set(name, [value]);
      }
    }
    start = end + 1;
  }
  return { getAll: (name) => values.get(name) ?? [], has: (name) => values.has(name) };
}

/** The text from `start` to `end` of a query, decoded as `URLSearchParams` decodes a name or value. */
function componentOf(text: string, start: number, end: number): string {
  const raw = text.slice(start, end);
  if (!raw.includes('%') && !raw.includes('+')) return raw;
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    // Percent-encoding that is not UTF-8, or a `%` without two hex digits: URLSearchParams keeps
    // what it cannot decode, where decodeURIComponent throws.
    return new URLSearchParams(`=${raw}`).get('')!;
  }
}

/** The one value of a query parameter; a repeated or (unless allowed) empty one fails with `code`. */
function single(query: Query, name: string, code: LongPollErrorCode): string | undefined {
  const values = query.getAll(name);
  if (values.length === 0) return undefined;
  if (values.length > 1) throw new LongPollError(code, `The ${name} parameter is repeated`);
  return values[0];
}

/** Seconds on the wire → milliseconds; `undefined` when it does not parse. */
function secondsToMs(value: string): number | undefined {
  return SECONDS.test(value) ? Math.round(Number(value) * 1000) : undefined;
}

/**
 * The `wait` of `Prefer` (RFC 7240), in milliseconds; `undefined` when absent or unreadable,
 * which RFC 7240 says to ignore.
 */
export function preferredWait(prefer: string | undefined): number | undefined {
  if (!prefer) return undefined;
  for (const preference of prefer.split(',')) {
    const [token = ''] = preference.split(';');
    const equals = token.indexOf('=');
    if (equals === -1 || token.slice(0, equals).trim().toLowerCase() !== 'wait') continue;
    return secondsToMs(token.slice(equals + 1).trim().replace(/^"(.*)"$/, '$1'));
  }
  return undefined;
}

/**
 * Parses `cursor`, `wait` and `limit` of a poll. `?wait` wins over `Prefer: wait`; `cursor=`
 * (empty) means no cursor; `limit` above 1000 is clamped; `wait` is clamped to `maxWait`.
 *
 * @throws {@link LongPollError} `invalid_cursor`, `invalid_wait` or `invalid_limit`
 */
export function parsePollParams(
  query: Query,
  prefer: string | undefined,
  defaults: { defaultWait: number; maxWait: number; maxCursor?: number },
): PollParams {
  const rawCursor = single(query, 'cursor', 'invalid_cursor');
  if (rawCursor !== undefined && rawCursor.length > (defaults.maxCursor ?? MAX_CURSOR)) {
    throw new LongPollError('invalid_cursor', 'The cursor is not one this server issued');
  }
  const cursor = rawCursor === '' ? undefined : rawCursor;

  const rawWait = single(query, 'wait', 'invalid_wait');
  let wait: number | undefined;
  if (rawWait !== undefined) {
    wait = secondsToMs(rawWait);
    if (wait === undefined) throw new LongPollError('invalid_wait', 'wait must be a number of seconds, such as 25 or 2.5');
  }
  const fromPrefer = preferredWait(prefer);
  wait ??= fromPrefer ?? defaults.defaultWait;

  const rawLimit = single(query, 'limit', 'invalid_limit');
  let limit = DEFAULT_LIMIT;
  if (rawLimit !== undefined) {
    limit = INTEGER.test(rawLimit) ? Number(rawLimit) : 0;
    if (limit < 1) throw new LongPollError('invalid_limit', `limit must be a whole number from 1 to ${MAX_LIMIT}`);
  }

  return {
    cursor,
    wait: Math.min(wait, defaults.maxWait),
    limit: Math.min(limit, MAX_LIMIT),
    preferred: fromPrefer !== undefined,
  };
}

/** Whether a Content-Type names JSON (`application/json`, `application/*+json`, any parameters). */
export function isJsonType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/**
 * The raw channel segment of a path below the prefix: exactly one non-empty segment.
 * Returns `undefined` when the path is not one segment below the prefix (a 404). The segment is
 * not decoded here, so that the method is checked (405) before the channel (400).
 */
export function segmentOf(pathname: string, prefix: string): string | undefined {
  if (!pathname.startsWith(`${prefix}/`)) return undefined;
  const segment = pathname.slice(prefix.length + 1);
  return segment.length === 0 || segment.includes('/') ? undefined : segment;
}

/**
 * The channel a path segment names: percent-decoded once, then checked against `pattern`.
 *
 * @throws {@link LongPollError} `invalid_channel` when it does not decode or match `pattern`
 */
export function channelOf(segment: string, pattern: RegExp): string {
  let channel: string;
  try {
    channel = decodeURIComponent(segment);
  } catch {
    throw new LongPollError('invalid_channel', 'The channel is not valid percent-encoding');
  }
  pattern.lastIndex = 0;
  if (!pattern.test(channel)) throw new LongPollError('invalid_channel', `The channel must match ${String(pattern)}`);
  return channel;
}

/**
 * The channels of `GET {prefix}?channels=a,b,c`: the parameter as {@link parseQuery} decodes it
 * (percent-decoded once), split on `,`.
 *
 * @throws {@link LongPollError} `invalid_channels` for a repeated or empty parameter, an empty
 *   element (`a,`, `,a`), a duplicate, a name `pattern` refuses, or more than `max` channels
 */
export function channelsOf(query: Query, pattern: RegExp, max: number): string[] {
  const value = single(query, 'channels', 'invalid_channels');
  if (value === undefined || value === '') throw new LongPollError('invalid_channels', 'The channels parameter is empty');
  const channels = value.split(',');
  if (channels.length > max) throw new LongPollError('invalid_channels', `At most ${max} channels can be polled at once`);
  for (const channel of channels) {
    if (channel === '') throw new LongPollError('invalid_channels', 'The channels parameter has an empty element');
    pattern.lastIndex = 0;
    if (!pattern.test(channel)) throw new LongPollError('invalid_channels', `Every channel must match ${String(pattern)}`);
  }
  const repeated = firstRepeat(channels);
  if (repeated !== undefined) throw new LongPollError('invalid_channels', `The channel ${repeated} is listed twice`);
  return channels;
}
