/**
 * Figure 5, in process: what one poll after a cursor costs when the channel's history is at
 * capacity 100 and at capacity 10,000. A cursor is found by binary search in the ring, so the
 * cost must stay flat, not grow with the capacity. Capacities alternate, rounds are timed
 * without forcing garbage collection, and the median is reported.
 */
import { Broker } from 'longpoll-kit';

const CAPACITIES = [100, 10_000];
/** Distinct cursors cycled through, so no poll is answered from the engine's last-read memo. */
const SPREAD = 8;

/**
 * @param {number} capacity
 * @param {number} behind how many messages after the cursor
 * @param {number} polls
 */
async function nanosecondsPerPoll(capacity, behind, polls) {
  const broker = new Broker({ capacity, maxAge: Number.POSITIVE_INFINITY });
  const cursors = [];
  for (let i = 0; i < capacity + SPREAD; i++) {
    cursors.push((await broker.publish('history', { text: 'The quick brown fox jumps over the lazy dog.', seq: i })).cursor);
  }
  const picked = Array.from({ length: SPREAD }, (_, i) => cursors[cursors.length - 1 - behind - i]);
  for (let i = 0; i < 2_000; i++) await broker.poll('history', { cursor: picked[i % SPREAD], wait: 0 });
  const start = process.hrtime.bigint();
  for (let i = 0; i < polls; i++) await broker.poll('history', { cursor: picked[i % SPREAD], wait: 0 });
  const elapsed = Number(process.hrtime.bigint() - start);
  await broker.close();
  return elapsed / polls;
}

/**
 * @param {{ rounds: number, polls: number }} plan
 * @returns {Promise<{ behind: number, capacity: number, nsPerPoll: number }[]>}
 */
export async function measureHistory(plan) {
  /** @type {Map<string, number[]>} */
  const samples = new Map();
  const cases = [10, 90];
  for (let round = 0; round < plan.rounds; round++) {
    for (const behind of cases) {
      for (const capacity of round % 2 ? [...CAPACITIES].reverse() : CAPACITIES) {
        const key = `${behind} ${capacity}`;
        samples.set(key, [...(samples.get(key) ?? []), await nanosecondsPerPoll(capacity, behind, plan.polls)]);
      }
    }
  }
  const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
  return cases.flatMap((behind) =>
    CAPACITIES.map((capacity) => ({ behind, capacity, nsPerPoll: median(samples.get(`${behind} ${capacity}`) ?? []) })),
  );
}
