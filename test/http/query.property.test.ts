import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseQuery } from '../../src/http/params.js';

/** The parameters the protocol reads, and one it does not. */
const NAMES = ['channels', 'cursor', 'wait', 'limit', 'other'];

/** Text made of the characters that matter to a query's decoding, and some that do not. */
const piece = fc.oneof(
  fc.constantFrom('%', '+', '&', '=', '?', '%2C', '%2B', '%25', '%E2%82%AC', '%E2%82', '%C0%80', '%ED%A0%80', '%zz', '%4', ',', '~', '.', 'é', '€', '😀', ' '),
  fc.constantFrom(...NAMES, ...NAMES.map((name) => encodeURIComponent(name).replace('c', '%63'))),
  fc.string({ maxLength: 4 }),
);
const text = fc.array(piece, { maxLength: 24 }).map((pieces) => pieces.join(''));

describe('parseQuery', () => {
  it('reads the protocol parameters of any query exactly as URLSearchParams does', () => {
    fc.assert(
      fc.property(fc.boolean(), text, (question, query) => {
        const search = question ? `?${query}` : query;
        const ours = parseQuery(search);
        const theirs = new URLSearchParams(search);
        for (const name of ['channels', 'cursor', 'wait', 'limit']) {
          expect(ours.getAll(name)).toEqual(theirs.getAll(name));
          expect(ours.has(name)).toBe(theirs.has(name));
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it('decodes a many-channel query as URLSearchParams does', () => {
    const search = `?channels=${encodeURIComponent('room.1,room.2,a+b')}&wait=25&cursor=k_1.X.y~k_2.X.z&limit=5&channels=`;
    const ours = parseQuery(search);
    expect(ours.getAll('channels')).toEqual(['room.1,room.2,a+b', '']);
    expect(ours.getAll('cursor')).toEqual(['k_1.X.y~k_2.X.z']);
    expect(ours.getAll('wait')).toEqual(['25']);
    expect(ours.has('other')).toBe(false);
  });
});
