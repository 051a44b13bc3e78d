/** The text/event-stream parser of the client (src/client/event-stream.ts), byte by byte. */
import { describe, expect, it } from 'vitest';
import { EventStreamParser, EventTooLargeError } from '../src/client/event-stream.js';

type Seen = { event: string; data?: string; id: string } | { retry: number };

function parser(max = 1 << 20): { parser: EventStreamParser; seen: Seen[] } {
  const seen: Seen[] = [];
  const instance = new EventStreamParser(
    {
      event: ({ type, data, lastEventId }) => seen.push({ event: type, data, id: lastEventId }),
      id: (id) => seen.push({ event: '(id)', id }),
      retry: (ms) => seen.push({ retry: ms }),
    },
    max,
  );
  return { parser: instance, seen };
}

const bytes = (text: string) => new TextEncoder().encode(text);

/** Parses `text` fed in the given pieces (byte offsets). */
function parseSplit(text: string, cuts: number[] = []): Seen[] {
  const { parser: p, seen } = parser();
  const all = bytes(text);
  let from = 0;
  for (const cut of [...cuts, all.length]) {
    p.push(all.subarray(from, cut));
    from = cut;
  }
  p.end();
  return seen;
}

const SAMPLE =
  '\uFEFFretry: 2000\r\nid: c0\r\n\r\n: ping\n\nid: c1\nevent: message\ndata: {"text":"é€😀"}\n\n' +
  'data: line 1\rdata:line 2\r\ndata\n\nevent: reset\nid: c9\ndata: {"earliestCursor":"c9"}\r\r: trailing comment\n';

const EXPECTED: Seen[] = [
  { retry: 2000 },
  { event: '(id)', id: 'c0' },
  { event: 'message', data: '{"text":"é€😀"}', id: 'c1' },
  { event: 'message', data: 'line 1\nline 2\n', id: 'c1' },
  { event: 'reset', data: '{"earliestCursor":"c9"}', id: 'c9' },
];

describe('EventStreamParser', () => {
  it('reads fields, comments, multi-line data, every line ending and one leading BOM', () => {
    expect(parseSplit(SAMPLE)).toEqual(EXPECTED);
  });

  it('gives the same events wherever the chunks end: every split in two, and byte by byte', () => {
    const length = bytes(SAMPLE).length;
    for (let cut = 0; cut <= length; cut++) expect(parseSplit(SAMPLE, [cut]), `split at ${cut}`).toEqual(EXPECTED);
    expect(parseSplit(SAMPLE, Array.from({ length }, (_, i) => i))).toEqual(EXPECTED);
  });

  it('treats CR then LF in the next chunk as one line ending, and CR CR as a blank line', () => {
    expect(parseSplit('data: a\r\ndata: b\r\n\r\n', [8, 17, 18])).toEqual([{ event: 'message', data: 'a\nb', id: '' }]);
    expect(parseSplit('data: a\r\rdata: b\r\r')).toEqual([
      { event: 'message', data: 'a', id: '' },
      { event: 'message', data: 'b', id: '' },
    ]);
  });

  it('drops only the first BOM of the stream, even split across chunks', () => {
    expect(parseSplit('\uFEFFdata: x\n\n', [1, 2])).toEqual([{ event: 'message', data: 'x', id: '' }]);
    // A second BOM makes the field name "\uFEFFdata": unknown, so nothing is dispatched.
    expect(parseSplit('\uFEFF\uFEFFdata: x\n\n')).toEqual([]);
  });

  it('strips one space after the colon, keeps the rest, and ignores unknown fields, bad retry and ids with NUL', () => {
    expect(parseSplit('data:  two spaces\nfoo: bar\nretry: 1a\nretry:\nid: a\0b\n\n')).toEqual([{ event: 'message', data: ' two spaces', id: '' }]);
    expect(parseSplit('retry:0\nretry: 15\n\n')).toEqual([{ retry: 0 }, { retry: 15 }]);
  });

  it('keeps the last id for events without one, and an empty id clears it', () => {
    expect(parseSplit('id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n')).toEqual([
      { event: 'message', data: 'a', id: '1' },
      { event: 'message', data: 'b', id: '1' },
      { event: 'message', data: 'c', id: '' },
    ]);
  });

  it('drops an event the stream cut off, and its id does not become the last event ID', () => {
    const { parser: p, seen } = parser();
    p.push(bytes('id: 1\ndata: a\n\nid: 2\ndata: half'));
    p.end();
    expect(seen).toEqual([{ event: 'message', data: 'a', id: '1' }]);
    expect(p.lastEventId).toBe('1');
  });

  it('throws once an endless line passes the bound, having kept no more than the bound', () => {
    const { parser: p } = parser(1000);
    const chunk = bytes('x'.repeat(300));
    p.push(bytes('data: '));
    p.push(chunk);
    p.push(chunk);
    p.push(chunk);
    expect(() => p.push(chunk)).toThrow(EventTooLargeError);
  });

  it('bounds an event whose data lines never end, but not a stream of comments or of small events', () => {
    const small = parser(100);
    for (let i = 0; i < 1000; i++) small.parser.push(bytes(`: ping ${'x'.repeat(50)}\ndata: ${i}\n\n`));
    expect(small.seen).toHaveLength(1000);
    const growing = parser(100);
    expect(() => {
      for (let i = 0; i < 100; i++) growing.parser.push(bytes('data: 0123456789\n'));
    }).toThrow(EventTooLargeError);
    expect(growing.seen).toEqual([]);
  });
});
