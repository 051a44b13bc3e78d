/**
 * A minimal typed event emitter for the client. `node:events` does not exist in browsers and
 * `EventTarget` would wrap every payload in an Event, so the client carries its own: listeners
 * in insertion order, `once`, and a listener that throws never stops the others or the caller:
 * its error goes to `onListenerError`.
 */
export type EventMap<Events> = { [E in keyof Events]: (...args: never[]) => void };

type Listener = (...args: never[]) => void;

export class Emitter<Events extends EventMap<Events>> {
  readonly #listeners = new Map<keyof Events, Set<Listener>>();
  /** A `once` wrapper → the listener it wraps, so `off(event, listener)` finds the wrapper. */
  readonly #wrapped = new WeakMap<Listener, Listener>();
  readonly #onListenerError: (error: unknown, event: keyof Events) => void;

  constructor(onListenerError: (error: unknown, event: keyof Events) => void) {
    this.#onListenerError = onListenerError;
  }

  on<E extends keyof Events>(event: E, listener: Events[E]): void {
    let listeners = this.#listeners.get(event);
    if (!listeners) this.#listeners.set(event, (listeners = new Set()));
    listeners.add(listener);
  }

  off<E extends keyof Events>(event: E, listener: Events[E]): void {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    for (const entry of listeners) {
      if (entry === listener || this.#wrapped.get(entry) === listener) listeners.delete(entry);
    }
  }

  once<E extends keyof Events>(event: E, listener: Events[E]): void {
    const wrapper = ((...args: Parameters<Events[E]>) => {
      this.#listeners.get(event)?.delete(wrapper);
      (listener as (...args: Parameters<Events[E]>) => void)(...args);
    }) as Events[E];
    this.#wrapped.set(wrapper, listener);
    this.on(event, wrapper);
  }

  /** Whether `event` has a listener. */
  has(event: keyof Events): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0;
  }

  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    // A copy: a listener may remove itself (once) or others while we iterate.
    for (const listener of [...listeners]) {
      try {
        (listener as (...args: Parameters<Events[E]>) => void)(...args);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}
