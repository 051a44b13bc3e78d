/**
 * The polls held on one channel (`WaiterList`, src/waiter.ts): an array, a poll taken off by a
 * swap with the last, each poll knowing its place. The alternative is a `Set`, which the broker
 * used before. The pattern of a fanout: 10,000 polls held on a channel; a publish reads them all
 * (as `groupWaiters` does) and takes each off; the channel, now idle, is forgotten, and the
 * re-polls hold them on a new list. An operation is one such fanout: the `Set` hashes each poll
 * twice, shrinks its table as it empties and grows a new one, and that allocation and its
 * collection are in the time.
 */
import { WaiterList } from '../../dist/waiter.js';
import { compare } from './harness.js';

const HELD = 10_000;

/** Polls as the broker's waiters are, with the field that holds their place. */
const polls = () => Array.from({ length: HELD }, (_, i) => ({ id: i, place: -1 }));

function list() {
  let held = new WaiterList();
  for (const poll of polls()) held.add(poll);
  return (n) => {
    let sum = 0;
    for (let fanout = 0; fanout < n; fanout++) {
      const woken = [];
      for (let i = 0; i < held.size; i++) woken.push(held.at(i));
      for (const poll of woken) held.delete(poll);
      held = new WaiterList();
      for (const poll of woken) held.add(poll);
      sum += woken.length + held.at(0).id;
    }
    return sum;
  };
}

function set() {
  let held = new Set(polls());
  return (n) => {
    let sum = 0;
    for (let fanout = 0; fanout < n; fanout++) {
      const woken = [];
      for (const poll of held) woken.push(poll);
      for (const poll of woken) held.delete(poll);
      held = new Set();
      for (const poll of woken) held.add(poll);
      sum += woken.length + held.values().next().value.id;
    }
    return sum;
  };
}

compare(
  `a fanout's polls taken off one channel and held again on a new list, ${HELD.toLocaleString('en')} held`,
  { name: 'an array, a swap with the last (WaiterList)', run: list() },
  { name: 'a Set', run: set() },
);
