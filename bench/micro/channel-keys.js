/**
 * The keys of a many-channel poll's channels in its composite cursor (`keyOf`,
 * src/composite-cursor.ts): remembered for the last 4,096 names, against computing both hashes
 * every time, which is what the same code does when the names it is given keep missing (here,
 * by cycling through 8,192 names; so the alternative also pays the cache's upkeep, the trick's
 * worst case). A request keys its 10 channels about 30 times.
 */
import { decodeComposite, encodeComposite, keyOf } from '../../dist/composite-cursor.js';
import { compare } from './harness.js';

const list = Array.from({ length: 10 }, (_, i) => `room.${i * 4}`);
const composite = encodeComposite(new Map(list.map((channel, i) => [channel, `EPOCH00000.${i}.1a`])));
const misses = Array.from({ length: 8192 }, (_, i) => Array.from({ length: 10 }, (_, k) => `miss.${i}.${k}`));
const missComposite = misses.map((names) => encodeComposite(new Map(names.map((channel, i) => [channel, `EPOCH00000.${i}.1a`]))));

compare(
  'decoding the composite cursor of a 10-channel poll',
  {
    name: 'keys remembered (the same 10 names)',
    run: (n) => {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += decodeComposite(composite, list).size + keyOf(list[i % 10]).length;
      return sum;
    },
  },
  {
    name: 'keys computed (names that keep missing)',
    run: (n) => {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const j = i % 8192;
        sum += decodeComposite(missComposite[j], misses[j]).size + keyOf(misses[j][i % 10]).length;
      }
      return sum;
    },
  },
);
