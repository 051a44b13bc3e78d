/** A request's own signal: aborted by its parent (the subscription closing) or by its deadline. */
export interface RequestDeadline {
  readonly signal: AbortSignal;
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
export function requestDeadline(parent: AbortSignal, ms: number): RequestDeadline {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`No answer within ${ms} ms`, 'TimeoutError')), ms);
  const onAbort = () => {
    clearTimeout(timer);
    controller.abort(parent.reason);
  };
  if (parent.aborted) onAbort();
  else parent.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    release() {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
      controller.abort();
    },
  };
}
