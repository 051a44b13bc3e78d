import { LongPollError } from '../errors.js';

/** The query parameters the client sets itself on every poll: a URL's own are replaced. */
const OWN_PARAMETERS = ['cursor', 'wait', 'limit'];

/**
 * The URL every request of a subscription starts from. Without `channels`, `url` is a channel's
 * URL (`{origin}{prefix}/{channel}`); with them it is the prefix's (`{origin}{prefix}`), and the
 * list is added as `?channels=a,b`: each name percent-encoded, the commas left as they are,
 * since the server decodes the value once and then splits it on `,`. A URL that lists channels
 * itself is refused with `channels` (which list would be meant?); any other query parameter (a
 * token, say) is kept. `cursor`, `wait` and `limit` in the URL are dropped: the client sends its
 * own. A relative URL is resolved against the page in a browser; elsewhere it must be absolute.
 */
export function subscriptionUrl(url: string | URL, channels: readonly string[] | undefined): string {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  let resolved: URL;
  try {
    resolved = new URL(url, base);
  } catch (error) {
    const example = channels === undefined ? 'http://127.0.0.1:3000/channels/room' : 'http://127.0.0.1:3000/channels';
    const hint = base === undefined ? ` (outside a browser it must be absolute, e.g. ${example})` : '';
    throw new LongPollError('invalid_option', `subscribe url ${String(url)} is not a valid URL${hint}`, { cause: error });
  }
  // Only touched when present: any change re-encodes the whole query.
  for (const name of OWN_PARAMETERS) if (resolved.searchParams.has(name)) resolved.searchParams.delete(name);
  resolved.hash = '';
  if (channels === undefined) return resolved.href;
  if (resolved.searchParams.has('channels')) {
    throw new LongPollError('invalid_option', `subscribe url ${resolved.href} lists channels itself: with the channels option, pass the prefix URL (e.g. https://example.test/channels)`);
  }
  const list = channels.map((channel) => encodeURIComponent(channel)).join(',');
  return appendQuery(resolved.href, [['channels', list]], true);
}

/**
 * `href` with `parameters` added to its query, each value percent-encoded (unless `encoded`).
 * Built as text rather than through `URLSearchParams`, which would re-encode the `channels`
 * list's commas as `%2C`.
 */
export function appendQuery(href: string, parameters: readonly (readonly [string, string])[], encoded = false): string {
  if (parameters.length === 0) return href;
  const query = parameters.map(([name, value]) => `${name}=${encoded ? value : encodeURIComponent(value)}`).join('&');
  const hash = href.indexOf('#');
  const bare = hash === -1 ? href : href.slice(0, hash);
  const separator = !bare.includes('?') ? '?' : bare.endsWith('?') || bare.endsWith('&') ? '' : '&';
  return `${bare}${separator}${query}`;
}
