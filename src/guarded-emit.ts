import { LongPollError } from './errors.js';

/** What {@link emitGuarded} uses of an event emitter. */
interface Emitter {
  emit(event: string, ...args: unknown[]): boolean;
  listenerCount(event: string): number;
}

/**
 * Emits `event` on `emitter`; a listener that throws is reported as `error` (or, when nobody
 * listens for `error`, as a process warning), never allowed to break the caller. The broker and
 * the limiter both report through it.
 */
export function emitGuarded(
  emitter: Emitter,
  source: string,
  event: string,
  ...args: unknown[]
): void {
  try {
    emitter.emit(event, ...args);
  } catch (error) {
    let unheard = error;
    let about = event;
    if (event !== 'error' && emitter.listenerCount('error') > 0) {
      try {
        emitter.emit('error', error instanceof Error ? error : LongPollError.from(error));
        return;
      } catch (again) {
        // The error listener threw too: that is what nobody heard.
        unheard = again;
        about = 'error';
      }
    }
    globalThis.process?.emitWarning?.(`A listener of the ${source}'s ${about} event threw: ${String(unheard)}`, {
      code: 'LONGPOLL_LISTENER_ERROR',
    });
  }
}
