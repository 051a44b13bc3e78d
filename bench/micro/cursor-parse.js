/**
 * MemoryEngine reads a cursor of its own epoch in place (`#ownPosition`): prefix comparisons and a
 * loop over the base-36 digits, no regular expression, no match array, no substrings. A poll over
 * many channels has every channel's cursor checked and read, so up to 64 of them per request. The
 * alternative is the same production code given cursors of another epoch (from an earlier
 * history), which it reads with its regular expression: `checkCursor` accepts both and does
 * nothing else with them.
 */
import { MemoryEngine } from '../../dist/memory-engine.js';
import { compare } from './harness.js';

const engine = new MemoryEngine();
const other = new MemoryEngine();
for (let i = 0; i < 40; i++) {
  await engine.append('room', '{"text":"hello"}');
  await other.append('room', '{"text":"hello"}');
}
/** 1,024 cursors of `source`'s channel at positions 1 to 40, each its own string. */
const cursorsOf = (source) => Array.from({ length: 1024 }, (_, i) => JSON.parse(JSON.stringify(`${source.epoch}.${source.readNow('room', undefined, 1).cursor.split('.')[1]}.${((i % 40) + 1).toString(36)}`)));
const own = cursorsOf(engine);
const foreign = cursorsOf(other);

/** `checkCursor` of every cursor in `cursors`. */
const checks = (cursors) => (n) => {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    engine.checkCursor('room', cursors[i & 1023]);
    sum += 1;
  }
  return sum;
};

compare('checkCursor of a cursor the engine did not make last', { name: 'its own epoch: read in place', run: checks(own) }, { name: 'another epoch: the regular expression', run: checks(foreign) });
await engine.close();
await other.close();
