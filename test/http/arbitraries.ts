import fc from 'fast-check';
import { PREFIX } from '../support/servers.js';

/** Random requests for the fuzz and differential tests of the HTTP adapters. */

const headerText = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
const pollutingKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString');

const segment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('room:1', '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty') },
  { weight: 3, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,12}$/) },
  fc.constantFrom('room:1', '__proto__', 'constructor', 'prototype', 'toString', '%ZZ', '%2F', '%00', '..', '.', '', 'a%20b', 'x'.repeat(201)),
  fc.string({ maxLength: 30 }).map(encodeURIComponent),
  fc.stringMatching(/^[A-Za-z0-9%._~:@!$&'()*+,;=-]{0,20}$/),
);

const path = fc.oneof(
  { weight: 6, arbitrary: segment.map((s) => `${PREFIX}/${s}`) },
  { weight: 1, arbitrary: fc.array(segment, { maxLength: 4 }).map((parts) => `/${parts.join('/')}`) },
  { weight: 1, arbitrary: fc.tuple(segment, segment).map(([a, b]) => `${PREFIX}/${a}/${b}`) },
  { weight: 1, arbitrary: fc.constantFrom(PREFIX, `${PREFIX}/`, '/', `${PREFIX}x/room`, '/CHANNELS/room') },
  // Paths a WHATWG URL parser rewrites: dot segments (also percent-encoded) and backslashes.
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      `${PREFIX}/./room:1`,
      `/x/..${PREFIX}/room:1`,
      `${PREFIX}/a\\b`,
      `${PREFIX}\\room:1`,
      `${PREFIX}/%2e%2e/room:1`,
      `${PREFIX}/.%2E`,
      `${PREFIX}/room:1/..`,
      `${PREFIX}/room/../room:1`,
    ),
  },
);

const queryValue = fc.oneof(
  fc.constantFrom('0', '0.05', '0.1', '1', '1000', '99999999999999999999', '1e3', '-1', '', '.5', 'abc', 'NaN', 'Infinity', '%ZZ', '__proto__'),
  fc.nat({ max: 2_000 }).map(String),
  fc.double({ min: 0, max: 100, noNaN: true }).map(String),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
);
const query = fc.oneof(
  fc.array(
    fc.tuple(fc.oneof(fc.constantFrom('cursor', 'wait', 'limit'), pollutingKeys, fc.stringMatching(/^[a-z]{1,6}$/)), queryValue),
    { maxLength: 5 },
  ).map((pairs) => pairs.map(([key, value]) => `${key}=${value}`).join('&')),
  fc.stringMatching(/^[A-Za-z0-9%&=._~-]{0,30}$/),
);

const prefer = fc.option(
  fc.oneof(fc.constantFrom('wait=0', 'wait=0.1', 'wait=1000', 'wait=abc', 'wait="0.1"', 'respond-async, wait=0', 'wait', 'WAIT=0.05; x=y'), headerText),
  { nil: undefined },
);
const contentType = fc.option(
  fc.oneof(
    { weight: 4, arbitrary: fc.constant('application/json') },
    fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/cloudevents+json', 'text/plain', 'application/x-www-form-urlencoded', 'json', ';'),
    headerText,
  ),
  { nil: undefined },
);

const pollutingJson = fc
  .tuple(pollutingKeys, fc.jsonValue({ maxDepth: 2 }))
  .map(([key, value]) => `{"${key}":{"polluted":true,"__proto__":{"polluted":true}},"value":${JSON.stringify(value)}}`);
const body = fc.option(
  fc.oneof(
    { weight: 3, arbitrary: fc.json({ maxDepth: 3 }) },
    { weight: 2, arbitrary: pollutingJson },
    fc.string({ maxLength: 200 }),
    fc.uint8Array({ maxLength: 3_000 }).map((bytes) => Buffer.from(bytes)),
    fc.constant('"' + 'y'.repeat(3_000) + '"'),
  ),
  { nil: undefined, freq: 8 },
);

const method = fc.constantFrom('GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH');

/** One random request: method, path below or around PREFIX, query, Prefer, Content-Type, body. */
export const request = fc.record({ method, path, query, prefer, contentType, body });

/** A channel of a `?channels=` list, as sent: mostly valid names, some hostile ones. */
const listed = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('room:1', 'a', 'b', 'c', '__proto__', 'constructor', 'toString') },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,12}$/) },
  fc.constantFrom('', '%2C', 'a%2Cb', '%ZZ', '%00', 'a%20b', '%E9', '%C3%A9', '%252C', 'x'.repeat(201), 'room%3A1', '..', '~', 'a.b'),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
);

