/**
 * MemoryEngine's read that finds nothing after a channel's head: `readNow` returns the frozen
 * batch kept with the channel's last cursor made, shared by every such read, instead of a new
 * batch and a new empty array per read. Reads of 10 channels in turn at their heads, as the
 * re-poll of a poll over 10 channels makes them, with cursors as new strings (from each
 * request's URL). The alternative is the same production read followed by what it allocated
 * before: a batch `{ messages: [], cursor }` per read. The last 2,000 reads' results are kept, as held
 * polls keep their cursors, so that the collector has live data to trace. Noisy: 1.09–2.04×
 * over three runs while writing it.
 */
import { MemoryEngine } from '../../dist/memory-engine.js';
import { compare } from './harness.js';

const engine = new MemoryEngine();
const channels = Array.from({ length: 10 }, (_, i) => `room.${i}`);
for (const channel of channels) await engine.append(channel, '{"text":"hello"}');
const copies = (cursor) => Array.from({ length: 64 }, () => JSON.parse(JSON.stringify(cursor)));
const heads = channels.map((channel) => copies(engine.readNow(channel, undefined, 100).cursor));
const window = new Array(2_000);

const reads = (allocate) => (n) => {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const k = i % 10;
    let batch = engine.readNow(channels[k], heads[k][i & 63], 100);
    if (allocate) batch = { messages: [], cursor: batch.cursor };
    window[i % 2_000] = batch;
    sum += batch.messages.length + batch.cursor.length;
  }
  return sum;
};

compare(
  'readNow at the heads of 10 channels, in turn',
  { name: 'one frozen batch per head, shared', run: reads(false) },
  { name: 'a new batch and array per read', run: reads(true) },
);
await engine.close();
