import { hashOf } from './channel-tag.js';
import type { Cursor } from './engine.js';
import { LongPollError } from './errors.js';

/**
 * The cursor of a poll over many channels: one position per channel, in one opaque, URL-safe
 * string. Each entry is the channel's key (see {@link keyOf}), a `.`, and the engine's cursor
 * for that channel; entries are joined by `~`. The key lets a client change its channel list and
 * keep its cursor: an entry whose channel is no longer listed is dropped, and a listed channel
 * without an entry is read from everything retained.
 */

const SEPARATOR = '~';
const KEY = /^[0-9a-z]{1,7}_[0-9a-z]{1,7}$/;

/**
 * A second 32-bit hash of a channel name, independent of FNV-1a (`hashOf`): multiply-xorshift
 * steps and murmur3's finaliser.
 */
function secondHashOf(channel: string): number {
  let hash = 0x9e3779b9;
  for (let i = 0; i < channel.length; i++) {
    hash = Math.imul(hash ^ channel.charCodeAt(i), 0x5bd1e995);
    hash ^= hash >>> 15;
  }
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

/**
 * The key of a channel's entry (exported for its micro-benchmark): 64 bits of hash, not the engines' 32-bit tag alone. The entry
 * is matched to a listed channel by its key only, and the engine's cursor inside carries that
 * same 32-bit tag, so two channels whose tags collide (`c693596` and `c1170850` do) would take
 * each other's positions when the list is reordered or one of them leaves it: a silent gap.
 */
export function keyOf(channel: string): string {
  let key = keys.get(channel);
  if (key === undefined) {
    if (keys.size >= MAX_KEYS) keys.clear();
    key = `${hashOf(channel).toString(36)}_${secondHashOf(channel).toString(36)}`;
    keys.set(channel, key);
  }
  return key;
}

/**
 * The keys of channel names seen lately: a many-channel poll keys each of its channels several
 * times per request (bench/micro/channel-keys.js). At most {@link MAX_KEYS}, then cleared, so a
 * flood of names costs no memory beyond that.
 */
const keys = new Map<string, string>();
const MAX_KEYS = 4096;

/** Positions by channel: `undefined` reads everything retained. */
export type Positions = ReadonlyMap<string, Cursor | undefined>;

/**
 * The composite cursor of `channels` at `cursors` (the position of each, by index); channels
 * without a position are left out.
 */
export function encodeCursors(channels: readonly string[], cursors: readonly (Cursor | undefined)[]): Cursor {
  let composite = '';
  for (let i = 0; i < channels.length; i++) {
    const cursor = cursors[i];
    if (cursor === undefined) continue;
    if (composite !== '') composite += SEPARATOR;
    composite += `${keyOf(channels[i]!)}.${cursor}`;
  }
  return composite;
}

/** {@link encodeCursors} of positions by channel. */
export function encodeComposite(positions: Positions): Cursor {
  return encodeCursors([...positions.keys()], [...positions.values()]);
}

/** {@link decodeCursors} as positions by channel. */
export function decodeComposite(composite: Cursor | undefined, channels: readonly string[]): Map<string, Cursor | undefined> {
  const cursors = decodeCursors(composite, channels);
  return new Map(channels.map((channel, i) => [channel, cursors[i]]));
}

/**
 * The position of each of `channels` (by index) that `composite` names. Should two listed
 * channels ever share a key, neither takes an entry: both are read from everything retained,
 * which may repeat messages but never skips one.
 *
 * @throws {@link LongPollError} `invalid_cursor` when `composite` is not one this library made
 */
export function decodeCursors(composite: Cursor | undefined, channels: readonly string[]): (Cursor | undefined)[] {
  const cursors = new Array<Cursor | undefined>(channels.length).fill(undefined);
  if (composite === undefined || composite === '') return cursors;
  const keys = channels.map(keyOf);
  // The index of each listed channel by key; -1 for a key two of them share. One map, so that
  // a cursor's entries, which the client chooses, cost one lookup each whatever their number
  // (test/composite-cursor-cost.test.ts). The cursors this library makes list their entries in
  // the order of the channels, so for a short list of distinct keys each entry is first compared
  // with the key of the listed channel after the last one matched, and the map is made only for
  // an entry out of that order (bench/micro/composite-decode.js).
  let listed = keys.length > SHORT_LIST || !distinct(keys) ? indexByKey(keys) : undefined;
  let next = 0;
  for (let start = 0; start <= composite.length; ) {
    const separator = composite.indexOf(SEPARATOR, start);
    const end = separator === -1 ? composite.length : separator;
    const dot = composite.indexOf('.', start);
    if (dot === -1 || dot >= end - 1) throw notOurs();
    let index: number | undefined;
    const expected = listed === undefined ? keys[next] : undefined;
    if (expected !== undefined && dot - start === expected.length && composite.startsWith(expected, start)) {
      index = next;
    } else {
      listed ??= indexByKey(keys);
      const key = composite.slice(start, dot);
      index = listed.get(key);
      if (index === undefined && !KEY.test(key)) throw notOurs();
    }
    if (index !== undefined && index !== -1) {
      cursors[index] = composite.slice(dot + 1, end);
      next = index + 1;
    }
    start = end + 1;
  }
  return cursors;
}

/** Lists up to this long are checked for a shared key pair by pair, longer ones with a map. */
const SHORT_LIST = 16;

/** Whether no two of `keys` are equal. */
function distinct(keys: readonly string[]): boolean {
  for (let i = 1; i < keys.length; i++) for (let j = 0; j < i; j++) if (keys[i] === keys[j]) return false;
  return true;
}

/** The index of each key; -1 for a key listed twice. */
function indexByKey(keys: readonly string[]): Map<string, number> {
  const listed = new Map<string, number>();
  for (let i = 0; i < keys.length; i++) listed.set(keys[i]!, listed.has(keys[i]!) ? -1 : i);
  return listed;
}

function notOurs(): LongPollError {
  return new LongPollError('invalid_cursor', 'The cursor is not one this server issued');
}
