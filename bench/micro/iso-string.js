/**
 * MemoryEngine's `publishedAt`: `isoStringOf` (the part up to the second made once per second)
 * against `new Date(now).toISOString()`, with publishes one millisecond apart (a second's prefix
 * serves a thousand) and one second apart (every call makes a new prefix: the trick's worst case).
 */
import { isoStringOf } from '../../dist/memory-engine.js';
import { compare } from './harness.js';

for (const step of [1, 1000]) {
  const start = Date.UTC(2030, 0, 1, 12, 0, 0, 7);
  for (let now = start; now < start + 3000 * step; now += step * 7) {
    if (isoStringOf(now) !== new Date(now).toISOString()) throw new Error(`isoStringOf(${now}) differs`);
  }
  let now = start;
  compare(
    `publishedAt, publishes ${step === 1 ? 'a millisecond' : 'a second'} apart`,
    {
      name: 'isoStringOf(now)',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += isoStringOf((now += step)).charCodeAt(22);
        return sum;
      },
    },
    {
      name: 'new Date(now).toISOString()',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += new Date((now += step)).toISOString().charCodeAt(22);
        return sum;
      },
    },
  );
}
