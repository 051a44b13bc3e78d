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
