/** What a test sees of one poll or publish answer. */
export interface Answer {
  readonly status: number;
  readonly body: {
    messages?: { id: string; data: unknown }[];
    cursor?: string;
    timedOut?: boolean;
    code?: string;
    earliestCursor?: string;
  };
}

/** GET {base}{channel}?cursor&wait (seconds), bounded by `wait` plus a few seconds. */
export async function poll(base: URL, channel: string, options: { cursor?: string; wait?: number; limit?: number } = {}): Promise<Answer> {
  const url = new URL(channel, base);
  if (options.cursor) url.searchParams.set('cursor', options.cursor);
  url.searchParams.set('wait', String(options.wait ?? 5));
  if (options.limit) url.searchParams.set('limit', String(options.limit));
  const response = await fetch(url, { signal: AbortSignal.timeout(((options.wait ?? 5) + 4) * 1000) });
  return { status: response.status, body: (await response.json()) as Answer['body'] };
}

/** POST {base}{channel} with a JSON body, bounded by 5 s. */
export async function publish(base: URL, channel: string, data: unknown): Promise<Answer> {
  const response = await fetch(new URL(channel, base), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(data),
    signal: AbortSignal.timeout(5_000),
  });
  return { status: response.status, body: (await response.json()) as Answer['body'] };
}

/** The p-th percentile (0–100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