/** The value of `channels`: lists with duplicates and empty elements, and lists too long. */
const channelsValue = fc.oneof(
  // Lists the server accepts, so that cursors are put to the test too.
  { weight: 6, arbitrary: fc.shuffledSubarray(['room:1', 'a', 'b', 'c', '__proto__'], { minLength: 1 }).map((names) => names.join(',')) },
  { weight: 6, arbitrary: fc.array(listed, { minLength: 1, maxLength: 6 }).map((names) => names.join(',')) },
  // A duplicate, as sent or encoded differently.
  { weight: 1, arbitrary: fc.array(listed, { minLength: 1, maxLength: 4 }).map((names) => [...names, names[0]!].join(',')) },
  { weight: 1, arbitrary: fc.constantFrom('room%3A1,room:1', 'a,A', ',', ',a', 'a,', 'a,,b', '', '%2C', 'a%2C') },
  // Around the default maxChannels (32).
  { weight: 1, arbitrary: fc.integer({ min: 30, max: 40 }).map((n) => Array.from({ length: n }, (_, i) => `c${i}`).join(',')) },
  fc.constant(Array.from({ length: 1_000 }, (_, i) => `c${i}`).join(',')),
);

/**
 * A `cursor` for a `?channels=` poll, given real cursors the server issued (composite ones of
 * other lists, single-channel ones, one of another broker): as issued, cut, joined into
 * composite cursors too long for any list, and garbage in the composite syntax.
 */
function manyCursor(issued: readonly string[]): fc.Arbitrary<string | undefined> {
  const real = fc.constantFrom(...issued);
  return fc.option(
    fc.oneof(
      { weight: 4, arbitrary: real },
      { weight: 1, arbitrary: fc.tuple(real, fc.nat()).map(([cursor, cut]) => cursor.slice(0, cut % (cursor.length + 1))) },
      // Up to about 12,000 characters: longer than 32 single cursors, shorter than Node's header limit.
      { weight: 1, arbitrary: fc.array(real, { minLength: 2, maxLength: 150 }).map((parts) => parts.join('~')) },
      { weight: 1, arbitrary: fc.constantFrom('', '~', '.', '~~', 'a.', '.a', 'zzzzzzzz_1.x', '1_1.x~', 'garbage', '__proto__.x') },
      fc.string({ maxLength: 40 }),
    ),
    { nil: undefined, freq: 4 },
  );
}

/**
 * One random `GET {prefix}?channels=…` (or `{prefix}/?channels=…`), with a hostile list, a
 * repeated parameter, and `cursor`s made of `issued` (cursors the server under test issued).
 */
export function manyRequest(issued: readonly string[]) {
  const pairs = fc.tuple(
    fc.oneof({ weight: 8, arbitrary: channelsValue.map((value) => [`channels=${value}`]) }, fc.tuple(channelsValue, channelsValue).map(([a, b]) => [`channels=${a}`, `channels=${b}`])),
    manyCursor(issued),
    fc.option(fc.oneof({ weight: 4, arbitrary: fc.constantFrom('0', '0', '0', '0.05') }, fc.constantFrom('0.1', '', 'x', '1e3')), { nil: undefined }),
    fc.option(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 5 }).map(String) }, fc.constantFrom('0', '1001', '', '-1')), { nil: undefined }),
  );
  return fc.record({
    method: fc.constantFrom('GET', 'GET', 'GET', 'GET', 'GET', 'POST', 'HEAD', 'OPTIONS'),
    path: fc.constantFrom(PREFIX, PREFIX, `${PREFIX}/`),
    query: fc.tuple(pairs, fc.boolean()).map(([[channels, cursor, wait, limit], shuffle]) => {
      const parts = [...channels];
      if (cursor !== undefined) parts.push(`cursor=${encodeURIComponent(cursor)}`);
      if (wait !== undefined) parts.push(`wait=${wait}`);
      if (limit !== undefined) parts.push(`limit=${limit}`);
      return (shuffle ? parts.reverse() : parts).join('&');
    }),
    prefer: fc.option(fc.constantFrom('wait=0', 'wait=0.05', 'wait=abc'), { nil: undefined }),
    contentType: fc.option(fc.constantFrom('application/json', 'text/plain'), { nil: undefined }),
    body: fc.option(fc.constantFrom('1', '{"a":1}', ''), { nil: undefined, freq: 4 }),
  });
}

/** `Accept` headers that ask for an event stream, as `EventSource`, browsers and proxies send them. */
const streamAccept = fc.constantFrom(
  'text/event-stream',
  'text/event-stream',
  'text/event-stream;q=0.5, */*',
  'application/json, text/event-stream',
  'text/event-stream; charset=utf-8',
  '*/*;q=0.1,text/event-stream',
);

/**
 * A `Last-Event-ID` made of `issued` (cursors the server under test issued: this channel's,
 * another channel's, composite ones of other lists, another broker's): as issued, cut, joined into
 * a composite cursor of another length, huge, empty, and printable garbage.
 */
