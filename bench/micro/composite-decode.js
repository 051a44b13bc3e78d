/**
 * decodeCursors, the composite cursor of a poll over 10 channels as the client got it back
 * (entries in the list's order): each entry compared with the key of the listed channel after
 * the last one matched, a map of the listed keys made only for an entry out of that order. The
 * alternative is that map made for every cursor, as before (its code copied here, using the
 * production `keyOf`).
 */
import { decodeCursors, encodeCursors, keyOf } from '../../dist/composite-cursor.js';
import { compare } from './harness.js';

const KEY = /^[0-9a-z]{1,7}_[0-9a-z]{1,7}$/;

/** The previous decodeCursors: a map of the listed keys for every cursor. */
function decodeWithMap(composite, channels) {
  const cursors = new Array(channels.length).fill(undefined);
  const listed = new Map();
  for (let i = 0; i < channels.length; i++) {
    const key = keyOf(channels[i]);
    listed.set(key, listed.has(key) ? -1 : i);
  }
  for (let start = 0; start <= composite.length; ) {
    const separator = composite.indexOf('~', start);
    const end = separator === -1 ? composite.length : separator;
    const dot = composite.indexOf('.', start);
    if (dot === -1 || dot >= end - 1) throw new Error('not ours');
    const key = composite.slice(start, dot);
    const index = listed.get(key);
    if (index === undefined) {
      if (!KEY.test(key)) throw new Error('not ours');
    } else if (index !== -1) cursors[index] = composite.slice(dot + 1, end);
    start = end + 1;
  }
  return cursors;
}

/** 64 lists of 10 of 40 channels, each with its composite cursor; every name and cursor its own string, as a URL parser makes them. */
const copy = (text) => JSON.parse(JSON.stringify(text));
const requests = Array.from({ length: 64 }, (_, r) => {
  const list = Array.from({ length: 10 }, (_, k) => `room.${(r + k * 3) % 40}`);
  const composite = encodeCursors(list, list.map((_, k) => `MIKXQ7.${k.toString(36)}x1.${(1000 + r).toString(36)}`));
  return { list, composite };
});
const fresh = Array.from({ length: 1024 }, (_, i) => ({ list: requests[i & 63].list.map(copy), composite: copy(requests[i & 63].composite) }));

const decodes = (decode) => (n) => {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const { list, composite } = fresh[i & 1023];
    sum += decode(composite, list)[9].length;
  }
  return sum;
};

compare(
  'decode a 10-channel composite cursor in its list order',
  { name: 'the next listed key compared first', run: decodes(decodeCursors) },
  { name: 'a map of the listed keys per cursor', run: decodes(decodeWithMap) },
);
