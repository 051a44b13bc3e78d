/**
 * A long-polling subscriber for browsers and Node: it resumes from the last cursor, backs off
 * with full jitter, honours `Retry-After`, rehydrates after `cursor_expired`, drops messages it
 * already delivered, and reads as an async iterator with backpressure. A broken or hostile
 * server cannot make it poll in a tight loop or read more than `maxBodyBytes` of one answer. It
 * follows one channel or many in one request (`channels`), by long polling or as a Server-Sent
 * Events stream read through `fetch` (`transport: 'sse'`). It imports nothing Node-only, so the
 * built file loads in a browser as an ES module, without a bundler.
 *
 * @example
 * ```ts
 * import { subscribe } from 'longpoll-kit/client';
 *
 * const sub = subscribe<{ text: string }>('/channels/room:1');
 * for await (const message of sub) console.log(message.data.text);
 * ```
 *
 * @packageDocumentation
 * @module longpoll-kit/client
 */
import type { JsonValue } from '../engine.js';
import type { SubscribeOptions } from './options.js';
import { Subscription } from './subscription.js';

export type { Cursor, JsonValue, Message } from '../engine.js';
export { LongPollError } from '../errors.js';
export type { BackoffOptions, Fetch, HeadersInput, SubscribeOptions } from './options.js';
export { Subscription, type ResetEvent, type SubscriptionEvents } from './subscription.js';
export { SubscriptionError } from './subscription-error.js';

/**
 * Subscribes to a channel's URL (`{origin}{prefix}/{channel}`), or with the `channels` option
 * to the prefix's URL (`{origin}{prefix}`), and starts polling (or streaming, with
 * `transport: 'sse'`) at once.
 * Throws `LongPollError` with code `invalid_option` for an option that cannot work, or a URL
 * that is not one (outside a browser, a relative URL).
 *
 * @typeParam T - the messages' `data`
 * @example
 * ```ts
 * const sub = subscribe<Chat>('/channels/room:1', { cursor: sessionStorage.getItem('cursor') ?? undefined });
 * sub.on('message', (message) => render(message.data));
 * // After each batch's messages were emitted; never undefined. Saving it in the message
 * // listener instead would store the previous batch's cursor (undefined at first).
 * sub.on('cursor', (cursor) => sessionStorage.setItem('cursor', cursor));
 * sub.on('reset', () => reloadHistory());
 * // later: sub.close();
 * ```
 */
export function subscribe<T = JsonValue>(url: string | URL, options: SubscribeOptions = {}): Subscription<T> {
  return new Subscription<T>(url, options);
}
