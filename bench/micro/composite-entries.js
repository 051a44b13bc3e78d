/**
 * The composite cursor of each answer to a many-channel poll that is taken over again and again
 * (`ManyWaiter.moveTo`, src/waiter.ts): the poll keeps each channel's entry (`key.cursor`), makes
 * only the entry of the channel that moved, and joins the ten in one string. Against
 * `encodeCursors` over all its positions, what every answer did before: ten keys looked up, ten
 * entries made, and the pieces joined one by one. A 10-channel poll whose channels move in turn,
 * with MemoryEngine-shaped cursors. Each variant reads a character from the middle of every
 * cursor it makes, which flattens a string made of pieces, as an answer's first use of its cursor
 * (a map key, its JSON text, a header) does.
 */
import { encodeCursors } from '../../dist/composite-cursor.js';
import { PollTicket } from '../../dist/poll.js';
import { HeldOnChannel, ManyWaiter } from '../../dist/waiter.js';
import { compare } from './harness.js';

const channels = Array.from({ length: 10 }, (_, i) => `room.${i * 4}`);
const cursorAt = (i, position) => `01JDQ4Z8XM.${(1_000_003 * (i + 1)).toString(36)}.${position.toString(36)}`;
const start = channels.map((_, i) => cursorAt(i, 100));

class Ticket extends PollTicket {
  resolve() {}
  reject() {}
}
const states = channels.map((channel) => ({ channel, waiters: undefined, many: new HeldOnChannel(), version: 0, reading: 0, draining: false, dirty: false }));
const registry = { channels: new Map(), held: 0, parked: new Map(), expire() {}, expireMany() {} };
const waiter = new ManyWaiter(channels, [...start], 100, Number.POSITIVE_INFINITY, states, registry, new Ticket());
const cursors = [...start];
// Positions to move to, made ahead: neither variant pays for them.
const moves = Array.from({ length: 1000 }, (_, k) => cursorAt(k % 10, 101 + k));

compare(
  "an answer's composite cursor, 10 channels, one of them moved",
  {
    name: 'moveTo: the moved entry made again, the ten joined once',
    run: (n) => {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += waiter.moveTo(k % 10, moves[k % 1000]).charCodeAt(200);
      return sum;
    },
  },
  {
    name: 'encodeCursors of every position',
    run: (n) => {
      let sum = 0;
      for (let k = 0; k < n; k++) {
        cursors[k % 10] = moves[k % 1000];
        sum += encodeCursors(channels, cursors).charCodeAt(200);
      }
      return sum;
    },
  },
);
