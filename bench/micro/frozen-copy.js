/**
 * The Broker's payload on every publish: `payloadOf` (json.ts) copies plain data by a walk and
 * serialises the frozen copy, against the round trip it replaced: `JSON.stringify`, then
 * `parseFrozen` (parse and deep freeze). Measured for a small chat message and a ~2 KB object.
 */
import { parseFrozen, payloadOf } from '../../dist/json.js';
import { compare } from './harness.js';

const small = { user: 'alice', text: 'hello there, how are you?', at: 1_700_000_000_000 };
const large = {
  room: 'general',
  members: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `member ${i}`, online: i % 3 === 0, tags: ['a', 'b'] })),
  topic: { text: 'x'.repeat(200), setBy: 'bob', at: 1_700_000_000_000 },
};

/** @type {[string, unknown][]} */
const payloads = [
  ['a chat message', small],
  [`${JSON.stringify(large).length} bytes of JSON`, large],
];
for (const [label, data] of payloads) {
  compare(
    `payload of ${label}`,
    {
      name: 'payloadOf(data): walk, freeze, stringify',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += payloadOf(data).json.length;
        return sum;
      },
    },
    {
      name: 'JSON.stringify(data), then parseFrozen(json)',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const json = JSON.stringify(data);
          sum += json.length + (parseFrozen(json) === data ? 1 : 0);
        }
        return sum;
      },
    },
  );
}
