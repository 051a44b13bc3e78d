/**
 * A poll answer's UTF-8 bytes (`Answer.bytes`, poll.ts). First, encoding once per Answer, shared
 * by every poll one publish wakes, against encoding per poll, for 1 and 1,000 polls. Then the
 * encoder: Node's `Buffer.from(text, 'utf8')` (what poll.ts uses where there is a Buffer; small
 * buffers come from a shared pool) against `TextEncoder` (what it uses elsewhere), for the answer
 * of one chat message and of 100.
 */
import { Buffer } from 'node:buffer';
import { Answer } from '../../dist/poll.js';
import { compare } from './harness.js';

const utf8 = new TextEncoder();

/** The answer of `count` chat messages, as a MemoryEngine read makes it. */
function answerOf(count) {
  const messages = Array.from({ length: count }, (_, i) =>
    Object.freeze({
      id: `01J${String(i).padStart(23, '0')}`,
      channel: 'room',
      data: { user: 'alice', text: 'hello there, how are you? ünïcödé', at: 1_700_000_000_000 + i },
      publishedAt: '2030-01-01T12:00:00.007Z',
    }),
  );
  const result = Object.freeze({ messages: Object.freeze(messages), cursor: '01JABCDEFG.1a2b3c.zz', timedOut: false });
  const json = JSON.stringify(messages);
  return () => new Answer(result, json);
}

const one = answerOf(1);
for (const polls of [1, 1000]) {
  compare(
    `one answer written to ${polls} poll${polls === 1 ? '' : 's'}`,
    {
      name: 'answer.bytes: encoded once per answer',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const answer = one();
          for (let p = 0; p < polls; p++) sum += answer.bytes.byteLength;
        }
        return sum;
      },
    },
    {
      name: 'encoded per poll',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const answer = one();
          for (let p = 0; p < polls; p++) sum += Buffer.from(answer.text, 'utf8').byteLength;
        }
        return sum;
      },
    },
  );
}

for (const count of [1, 100]) {
  const make = answerOf(count);
  compare(
    `encoding the answer of ${count} message${count === 1 ? '' : 's'} (${Buffer.byteLength(make().text)} bytes)`,
    {
      name: 'answer.bytes (Buffer.from)',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += make().bytes.byteLength;
        return sum;
      },
    },
    {
      name: 'TextEncoder encode(answer.text)',
      run: (n) => {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += utf8.encode(make().text).byteLength;
        return sum;
      },
    },
  );
}
