import type { EvictReason, JsonValue, PublishedMessage } from './engine.js';

/** The payload of the `deliver` event: one batch answered to one or more polls. */
export interface Delivery {
  /** The channel. */
  readonly channel: string;
  /** Messages in the batch. */
  readonly messages: number;
  /** Polls answered with it. */
  readonly polls: number;
}

/** The payload of the `evict` event. */
export interface Eviction {
  /** The channel. */
  readonly channel: string;
  /** Messages that left its history. */
  readonly count: number;
  /** Why they left: see {@link EvictReason}. */
  readonly reason: EvictReason;
}

/**
 * The events of a {@link Broker}, for metrics and logs. `error` is emitted only when someone
 * listens: an engine failure while waking held polls also rejects those polls, so an unheard
 * `error` loses nothing and never crashes the process.
 *
 * A listener that throws cannot break the broker: the poll or publish concerned completes as if
 * nobody listened, and the listener's error is emitted as `error` (or, when nobody listens for
 * `error`, as a process warning with code `LONGPOLL_LISTENER_ERROR`).
 */
export type BrokerEvents<T = JsonValue> = {
  /** A message was published through this broker. */
  publish: (message: PublishedMessage<T>) => void;
  /** A batch of messages answered `polls` polls. */
  deliver: (delivery: Delivery) => void;
  /** A held poll ran out of time with nothing new. */
  timeout: (channel: string) => void;
  /** Messages left a channel's history. */
  evict: (eviction: Eviction) => void;
  /** `close()` was called. */
  close: () => void;
  /**
   * The engine failed while held polls were being woken (those polls are rejected with it), a
   * listener of another event threw, or the engine reported an outage of its own (once per
   * outage: RedisEngine's connection that brings other instances' wake-ups dropped).
   */
  error: (error: Error) => void;
};
