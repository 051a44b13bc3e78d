/**
 * `parseFrozen` (json.ts), used for every stored message an engine hands out without a value
 * (RedisEngine on every read, MemoryEngine when `append` gets no value, the Broker's slow path):
 * its deep freeze walks objects with for…in and arrays by index, against the same walk over
 * `Object.keys`, which makes a key array per object. Measured for a small chat message and a
 * ~2 KB object.
 */
import { parseFrozen } from '../../dist/json.js';
import { compare } from './harness.js';

/** The deep freeze with a key array per object. */
function freezeByKeys(value) {
  if (typeof value !== 'object' || value === null) return value;
  for (const key of Object.keys(value)) freezeByKeys(value[key]);
  return Object.freeze(value);
}

const small = JSON.stringify({ user: 'alice', text: 'hello there, how are you?', at: 1_700_000_000_000 });
const large = JSON.stringify({
  room: 'general',
  members: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `member ${i}`, online: i % 3 === 0, tags: ['a', 'b'] })),
  topic: { text: 'x'.repeat(200), setBy: 'bob', at: 1_700_000_000_000 },
});

for (const [label, json] of [
  ['a chat message', small],
  [`${large.length} bytes of JSON`, large],
]) {
  compare(
    `parse and deep-freeze ${label}`,
    {
      name: 'parseFrozen(json): for…in and indexed loops',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += Object.isFrozen(parseFrozen(json)) ? 1 : 0;
        return sum;
      },
    },
    {
      name: 'JSON.parse(json), freeze over Object.keys',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += Object.isFrozen(freezeByKeys(JSON.parse(json))) ? 1 : 0;
        return sum;
      },
    },
  );
}
