import { tagOf } from './channel-tag.js';
import type { Cursor } from './engine.js';
import { LongPollError } from './errors.js';

/**
 * The cursor of a poll over many channels: one position per channel, in one opaque, URL-safe
 * string. Each entry is the channel's tag (see `tagOf`), a `.`, and the engine's cursor for that
 * channel; entries are joined by `~`. The tag lets a client change its channel list and keep its
 * cursor: an entry whose channel is no longer listed is dropped, and a listed channel without
 * an entry is read from everything retained.
 */

const SEPARATOR = '~';
const TAG = /^[0-9a-z]{1,7}$/;

/** Positions by channel: `undefined` reads everything retained. */
export type Positions = ReadonlyMap<string, Cursor | undefined>;

/** The composite cursor of `positions`; channels without a position are left out. */
export function encodeComposite(positions: Positions): Cursor {
  const entries: string[] = [];
  for (const [channel, cursor] of positions) {
    if (cursor !== undefined) entries.push(`${tagOf(channel)}.${cursor}`);
  }
  return entries.join(SEPARATOR);
}

/**
 * The position of each of `channels` that `composite` names. Two listed channels with the same
 * tag (a 32-bit hash) take the entries in list order.
 *
 * @throws {@link LongPollError} `invalid_cursor` when `composite` is not one this library made
 */
export function decodeComposite(composite: Cursor | undefined, channels: readonly string[]): Map<string, Cursor | undefined> {
  const positions = new Map<string, Cursor | undefined>();
  for (const channel of channels) positions.set(channel, undefined);
  if (composite === undefined || composite === '') return positions;
  const byTag = new Map<string, string[]>();
  for (const channel of channels) {
    const tag = tagOf(channel);
    const same = byTag.get(tag);
    if (same) same.push(channel);
    else byTag.set(tag, [channel]);
  }
  for (const entry of composite.split(SEPARATOR)) {
    const dot = entry.indexOf('.');
    const tag = entry.slice(0, dot);
    const cursor = entry.slice(dot + 1);
    if (dot === -1 || !TAG.test(tag) || cursor === '') {
      throw new LongPollError('invalid_cursor', 'The cursor is not one this server issued');
    }
    const channel = byTag.get(tag)?.shift();
    if (channel !== undefined) positions.set(channel, cursor);
  }
  return positions;
}
