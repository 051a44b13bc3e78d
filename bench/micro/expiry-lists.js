/**
 * When held polls expire (`Expiries`, src/expiry.ts): one list per duration with one timer for
 * its first entry, against a Node timer per poll (`setTimeout`, then `clearTimeout` when the poll
 * is answered). What is timed is what a fanout does to 1,000 held polls: hold each (with one of
 * 32 waits, as the HTTP jitter makes them) and take each off again when it is answered. Also
 * printed: the heap each held poll's expiry costs, with 10,000 held at once.
 */
import { Expiries } from '../../dist/expiry.js';
import { compare } from './harness.js';

const POLLS = 1000;
const waits = Array.from({ length: 32 }, (_, i) => 25_000 - i * 48.828125);

/** A held poll, as far as its expiry goes: the fields a Waiter has for it. */
class Held {
  expiresAt = 0;
  previous = undefined;
  next = undefined;
  list = undefined;
  expired() {}
}

const expiries = new Expiries();
const noop = () => {};

compare(
  `${POLLS} polls held with 32 waits, then answered`,
  {
    name: 'Expiries: a list per wait, one timer each',
    run: (n) => {
      let sum = 0;
      const held = new Array(POLLS);
      for (let i = 0; i < n; i++) {
        for (let p = 0; p < POLLS; p++) {
          const item = new Held();
          expiries.add(item, waits[p & 31]);
          held[p] = item;
        }
        sum += expiries.size;
        for (const item of held) item.list.remove(item);
      }
      return sum;
    },
  },
  {
    name: 'a Node timer per poll',
    run: (n) => {
      let sum = 0;
      const held = new Array(POLLS);
      for (let i = 0; i < n; i++) {
        for (let p = 0; p < POLLS; p++) held[p] = setTimeout(noop, waits[p & 31]);
        sum += held.length;
        for (const timer of held) clearTimeout(timer);
      }
      return sum;
    },
  },
  { rounds: 11 },
);

/** Heap bytes per held poll's expiry, 10,000 held. */
function heapOf(hold) {
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  const kept = [];
  for (let i = 0; i < 10_000; i++) kept.push(hold(i));
  globalThis.gc?.();
  const bytes = (process.memoryUsage().heapUsed - before) / kept.length;
  return { bytes, kept };
}
if (globalThis.gc) {
  const lists = heapOf((i) => {
    const item = new Held();
    expiries.add(item, waits[i & 31]);
    return item;
  });
  const timers = heapOf((i) => {
    const holder = new Held(); // the Waiter would exist anyway; its timer is the difference
    holder.timer = setTimeout(noop, waits[i & 31]);
    return holder;
  });
  console.log(`heap per held poll's expiry: ${lists.bytes.toFixed(0)} B with Expiries, ${timers.bytes.toFixed(0)} B with a Node timer each`);
  for (const item of lists.kept) item.list.remove(item);
  for (const holder of timers.kept) clearTimeout(holder.timer);
}
