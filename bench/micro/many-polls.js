/**
 * What bench/micro/many-wake.js and many-park.js share (not a benchmark): 200 clients, each
 * re-polling 10 of 40 channels (a different list each) as soon as it has its answer, resuming
 * from the answer's cursor, as HTTP clients do; and publishes on the channels in turn, each
 * waking a quarter of them.
 */
const CHANNELS = 40;
const POLLS = 200;
const channel = (i) => `room.${i}`;

/**
 * Holds the POLLS many-channel polls on `broker` (each asking `limit`, or the default) and
 * returns `run(n)`: n publishes, each awaited until every poll it woke has its answer and is held
 * again; returns the number of answers.
 * @param {import('../../dist/index.js').Broker} broker
 * @param {number} [limit]
 */
export async function manyPolls(broker, limit) {
  let answers = 0;
  const loop = async (list) => {
    let cursor;
    for (;;) {
      const result = await broker.pollMany(list, { cursor, wait: 60_000, limit }).catch(() => undefined);
      if (!result) return;
      cursor = result.cursor;
      answers++;
    }
  };
  for (let p = 0; p < POLLS; p++) void loop(Array.from({ length: 10 }, (_, k) => channel((p + k * 4) % CHANNELS)));
  while (broker.stats().waiters < POLLS) await new Promise((resolve) => setTimeout(resolve, 5));
  let next = 0;
  return async function run(n) {
    const before = answers;
    for (let i = 0; i < n; i++) {
      const target = answers + POLLS / 4;
      await broker.publish(channel(next++ % CHANNELS), { text: 'hello' });
      // Until every woken poll has its answer and is held again.
      while (answers < target || broker.stats().waiters < POLLS) await new Promise((resolve) => setImmediate(resolve));
    }
    return answers - before;
  };
}
