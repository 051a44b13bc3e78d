/**
 * Parked many-channel polls (`Broker#park` and `#startMany`, broker.ts; `ManyWaiter.park`,
 * waiter.ts). A many-channel poll answered by a publish stays on its channels' lists for a moment,
 * under the cursor of its answer; the re-poll that comes back with that cursor, before anything
 * else is published on its channels, is held again as it is: no decoding of the cursor, no read
 * of its channels, no new poll to register. Against the same re-polls when the answered poll is
 * not parked, as every answered poll was before: each re-poll asks `limit: 1`, so the one message
 * of each answer fills its limit and the broker cannot know the channel was read to its end.
 * 200 polls of 10 channels out of 40 (a different list each), each publish waking a quarter of
 * them, which re-poll at once with their answer's cursor, as HTTP clients do.
 */
import { Broker } from '../../dist/index.js';
import { compareAsync } from './harness.js';
import { manyPolls } from './many-polls.js';

/** A broker with the shared many-channel polls (many-polls.js), each asking `limit`. */
async function setUp(limit) {
  const broker = new Broker();
  return { broker, run: await manyPolls(broker, limit) };
}

const parked = await setUp(undefined);
const unparked = await setUp(1);
await compareAsync(
  '200 polls of 10 channels, a publish waking 50 of them, which re-poll with their cursor',
  { name: 'parked: the re-poll takes over the answered poll, still on its channels', run: (n) => parked.run(n) },
  { name: 'not parked (limit 1): the re-poll decodes its cursor, reads its 10 channels, holds a new poll', run: (n) => unparked.run(n) },
  { n: 40 },
);
await parked.broker.close();
await unparked.broker.close();