function lastEventId(issued: readonly string[]): fc.Arbitrary<string | undefined> {
  const real = fc.constantFrom(...issued);
  return fc.option(
    fc.oneof(
      { weight: 4, arbitrary: real },
      { weight: 1, arbitrary: fc.tuple(real, fc.nat()).map(([cursor, cut]) => cursor.slice(0, cut % (cursor.length + 1))) },
      { weight: 1, arbitrary: fc.array(real, { minLength: 2, maxLength: 40 }).map((parts) => parts.join('~')) },
      { weight: 1, arbitrary: fc.constantFrom('', '', ' ', 'garbage', '~', '.', '__proto__', '0', '-1', '1_1.x', 'zzzzzzzz_1.x', 'null') },
      // Up to 6,000 characters: past any cursor, within Node's header limit with any query.
      { weight: 1, arbitrary: fc.tuple(real, fc.integer({ min: 1, max: 6_000 })).map(([cursor, length]) => cursor.repeat(Math.ceil(length / cursor.length)).slice(0, length)) },
      headerText,
    ),
    { nil: undefined, freq: 3 },
  );
}

/** A path under PREFIX: a channel (valid or hostile), a deeper path, or one a URL parser rewrites. */
const prefixedPath = fc.oneof(
  { weight: 8, arbitrary: segment.map((s) => `${PREFIX}/${s}`) },
  { weight: 1, arbitrary: fc.tuple(segment, segment).map(([a, b]) => `${PREFIX}/${a}/${b}`) },
  { weight: 1, arbitrary: fc.constantFrom(`${PREFIX}/`, `${PREFIX}/./room:1`, `${PREFIX}/%2e%2e/room:1`, `${PREFIX}/room:1/..`, `${PREFIX}/a\\b`) },
);

/** A request for an event stream, as {@link streamRequest} draws it. */
export interface StreamRequest {
  readonly method: string;
  /** The path as sent, and the query without its `?`. */
  readonly target: { readonly path: string; readonly query: string };
  readonly accept: string;
  readonly lastEventId: string | undefined;
  readonly body: string | undefined;
}

/**
 * One random request for an event stream (`Accept` naming `text/event-stream`, a hostile
 * `Last-Event-ID` made of `issued`), on one channel or `?channels=`, with hostile queries.
 * `anywhere` adds paths outside PREFIX; `methods` are the methods to draw from; `resume` has
 * cursors of channels and lists (`'a'`, `'a,b'`) with history, which they are asked with.
 */
export function streamRequest(
  issued: readonly string[],
  {
    anywhere = false,
    methods = ['GET', 'GET', 'GET', 'GET', 'GET', 'GET', 'POST', 'HEAD', 'PUT', 'OPTIONS'],
    resume = {},
  }: { anywhere?: boolean; methods?: readonly string[]; resume?: Readonly<Record<string, readonly string[]>> } = {},
): fc.Arbitrary<StreamRequest> {
  const single = fc.record({ path: anywhere ? fc.oneof({ weight: 3, arbitrary: prefixedPath }, path) : prefixedPath, query });
  const many = manyRequest(issued).map(({ path, query }) => ({ path, query }));
  // Channels and lists with history, resumed from their own cursors (`resume`): streams mostly.
  const lists = Object.keys(resume);
  const tame: fc.Arbitrary<{ path: string; query: string; lastEventId: string | undefined }> =
    lists.length === 0
      ? single.map((target) => ({ ...target, lastEventId: undefined }))
      : fc.constantFrom(...lists).chain((list) => {
          const names = list.split(',');
          const own = fc.constantFrom(...resume[list]!);
          const path = names.length === 1 ? `${PREFIX}/${list}` : PREFIX;
          return fc.record({
            path: fc.constant(path),
            query: fc
              .option(fc.oneof(fc.integer({ min: 1, max: 5 }).map((n) => `limit=${n}`), own.map((cursor) => `cursor=${encodeURIComponent(cursor)}`)), { nil: undefined })
              .map((extra) => [...(names.length === 1 ? [] : [`channels=${list}`]), ...(extra === undefined ? [] : [extra])].join('&')),
            lastEventId: fc.option(own, { nil: undefined }),
          });
        });
  const stream = fc.record({
    target: fc.oneof({ weight: 2, arbitrary: single }, { weight: 2, arbitrary: many }),
    lastEventId: lastEventId(issued),
  });
  return fc.record({
    method: fc.constantFrom(...methods),
    request: fc.oneof(
      { weight: 3, arbitrary: tame.map(({ path, query, lastEventId }) => ({ target: { path, query }, lastEventId })) },
      { weight: 4, arbitrary: stream },
    ),
    accept: streamAccept,
    body: fc.option(fc.constantFrom('1', '{"a":1}', ''), { nil: undefined }),
  }).map(({ request, ...rest }) => ({ ...rest, ...request }));
}

