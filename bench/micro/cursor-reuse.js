/**
 * MemoryEngine's last cursor per channel: `readNow` at the head of a channel, with the cursor the
 * engine made last for that channel, reuses that cursor's string for the answer and its position
 * instead of parsing the cursor. That is what the polls of a fanout do when they come back
 * together, and what a poll over many channels does for each of its channels, so reads of two
 * channels alternate here. The alternative is the same production code made to miss: each read
 * comes with the cursor of the channel's last message, from before the other channel's publish
 * moved the head, so every read parses its cursor. Cursors arrive as new strings of equal value
 * (from each request's URL).
 */
import { MemoryEngine } from '../../dist/memory-engine.js';
import { compare } from './harness.js';

const engine = new MemoryEngine();
const published = {};
for (const channel of ['a', 'b']) published[channel] = (await engine.append(channel, '{"text":"hello"}')).cursor;
/** Where each channel's reads end: the engine's head, past the other channel's message too. */
const head = { a: engine.readNow('a', undefined, 100).cursor, b: engine.readNow('b', undefined, 100).cursor };
/** 1,024 copies of a cursor, each its own string as a URL parser makes it. */
const copies = (cursor) => Array.from({ length: 1024 }, () => JSON.parse(JSON.stringify(cursor)));
const made = { a: copies(head.a), b: copies(head.b) };
const earlier = { a: copies(published.a), b: copies(published.b) };

/** Reads alternating between the two channels, with the cursors of `from`. */
const reads = (from) => (n) => {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const channel = i & 1 ? 'b' : 'a';
    sum += engine.readNow(channel, from[channel][i & 1023], 100).cursor.length;
  }
  return sum;
};

compare(
  'readNow at the head of two channels, alternating',
  { name: "the channel's last cursor made comes back", run: reads(made) },
  { name: 'a cursor from one message earlier: parsed', run: reads(earlier) },
);
await engine.close();
