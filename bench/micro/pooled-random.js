/**
 * MemoryEngine's ids: ulid's monotonic factory with `pooledRandom` (random bytes drawn 512 at a
 * time) against ulid's default random source (one `crypto.getRandomValues` call per character).
 * A monotonic factory draws randomness only for an id in a new millisecond (later ids of the same
 * millisecond increment the previous one), so it is measured with each id in a new millisecond,
 * and with ten ids per millisecond.
 */
import { monotonicFactory } from 'ulid';
import { pooledRandom } from '../../dist/memory-engine.js';
import { compare } from './harness.js';

/** `n` ids, `perMillisecond` to a millisecond, from `factory`. */
function ids(factory, perMillisecond) {
  let now = Date.now();
  return (n) => {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      if (i % perMillisecond === 0) now++;
      sum += factory(now).charCodeAt(25);
    }
    return sum;
  };
}

for (const perMillisecond of [1, 10]) {
  compare(
    `ulid, ${perMillisecond} id${perMillisecond === 1 ? '' : 's'} per millisecond`,
    { name: 'monotonicFactory(pooledRandom)', run: ids(monotonicFactory(pooledRandom), perMillisecond) },
    { name: "monotonicFactory() (ulid's default PRNG)", run: ids(monotonicFactory(), perMillisecond) },
  );
}
