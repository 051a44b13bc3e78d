/**
 * Reads a response's body as text, calling `onProgress` after each chunk. The request deadline
 * bounds the wait for the answer's headers; a large backlog over a slow link may then take
 * longer than that to arrive, so the caller turns each chunk into more time (a stall deadline)
 * instead of aborting a body that is still coming in.
 *
 * Returns `undefined` once the body passes `maxBytes` (counted as received, before decoding),
 * after cancelling the rest: a server that sends an endless body costs the client at most
 * `maxBytes` of it.
 */
export async function readText(response: Response, maxBytes: number, onProgress: () => void): Promise<string | undefined> {
  const body = response.body;
  if (body === null) return '';
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      if (bytes > maxBytes) {
        // Cancelling (not only dropping the reader) tells fetch to stop receiving; the caller
        // also aborts the request. Not awaited: a cancel that never settles must not hang a poll.
        reader.cancel().catch(() => {});
        return undefined;
      }
      text += decoder.decode(value, { stream: true });
      onProgress();
    }
  } finally {
    reader.releaseLock();
  }
  return text + decoder.decode();
}
