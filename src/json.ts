import type { JsonValue } from './engine.js';

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

function freeze(value: JsonValue): JsonValue {
  if (typeof value !== 'object' || value === null) return value;
  for (const key of Object.keys(value)) freeze((value as Record<string, JsonValue>)[key]!);
  return Object.freeze(value) as JsonValue;
}
