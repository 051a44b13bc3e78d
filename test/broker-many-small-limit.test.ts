/**
 * A limit smaller than the number of channels with messages: the round-robin must not always
 * start at the first listed channel, or a backlog on it keeps every later channel out for as
 * long as it lasts (`?channels=busy,quiet&limit=1` never saw `quiet` before `busy` was drained).
 */
import { afterEach, expect, it } from 'vitest';
import { Broker } from '../src/index.js';

let broker: Broker<unknown> | undefined;

afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

it('gives a later channel its turn while an earlier one has a backlog, with limit 1', async () => {
  broker = new Broker<unknown>({ capacity: 1000 });
  for (let i = 0; i < 200; i++) await broker.publish('busy', i);
  await broker.publish('quiet', 'q0');
  let cursor: string | undefined;
  const busy: unknown[] = [];
  let quietAfter: number | undefined;
  // The round starts at a channel picked by a hash of the positions, which move with every read.
  for (let read = 0; read < 40 && quietAfter === undefined; read++) {
    const result = await broker.readMany(['busy', 'quiet'], { cursor, limit: 1 });
    expect(result.messages).toHaveLength(1);
    const [message] = result.messages;
    if (message!.channel === 'quiet') quietAfter = read;
    else busy.push(message!.data);
    cursor = result.cursor;
  }
  expect(quietAfter, 'quiet got a turn within 40 reads of limit 1').toBeDefined();
  // Nothing of busy was skipped or repeated meanwhile, and it goes on from there.
  expect(busy).toEqual(Array.from({ length: busy.length }, (_, i) => i));
  const rest = await broker.readMany(['busy', 'quiet'], { cursor, limit: 1000 });
  expect(rest.messages.map((message) => message.data)).toEqual(Array.from({ length: 200 - busy.length }, (_, i) => i + busy.length));
});
