/**
 * Reads a response's body as text, calling `onProgress` after each chunk. The request deadline
 * bounds the wait for the answer's headers; a large backlog over a slow link may then take
 * longer than that to arrive, so the caller turns each chunk into more time (a stall deadline)
 * instead of aborting a body that is still coming in.
 */
export async function readText(response: Response, onProgress: () => void): Promise<string> {
  const body = response.body;
  if (body === null) return '';
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      onProgress();
    }
  } finally {
    reader.releaseLock();
  }
  return text + decoder.decode();
}
