import type { JsonValue } from './engine.js';
import { LongPollError } from './errors.js';

/**
 * Parses a stored payload into a deeply frozen value. Every subscriber of a channel receives the
 * same objects, so one consumer that changes a message must not change what the others see; a
 * frozen value makes such a change throw (in strict code) instead of silently spreading.
 *
 * @internal Shared by the engines.
 */
export function parseFrozen(json: string): JsonValue {
  return freeze(JSON.parse(json) as JsonValue);
}

// Indexed and for…in loops rather than Object.keys(): no key array per object
// (bench/micro/freeze.js). JSON.parse makes only plain objects and arrays, with no inherited
// enumerable keys.
function freeze(value: JsonValue): JsonValue {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) freeze(value[i]!);
  } else {
    for (const key in value) freeze(value[key]!);
  }
  return Object.freeze(value) as JsonValue;
}

/** Deeper values take the slow path, which also tells a cycle from a deep value. */
const MAX_DEPTH = 64;
/** What {@link copyPlain} returns for a value it leaves to `JSON.stringify`. */
const UNSURE = Symbol('unsure');

/**
 * A deeply frozen copy of `value`, equal to `JSON.parse(JSON.stringify(value))`, made without
 * the text round trip; `undefined` when `value` holds anything whose JSON form is not itself
 * (a `toJSON` method such as a Date's, a class instance, `undefined`, a function, a non-finite
 * number or -0, an inherited enumerable key, a `__proto__` key, a cycle or great depth). The
 * caller then serialises and parses, which gives JSON's own answer, or its error.
 *
 * @internal Used by the Broker on every publish: a walk over plain data instead of a parse
 * (bench/micro/frozen-copy.js), and serialising the frozen copy afterwards makes the text and
 * the value agree even when a getter would answer differently the second time.
 */
export function frozenCopy(value: unknown): JsonValue | undefined {
  const copy = copyPlain(value, 0);
  return copy === UNSURE ? undefined : copy;
}

function copyPlain(value: unknown, depth: number): JsonValue | typeof UNSURE {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0) ? value : UNSURE;
    case 'object': {
      if (value === null) return null;
      if (depth === MAX_DEPTH) return UNSURE;
      const prototype: unknown = Object.getPrototypeOf(value);
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return UNSURE;
      if (prototype === Array.prototype) {
        const array = value as unknown[];
        const copy: JsonValue[] = new Array<JsonValue>(array.length);
        for (let i = 0; i < array.length; i++) {
          const item = copyPlain(array[i], depth + 1);
          if (item === UNSURE) return UNSURE;
          copy[i] = item;
        }
        return Object.freeze(copy) as JsonValue;
      }
      if (prototype !== Object.prototype && prototype !== null) return UNSURE;
      const object = value as Record<string, unknown>;
      const copy: Record<string, JsonValue> = {};
      for (const key in object) {
        // `copy.__proto__ = …` would set the prototype; JSON.parse makes an own property.
        if (key === '__proto__' || !Object.hasOwn(object, key)) return UNSURE;
        const item = copyPlain(object[key], depth + 1);
        if (item === UNSURE) return UNSURE;
        copy[key] = item;
      }
      return Object.freeze(copy);
    }
    default:
      return UNSURE;
  }
}

/**
 * The payload every subscriber receives, deeply frozen, and its JSON text, which always is the
 * serialisation of that frozen value. Plain data is copied by a walk and the copy serialised;
 * anything else (a Date, a `toJSON`…) is serialised and parsed back.
 *
 * @throws {@link LongPollError} `invalid_payload` when `data` is not JSON-serialisable
 */
export function payloadOf(data: unknown): { json: string; value: JsonValue } {
  let value: JsonValue | undefined;
  try {
    value = frozenCopy(data);
  } catch (error) {
    // A getter that throws, a revoked Proxy: JSON.stringify would have thrown too.
    throw notSerialisable((error as Error).message, error);
  }
  // On the slow path the text is made again from the parsed value, so that its keys come in the
  // value's order (a Proxy may list them otherwise).
  if (value === undefined) value = parseFrozen(serialise(data));
  return { json: JSON.stringify(value), value };
}

function serialise(data: unknown): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch (error) {
    throw notSerialisable((error as Error).message, error);
  }
  if (json === undefined) throw notSerialisable(typeof data);
  return json;
}

function notSerialisable(why: string, cause?: unknown): LongPollError {
  return new LongPollError('invalid_payload', `The payload is not JSON-serialisable: ${why}`, cause === undefined ? {} : { cause });
}
