/**
 * MemoryEngine's last cursor: `readNow` at the head of a channel, with the cursor the engine made
 * last, reuses that cursor's string for the answer and its position instead of parsing the cursor.
 * That is what the polls of a fanout do when they come back together. The alternative is the same
 * production code made to miss: reads of two channels alternate, so every read parses its cursor
 * and builds a new one. Cursors arrive as new strings of equal value (from each request's URL).
 */
import { MemoryEngine } from '../../dist/memory-engine.js';
import { compare } from './harness.js';

const engine = new MemoryEngine();
const head = {};
for (const channel of ['a', 'b']) head[channel] = (await engine.append(channel, '{"text":"hello"}')).cursor;
// The second append moved the head of channel a too (one sequence per engine).
head.a = engine.readNow('a', undefined, 100).cursor;
/** 1,024 copies of a cursor, each its own string as a URL parser makes it. */
const copies = (cursor) => Array.from({ length: 1024 }, () => JSON.parse(JSON.stringify(cursor)));
const cursors = { a: copies(head.a), b: copies(head.b) };

compare(
  'readNow at the head of a channel',
  {
    name: 'one channel: the cursor made last comes back',
    run: (n) => {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += engine.readNow('a', cursors.a[i & 1023], 100).cursor.length;
      return sum;
    },
  },
  {
    name: 'two channels alternating: every read parses and builds',
    run: (n) => {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const channel = i & 1 ? 'b' : 'a';
        sum += engine.readNow(channel, cursors[channel][i & 1023], 100).cursor.length;
      }
      return sum;
    },
  },
);
await engine.close();
