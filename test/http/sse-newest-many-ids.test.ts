/**
 * `firstMessage: 'newest'` on a many-channel stream whose cursor does not name every listed
 * channel, and whose first answer has messages (a backlog on a channel it names): every event's
 * `id:` must name every listed channel, since a channel an `id:` leaves out starts again at its
 * newest message on reconnect, skipping what was published meanwhile.
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

it("resumes without a gap from the id of a message of a first answer whose cursor lacked a listed channel (firstMessage 'newest')", async () => {
  broker = new Broker<unknown>();
  server = await startServer('node', broker, { firstMessage: 'newest' });
  const { cursor } = await broker.readMany(['a'], { firstMessage: 'newest' }); // names a only
  await broker.publish('a', 'a1');
  await broker.publish('a', 'a2');
  const url = `${server.origin}${PREFIX}?channels=a,b`;
  const first = await openStream(url, { 'last-event-id': cursor });
  await first.waitFor((events) => events.filter((event) => event.event === 'message').length >= 2, 'a1 and a2');
  await until(() => broker.stats().waiters === 1, 'the stream holds its poll');
  const a1 = first.events.find((event) => event.event === 'message' && event.data!.includes('"a1"'))!;
  first.close();
  await until(() => broker.stats().waiters === 0, 'the stream is gone');
  await broker.publish('b', 'b1'); // after the stream had read b: the client is owed it
  // A client cut just after a1 resumes from a1's id (or from the last id before it).
  const second = await openStream(url, a1.id === undefined ? { 'last-event-id': cursor } : { 'last-event-id': a1.id });
  await second.waitFor((events) => events.some((event) => event.event === 'message' && event.data!.includes('"b1"')), 'b1 arrives', 2000);
  const data = second.messages().map((message) => message.data);
  expect(data).toContain('a2');
  expect(data).toContain('b1');
  second.close();
});
