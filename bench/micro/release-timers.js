/**
 * The Broker's drain answers the waiters of a publish first and clears their timers afterwards,
 * in a `setImmediate` (`later(releaseAll, answered)`, broker.ts), so that the last answer is not
 * written after a thousand `clearTimeout` calls. Measured: N polls held by a real Broker and
 * MemoryEngine, each answered by writing the answer's bytes to its own TCP connection on
 * 127.0.0.1 (the writes an HTTP adapter makes); the time from `publish` to the last write, with
 * the production drain against the same drain that also clears each timer in the loop (the
 * bench's ticket clears it as it writes). Total work is the same; what moves is when the last
 * poll gets its answer.
 */
import net from 'node:net';
import { setImmediate as tick } from 'node:timers/promises';
import { Broker } from '../../dist/broker.js';
import { pollResponse } from '../../dist/http/answer.js';
import { MemoryEngine } from '../../dist/memory-engine.js';
import { PollTicket, startPoll } from '../../dist/poll.js';
import { consume, cpuNow, median, report } from './harness.js';

const POLLS = 1000;
const ROUNDS = Number(process.env.ROUNDS ?? 21);

/** A poll answered by a write to a socket, as an HTTP exchange answers it. */
class WriteTicket extends PollTicket {
  constructor(socket, round) {
    super();
    this.socket = socket;
    this.round = round;
    this.waiter = undefined;
  }

  resolve(answer) {
    // The alternative: clear the timer in the drain's loop, before the answer is written.
    if (this.round.clearInLoop) clearTimeout(this.waiter.timer);
    this.socket.write(pollResponse(answer, undefined, 204).body);
    if (++this.round.answered === POLLS) this.round.end = cpuNow();
  }

  reject(error) {
    this.round.error = error instanceof Error ? error : new Error(String(error));
  }
}

const server = net.createServer();
const accepted = [];
server.on('connection', (socket) => accepted.push(socket));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const clients = [];
for (let i = 0; i < POLLS; i++) {
  const client = net.connect(server.address().port, '127.0.0.1');
  client.on('data', (chunk) => consume(chunk.length));
  clients.push(client);
}
while (accepted.length < POLLS) await tick();

const broker = new Broker({ engine: new MemoryEngine() });
let cursor = (await broker.publish('room', { text: 'first' })).cursor;

/** One publish to POLLS held polls; milliseconds from the publish to the last write. */
async function round(clearInLoop) {
  /** @type {{ clearInLoop: boolean, answered: number, end: number, error: Error | undefined }} */
  const state = { clearInLoop, answered: 0, end: 0, error: undefined };
  const tickets = accepted.map((socket) => new WriteTicket(socket, state));
  for (const ticket of tickets) broker[startPoll]('room', { cursor, wait: 25_000, limit: 100 }, ticket);
  await tick();
  for (const ticket of tickets) {
    if (!ticket.held) throw new Error('a poll was not held');
    ticket.waiter = ticket.held;
  }
  const start = cpuNow();
  cursor = (await broker.publish('room', { user: 'alice', text: 'hello there, how are you?', at: Date.now() })).cursor;
  if (state.error) throw state.error;
  if (state.answered !== POLLS) throw new Error(`${state.answered} of ${POLLS} polls answered`);
  await tick(); // the production drain's releaseAll
  return state.end - start;
}

// Warm up, then alternate which variant goes first.
for (let i = 0; i < 4; i++) await round(i % 2 === 0);
const production = [];
const alternative = [];
const ratios = [];
for (let i = 0; i < ROUNDS; i++) {
  const first = i % 2 === 0;
  const a = await round(!first);
  const b = await round(first);
  const [p, q] = first ? [a, b] : [b, a];
  production.push(p);
  alternative.push(q);
  ratios.push(q / p);
}
report({
  title: `publish to ${POLLS} held polls, each written to its TCP connection: time to the last write`,
  production: { name: 'timers cleared in a setImmediate after the answers (later(releaseAll))', ns: (median(production) * 1e6) / POLLS },
  alternative: { name: 'each timer cleared in the loop, before its answer is written', ns: (median(alternative) * 1e6) / POLLS },
  ratio: median(ratios),
  rounds: ROUNDS,
});
await broker.close();
for (const client of clients) client.destroy();
server.close();
