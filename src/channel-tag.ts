/**
 * A channel's short tag, part of every cursor both engines issue: it names the channel without
 * spelling it out, so a cursor used on another channel is `invalid_cursor`.
 */

/** FNV-1a, 32 bits: a few lines, no dependency, and only ever compared with itself. */
export function hashOf(channel: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < channel.length; i++) {
    hash ^= channel.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The tag of a channel in a cursor: its hash in base 36. */
export function tagOf(channel: string): string {
  return hashOf(channel).toString(36);
}
