/**
 * A poll of one channel on a synchronous engine (MemoryEngine) reads, then answers or holds,
 * before `Broker[startPoll]` returns, and returns no promise (`Broker#poll`, src/broker.ts).
 * Against the same call made as before, from an async function whose promise gets a `catch` (the
 * body ran synchronously then too: what differs is the promise, the suspended frame and the
 * handler per poll). 1,000 tickets re-poll a channel as soon as they are answered, as event
 * streams do after each event; timed: a publish and the 1,000 polls that follow it.
 */
import { Broker } from '../../dist/index.js';
import { PollTicket, startPoll } from '../../dist/poll.js';
import { compareAsync } from './harness.js';

const POLLS = 1000;
const options = { wait: 60_000 };

/** A ticket that polls again from the answer's cursor at once, through `poll`. */
class Repoller extends PollTicket {
  answers = 0;
  constructor(poll) {
    super();
    this.poll = poll;
  }
  resolve(answer) {
    this.answers++;
    this.poll({ wait: 60_000, cursor: answer.result.cursor }, this);
  }
  reject() {}
}

/** A broker with POLLS re-polling tickets, each poll started by `start`. */
async function setUp(start) {
  const broker = new Broker();
  const poll = (pollOptions, ticket) => start(broker, pollOptions, ticket);
  const tickets = Array.from({ length: POLLS }, () => new Repoller(poll));
  for (const ticket of tickets) poll(options, ticket);
  while (broker.stats().waiters < POLLS) await new Promise((resolve) => setImmediate(resolve));
  return {
    close: () => broker.close(),
    async run(n) {
      for (let i = 0; i < n; i++) {
        await broker.publish('room', { text: 'hello', i });
        while (broker.stats().waiters < POLLS) await new Promise((resolve) => setImmediate(resolve));
      }
      return tickets.reduce((sum, ticket) => sum + ticket.answers, 0);
    },
  };
}

const production = await setUp((broker, pollOptions, ticket) => broker[startPoll]('room', pollOptions, ticket));
const alternative = await setUp((broker, pollOptions, ticket) => {
  const polled = (async () => broker[startPoll]('room', pollOptions, ticket))();
  polled.catch((error) => ticket.reject(error));
});

await compareAsync(
  `a publish to ${POLLS} held polls of one channel, each polling again at once (CPU per publish)`,
  { name: 'a poll reads and holds without a promise', run: (n) => production.run(n) },
  { name: 'the same from an async function, with a catch', run: (n) => alternative.run(n) },
  { n: 20 },
);
await production.close();
await alternative.close();
