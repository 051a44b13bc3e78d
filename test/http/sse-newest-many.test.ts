/**
 * `firstMessage: 'newest'` on a many-channel stream whose cursor does not name every listed
 * channel (a client added one to its list and kept its cursor): the channel it lacks starts at
 * its newest message, a position only the server knows, so the stream must say it at once, as
 * a cursorless stream does; else a client cut before any message resumes that channel from a
 * later newest message and misses what came between.
 */
import { afterEach, expect, it } from 'vitest';
import { Broker } from '../../src/index.js';
import { PREFIX, startServer, type TestServer } from '../support/servers.js';
import { openStream } from './events.js';
import { until } from './requests.js';

let broker: Broker<unknown>;
let server: TestServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
  await broker?.close();
});

it("sends the full starting cursor at once when the cursor lacks a listed channel (firstMessage 'newest')", async () => {
  broker = new Broker<unknown>();
  server = await startServer('node', broker, { firstMessage: 'newest' });
  await broker.publish('a', 'a0');
  await broker.publish('b', 'b0');
  const { cursor } = await broker.readMany(['a'], {}); // names a only
  const url = `${server.origin}${PREFIX}?channels=a,b`;
  const first = await openStream(url, { 'last-event-id': cursor });
  await first.waitFor((events) => events.length >= 1, 'the head');
  // The stream has read once and now waits at the newest message of both channels.
  await until(() => broker.stats().waiters === 1, 'the stream holds its poll');
  await new Promise((resolve) => setTimeout(resolve, 50));
  const ids = first.events.map((event) => event.id).filter((id) => id !== undefined);
  const lastId = ids[ids.length - 1]!;
  first.close(); // cut before any message
  await until(() => broker.stats().waiters === 0, 'the stream is gone');
  await broker.publish('b', 'b1'); // published while the client reconnects
  const second = await openStream(url, { 'last-event-id': lastId });
  await second.waitFor((events) => events.some((event) => event.event === 'message'), 'b1 arrives', 2000);
  expect(second.messages().map((message) => message.data)).toEqual(['b1']);
  second.close();
});
