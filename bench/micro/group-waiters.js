/**
 * The Broker's drain groups a channel's waiters by cursor and limit, one read per group:
 * `groupWaiters` (waiter.ts) first checks whether all wait with the same cursor, as the polls of
 * a fanout do, and then makes one group without a map; the alternative always builds the map.
 * Measured for 1 and 1,000 waiters with one cursor, each cursor its own string of equal value
 * (from each request's URL), and for 1,000 waiters with two cursors (the check fails; both build
 * the map).
 */
import { DEFAULT_LIMIT } from '../../dist/limits.js';
import { groupWaiters } from '../../dist/waiter.js';
import { compare } from './harness.js';

/** The map-only grouping: groupWaiters without its same-cursor check. */
function groupByMap(waiters) {
  const groups = new Map();
  for (const waiter of waiters) {
    const key = waiter.limit === DEFAULT_LIMIT ? waiter.cursor : `${waiter.cursor} ${waiter.limit}`;
    const group = groups.get(key);
    if (group) group.push(waiter);
    else groups.set(key, [waiter]);
  }
  return groups.values();
}

/** Sums the group sizes, so that the groups are used. */
function sizes(groups) {
  let sum = 0;
  for (const group of groups) sum += group.length;
  return sum;
}

const cursors = ['01JABCDEFG.1a2b3c.zz', '01JABCDEFG.1a2b3c.zy'];
for (const [count, distinct] of [
  [1, 1],
  [1000, 1],
  [1000, 2],
]) {
  // The drain reads only `cursor` and `limit` of a waiter.
  const waiters = new Set(
    Array.from({ length: count }, (_, i) => ({ cursor: JSON.parse(JSON.stringify(cursors[i % distinct])), limit: DEFAULT_LIMIT })),
  );
  compare(
    `grouping ${count} waiter${count === 1 ? '' : 's'} with ${distinct} cursor${distinct === 1 ? '' : 's'}`,
    {
      name: 'groupWaiters: same-cursor check, then a map if needed',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += sizes(groupWaiters(waiters));
        return sum;
      },
    },
    {
      name: 'always a map',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += sizes(groupByMap(waiters));
        return sum;
      },
    },
  );
}
