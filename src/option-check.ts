import { LongPollError } from './errors.js';

/**
 * Throws `invalid_option` unless `valid`: one wording for every constructor and factory that
 * checks its options ("MemoryEngine option capacity must be a positive integer, got 0").
 *
 * @param owner - what takes the option: `MemoryEngine`, `RedisEngine`, `longPoll`…
 */
export function checkOption(valid: boolean, owner: string, name: string, value: unknown, expected: string): void {
  if (!valid) throw new LongPollError('invalid_option', `${owner} option ${name} must be ${expected}, got ${String(value)}`);
}
