/**
 * decodeCursors against a reference that looks every entry up in one map of the listed keys (what
 * it did before it compared each entry with the next listed key first, for short lists of
 * distinct keys): the same positions, or the same `invalid_cursor`, for any list (short, long,
 * with a channel listed twice, which is what two channels sharing a key look like) and any
 * composite cursor (entries of listed and unlisted channels in any order, repeated, malformed,
 * keys that are a prefix or an extension of a listed key).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCursors, encodeCursors, keyOf } from '../src/composite-cursor.js';
import { LongPollError } from '../src/index.js';

const KEY = /^[0-9a-z]{1,7}_[0-9a-z]{1,7}$/;

/** decodeCursors as it was at 716e694: one map of the listed keys, each entry looked up in it. */
function reference(composite: string | undefined, channels: readonly string[]): (string | undefined)[] {
  const cursors = new Array<string | undefined>(channels.length).fill(undefined);
  if (composite === undefined || composite === '') return cursors;
  const listed = new Map<string, number>();
  for (let i = 0; i < channels.length; i++) {
    const key = keyOf(channels[i]!);
    listed.set(key, listed.has(key) ? -1 : i);
  }
  for (let start = 0; start <= composite.length; ) {
    const separator = composite.indexOf('~', start);
    const end = separator === -1 ? composite.length : separator;
    const dot = composite.indexOf('.', start);
    if (dot === -1 || dot >= end - 1) throw new LongPollError('invalid_cursor', 'reference');
    const key = composite.slice(start, dot);
    const index = listed.get(key);
    if (index === undefined) {
      if (!KEY.test(key)) throw new LongPollError('invalid_cursor', 'reference');
    } else if (index !== -1) {
      cursors[index] = composite.slice(dot + 1, end);
    }
    start = end + 1;
  }
  return cursors;
}

type Outcome = { cursors: (string | undefined)[] } | { code: string };

function outcomeOf(decode: () => (string | undefined)[]): Outcome {
  try {
    return { cursors: decode() };
  } catch (error) {
    // Anything but a LongPollError fails the comparison: it would be a 500, not a 400.
    if (!(error instanceof LongPollError)) throw error;
    return { code: error.code };
  }
}

/**
 * Channel names: short ones, `c693596` and `c1170850` (the same 32-bit tag, so keys with the
 * same first half), `__proto__`, and names of any text.
 */
const POOL = ['a', 'b', 'c', 'room.1', 'room.2', 'c693596', 'c1170850', '__proto__', 'constructor', '', '~', '.', 'a.b~c'];
const channel = fc.oneof(fc.constantFrom(...POOL), fc.string({ maxLength: 6 }));
/** Lists around the length where the map takes over (16), sometimes with a channel twice. */
const list = fc.oneof(
  fc.uniqueArray(channel, { minLength: 0, maxLength: 20 }),
  fc.array(channel, { minLength: 1, maxLength: 20 }),
  fc.uniqueArray(channel, { minLength: 14, maxLength: 18 }),
);

/** A cursor value: what a position looks like, or any text without the separator. */
const value = fc.oneof(
  fc.constantFrom('X.t.1', 'EPOCH00000.abc.z', '1', '..', 'a.b.c'),
  fc.string({ maxLength: 8 }).map((text) => text.replaceAll('~', '')),
);

/** The key of one entry, given the list: a listed key, an unlisted one, or something malformed. */
function keyOfEntry(channels: readonly string[]): fc.Arbitrary<string> {
  const listed = channels.map(keyOf);
  const options: fc.Arbitrary<string>[] = [
    fc.constantFrom('zz_zz', keyOf('elsewhere'), keyOf('c693596'), keyOf('c1170850')),
    fc.constantFrom('', '_', 'A_b', 'abcdefgh_a', 'a_abcdefgh', 'ab', 'a__b', 'a_b_c', '%61_b', ' a_b'),
    fc.string({ maxLength: 9 }).map((text) => text.replaceAll('~', '').replaceAll('.', '')),
  ];
  if (listed.length > 0) {
    const one = fc.constantFrom(...listed);
    options.push(
      one,
      one,
      one,
      // Keys that share a prefix with a listed one: shorter, longer, one character off.
      one.map((key) => key.slice(0, -1)),
      one.map((key) => `${key}0`),
      one.map((key) => `0${key}`),
      one.map((key) => `${key.slice(0, -1)}${key.endsWith('0') ? '1' : '0'}`),
      one.map((key) => key.toUpperCase()),
    );
  }
  return fc.oneof(...options);
}

