/** A request's own signal: aborted by its parent (the subscription closing) or by its deadline. */
export interface RequestDeadline {
  readonly signal: AbortSignal;
  /**
   * Replaces the deadline by one `ms` from now (the body made progress: give it more time);
   * `what` says what a timeout then means.
   */
  extend(ms: number, what?: string): void;
  /** Stops the clock until the next `extend` (the client itself stopped reading, on purpose). */
  suspend(): void;
  /**
   * Clears the timer and detaches from the parent, so nothing outlives the request; aborts the
   * request too, which frees its connection if the answer was not read to the end.
   */
  release(): void;
}

/**
 * A clearable timer combined with the subscription's signal. `AbortSignal.any` and
 * `AbortSignal.timeout` would do the combining, but the timeout's timer cannot be cleared and
 * `any` keeps the parent's listener until garbage collection.
 */
export function requestDeadline(parent: AbortSignal, ms: number, what = 'No answer'): RequestDeadline {
  const controller = new AbortController();
  const arm = (limit: number, what: string) =>
    setTimeout(() => controller.abort(new DOMException(`${what} within ${limit} ms`, 'TimeoutError')), limit);
  let timer = arm(ms, what);
  const onAbort = () => {
    clearTimeout(timer);
    controller.abort(parent.reason);
  };
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    extend(limit, stalled = 'The answer stalled: no progress') {
      if (controller.signal.aborted) return;
      clearTimeout(timer);
      timer = arm(limit, stalled);
    },
    suspend() {
      clearTimeout(timer);
    },
    release() {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
      controller.abort();
    },
  };
}
