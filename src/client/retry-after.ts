/**
 * A `Retry-After` header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) in milliseconds from
 * `now`; `undefined` when it is absent or unreadable, so the caller falls back to its backoff.
 */
export function retryAfterMs(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
