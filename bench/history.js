/**
 * Figure 5, in process: what one poll after a cursor costs when the channel's history is at
 * capacity 100 and at capacity 10,000. A cursor is found by binary search in the ring, so the
 * cost must stay flat, not grow with the capacity.
 *
 * Both histories are filled first, then timed in alternating batches of polls, so that both pay
 * the same garbage collector: timed one after the other, whichever ran while the collector was
 * still busy with the 10,000 publishes that filled the large history, or while the young
 * generation was still small, came out up to twice as slow, in either order. No collection is
 * forced (a forced collection shrinks the young generation and slows what follows). Each round
 * is a fresh pair of brokers; the median of the rounds is reported.
 */
import { Broker } from 'longpoll-kit';

const CAPACITIES = [100, 10_000];
/** Distinct cursors cycled through, so no poll is answered from the engine's last-read memo. */
const SPREAD = 8;
/** Polls per batch: short enough that the two capacities see the same collector state. */
const BATCH = 500;

/**
 * A broker whose channel holds `capacity` messages, and the cursors `behind` messages back.
 * @param {number} capacity
 * @param {number} behind
 */
async function filled(capacity, behind) {
  const broker = new Broker({ capacity, maxAge: Number.POSITIVE_INFINITY });
  const cursors = [];
  for (let i = 0; i < capacity + SPREAD; i++) {
    cursors.push((await broker.publish('history', { text: 'The quick brown fox jumps over the lazy dog.', seq: i })).cursor);
  }
  const picked = Array.from({ length: SPREAD }, (_, i) => cursors[cursors.length - 1 - behind - i]);
  return { broker, picked };
}

/**
 * Nanoseconds per poll at each capacity (by index of {@link CAPACITIES}), timed in alternating
 * batches.
 * @param {number} behind how many messages after the cursor
 * @param {number} polls per capacity
 * @param {boolean} reversed which capacity's batch comes first
 */
async function nanosecondsPerPoll(behind, polls, reversed) {
  const setups = [];
  for (const capacity of CAPACITIES) setups.push(await filled(capacity, behind));
  const order = reversed ? [1, 0] : [0, 1];
  const elapsed = [0, 0];
  const batch = async ({ broker, picked }) => {
    let count = 0;
    let expected = 0;
    const start = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) count += (await broker.poll('history', { cursor: picked[i % SPREAD], wait: 0 })).messages.length;
    const ns = Number(process.hrtime.bigint() - start);
    // The i-th of the picked cursors is behind + i messages back.
    for (let i = 0; i < BATCH; i++) expected += behind + (i % SPREAD);
    if (count !== expected) throw new Error(`history: ${count} messages, expected ${expected}`);
    return ns;
  };
  for (let i = 0; i < 2_000 / BATCH; i++) for (const k of order) await batch(setups[k]);
  for (let i = 0; i < polls / BATCH; i++) for (const k of order) elapsed[k] += await batch(setups[k]);
  for (const { broker } of setups) await broker.close();
  return elapsed.map((ns) => ns / polls);
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
      const perCapacity = await nanosecondsPerPoll(behind, plan.polls, round % 2 === 1);
      CAPACITIES.forEach((capacity, k) => {
        const key = `${behind} ${capacity}`;
        samples.set(key, [...(samples.get(key) ?? []), perCapacity[k]]);
      });
    }
  }
  const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
  return cases.flatMap((behind) =>
    CAPACITIES.map((capacity) => ({ behind, capacity, nsPerPoll: median(samples.get(`${behind} ${capacity}`) ?? []) })),
  );
}
