import { expect } from 'vitest';
import { LongPollError, type LongPollErrorCode } from '../../src/index.js';

/** Awaits `action` and returns the LongPollError it failed with, asserting its code if given. */
export async function rejection(action: Promise<unknown> | (() => unknown), code?: LongPollErrorCode): Promise<LongPollError> {
  let outcome: unknown;
  try {
    await (typeof action === 'function' ? action() : action);
  } catch (error) {
    outcome = error;
  }
  expect(outcome).toBeInstanceOf(LongPollError);
  if (code !== undefined) expect((outcome as LongPollError).code).toBe(code);
  return outcome as LongPollError;
}