/** A composite cursor for `channels`: entries in any order, repeated, malformed. */
function compositeFor(channels: readonly string[]): fc.Arbitrary<string> {
  const entry = fc.oneof(
    { weight: 8, arbitrary: fc.tuple(keyOfEntry(channels), value).map(([key, position]) => `${key}.${position}`) },
    // No dot, an empty position, an empty entry.
    { weight: 1, arbitrary: keyOfEntry(channels) },
    { weight: 1, arbitrary: keyOfEntry(channels).map((key) => `${key}.`) },
    { weight: 1, arbitrary: fc.constant('') },
  );
  // What this library makes: every listed channel in list order, some left out.
  const made = fc
    .array(fc.option(value, { nil: undefined }), { minLength: channels.length, maxLength: channels.length })
    .map((cursors) => encodeCursors(channels, cursors));
  const entries = fc.array(entry, { maxLength: 24 }).map((parts) => parts.join('~'));
  return fc.oneof(
    entries,
    made,
    // A made cursor with hostile entries before, inside or after it.
    fc.tuple(made, entries, fc.nat()).map(([good, bad, at]) => {
      const parts = good === '' ? [] : good.split('~');
      const i = parts.length === 0 ? 0 : at % (parts.length + 1);
      return [...parts.slice(0, i), ...(bad === '' ? [] : [bad]), ...parts.slice(i)].join('~');
    }),
    fc.string({ maxLength: 40 }),
  );
}

describe('decodeCursors, differential against one map of the listed keys', () => {
  it('gives the same positions, or the same invalid_cursor, for any list and any composite cursor', () => {
    fc.assert(
      fc.property(
        list.chain((channels) => fc.tuple(fc.constant(channels), compositeFor(channels))),
        ([channels, composite]) => {
          const expected = outcomeOf(() => reference(composite, channels));
          const actual = outcomeOf(() => decodeCursors(composite, channels));
          expect(actual).toEqual(expected);
          if ('code' in actual) expect(actual.code).toBe('invalid_cursor');
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('never gives a position to a channel whose key another listed channel shares', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(channel, { minLength: 1, maxLength: 16 }),
        fc.nat(),
        fc.nat(),
        (distinct, which, where) => {
          // A channel listed twice is what two channels sharing a key look like.
          const twice = distinct[which % distinct.length]!;
          const channels = [...distinct];
          channels.splice(where % (channels.length + 1), 0, twice);
          const composite = encodeCursors(distinct, distinct.map((_, i) => `X.t.${i.toString(36)}`));
          const cursors = decodeCursors(composite, channels);
          for (const [i, name] of channels.entries()) {
            if (keyOf(name) === keyOf(twice)) expect(cursors[i]).toBeUndefined();
            else expect(cursors[i]).toBe(`X.t.${distinct.indexOf(name).toString(36)}`);
          }
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('reads back what encodeCursors made, for any reordering or subset of the list', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(channel, { minLength: 1, maxLength: 20 }),
        fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
        (channels, keep) => {
          const cursors = channels.map((_, i) => (i % 3 === 2 ? undefined : `X.t.${i.toString(36)}`));
          const composite = encodeCursors(channels, cursors);
          const subset = channels.filter((_, i) => keep[i]).reverse();
          subset.push('unlisted before');
          expect(decodeCursors(composite, subset)).toEqual(subset.map((name) => (channels.includes(name) ? cursors[channels.indexOf(name)] : undefined)));
          expect(decodeCursors(composite, channels)).toEqual(cursors);
        },
      ),
      { numRuns: 5_000 },
    );
  });
});
