/**
 * The core of longpoll-kit: the {@link Broker}, the {@link ConnectionLimiter}, the embedded
 * {@link MemoryEngine}, the error class and the types engines implement.
 *
 * @packageDocumentation
 * @module longpoll-kit
 */
export { Broker, type BrokerOptions, type BrokerStats } from './broker.js';
export type { BrokerEvents, Delivery, Eviction } from './broker-events.js';
export type { PollOptions, PollResult, ReadOptions } from './poll.js';
export type {
  Batch,
  Cursor,
  Engine,
  EngineListener,
  EngineStats,
  EvictReason,
  JsonValue,
  Message,
  PublishedMessage,
} from './engine.js';
export { errorStatus, LongPollError, type LimitKind, type LongPollErrorCode, type LongPollErrorOptions } from './errors.js';
export {
  ConnectionLimiter,
  Lease,
  type LeaseRequest,
  type LimiterEvents,
  type LimiterOptions,
  type LimiterStats,
  type RateOptions,
  type Refusal,
} from './limiter.js';
export { MemoryEngine, type MemoryEngineOptions, type MemoryEngineStats } from './memory-engine.js';
