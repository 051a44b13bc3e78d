import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Broker, MemoryEngine } from '../src/index.js';
import { frozenCopy } from '../src/json.js';

/** Every object and array in `value` is frozen. */
function deeplyFrozen(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return true;
  return Object.isFrozen(value) && Object.values(value).every(deeplyFrozen);
}

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

/** Values whose JSON form is themselves, and values whose JSON form is not (the slow path). */
const awkward = fc.oneof(
  fc.constant(undefined),
  fc.constant(Number.NaN),
  fc.constant(Number.POSITIVE_INFINITY),
  fc.constant(-0),
  fc.constant(new Date(0)),
  fc.constant(new Point(1, 2)),
  fc.constant({ toJSON: () => 'custom' }),
  fc.constant(Object.assign(Object.create(null) as object, { bare: 1 })),
  fc.constant(JSON.parse('{"__proto__":{"polluted":1}}') as unknown),
  fc.constant([1, , 3]), // eslint-disable-line no-sparse-arrays
  fc.constant({ 2: 'b', 1: 'a', z: 0, a: 1 }),
  fc.constant(() => 1),
);
const values = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.jsonValue({ maxDepth: 2 }),
    awkward,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string(), tie('value'), { maxKeys: 4 }),
  ),
})).value;

describe('frozenCopy', () => {
  it('copies plain JSON data as JSON would, deeply frozen, and leaves the rest to JSON', () => {
    fc.assert(
      fc.property(values, (value) => {
        const copy = frozenCopy(value);
        if (copy === undefined) return; // the broker serialises and parses instead
        const text = JSON.stringify(value);
        expect(JSON.stringify(copy)).toBe(text);
        expect(copy).toStrictEqual(JSON.parse(text));
        expect(deeplyFrozen(copy)).toBe(true);
        if (typeof value === 'object' && value !== null) expect(copy).not.toBe(value);
      }),
      { numRuns: 2000 },
    );
  });

  it('declines what JSON would change or refuse', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    const inherited = Object.create({ inherited: 1 }) as Record<string, unknown>;
    inherited.own = 2;
    for (const value of [undefined, Number.NaN, -0, new Date(0), new Point(1, 2), [1, , 3], { a: undefined }, cycle, deep, inherited, 10n]) { // eslint-disable-line no-sparse-arrays
      expect(frozenCopy(value)).toBeUndefined();
    }
    expect(frozenCopy(JSON.parse('{"__proto__":{"polluted":1}}'))).toBeUndefined();
    expect(frozenCopy({ 2: 'b', 1: 'a', z: [true, null, 'x', 1.5] })).toStrictEqual({ 1: 'a', 2: 'b', z: [true, null, 'x', 1.5] });
  });
});

describe('Broker.publish and the text HTTP answers are made from', () => {
  it('stores what JSON.parse(JSON.stringify(data)) gives, frozen, with text that matches it, for any data', async () => {
    const engine = new MemoryEngine({ capacity: 10 });
    const broker = new Broker<unknown>({ engine });
    try {
      await fc.assert(
        fc.asyncProperty(values, async (value) => {
          const text = JSON.stringify(value) as string | undefined;
          if (text === undefined) {
            await expect(broker.publish('c', value)).rejects.toMatchObject({ code: 'invalid_payload' });
            return;
          }
          const published = await broker.publish('c', value);
          expect(published.data).toStrictEqual(JSON.parse(text));
          expect(deeplyFrozen(published.data)).toBe(true);
          const { cursor } = published;
          const result = await broker.read('c', { cursor: undefined, limit: 1000 });
          const last = result.messages.at(-1)!;
          expect(last.id).toBe(published.id);
          // The engine's text of the batch is what serialising its messages gives.
          expect((await engine.read('c', undefined, 1000)).json).toBe(JSON.stringify(result.messages));
          expect(result.cursor).toBe(cursor);
        }),
        { numRuns: 500 },
      );
    } finally {
      await broker.close();
    }
  });

  it('fails with invalid_payload when reading the payload throws', async () => {
    const broker = new Broker<unknown>();
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const throwing = {
      get x(): number {
        throw new Error('boom');
      },
    };
    for (const data of [throwing, proxy, [throwing]]) {
      await expect(broker.publish('c', data)).rejects.toMatchObject({ code: 'invalid_payload', status: 400 });
    }
    expect(broker.stats().messages).toBe(0);
    await broker.close();
  });

  it('keeps the text in the order of the stored value, whatever order a Proxy lists its keys in', async () => {
    const engine = new MemoryEngine();
    const broker = new Broker<unknown>({ engine });
    const target = { b: 1, 1: 2, d: new Date(0) };
    const data = new Proxy(target, { ownKeys: () => ['b', '1', 'd'] });
    await broker.publish('c', data);
    const result = await broker.read('c');
    expect((await engine.read('c', undefined, 100)).json).toBe(JSON.stringify(result.messages));
    expect(result.messages[0]!.data).toEqual({ 1: 2, b: 1, d: '1970-01-01T00:00:00.000Z' });
    await broker.close();
  });

  it('keeps the published copy apart from the caller\'s object, which stays unfrozen', async () => {
    const broker = new Broker<unknown>();
    const data = { list: [1, 2], nested: { a: 'b' } };
    const published = await broker.publish('c', data);
    data.list.push(3);
    data.nested.a = 'changed';
    expect(Object.isFrozen(data)).toBe(false);
    expect(published.data).toEqual({ list: [1, 2], nested: { a: 'b' } });
    const { messages } = await broker.read('c');
    expect(messages[0]!.data).toEqual({ list: [1, 2], nested: { a: 'b' } });
    await broker.close();
  });
});
