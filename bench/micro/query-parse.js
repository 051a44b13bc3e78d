/**
 * The protocol reads a request's query with `parseQuery` (src/http/params.ts): one pass, only the
 * four parameters it reads kept, only components with `%` or `+` decoded. The alternative is
 * `URLSearchParams`, which the protocol used before, read the same way (`getAll` of each
 * parameter). Two queries: a many-channel poll's (10 channels, percent-encoded commas, a
 * composite cursor of about 380 characters) and a one-channel poll's.
 */
import { parseQuery } from '../../dist/http/params.js';
import { compare } from './harness.js';

const channels = Array.from({ length: 10 }, (_, i) => `room.${i * 4}`).join(',');
const cursor = Array.from({ length: 10 }, (_, i) => `${(1e6 + i * 7919).toString(36)}_${(2e6 + i * 104729).toString(36)}.01JC5Z8Q2K.${(1e6 + i).toString(36)}.${(i * 31).toString(36)}`).join('~');
/** 1,024 copies of a query, each its own string as an HTTP parser makes it. */
const copies = (search) => Array.from({ length: 1024 }, () => JSON.parse(JSON.stringify(search)));
const many = copies(`?channels=${encodeURIComponent(channels)}&wait=55&cursor=${encodeURIComponent(cursor)}`);
const one = copies(`?wait=55&cursor=${encodeURIComponent('01JC5Z8Q2K.1ktc2o.2s')}`);

/** Reads the parameters of each query with `parse`. */
const reads = (queries, parse) => (n) => {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const query = parse(queries[i & 1023]);
    for (const name of ['channels', 'cursor', 'wait', 'limit']) sum += query.getAll(name).length;
  }
  return sum;
};

compare('a many-channel poll query', { name: 'parseQuery', run: reads(many, parseQuery) }, { name: 'URLSearchParams', run: reads(many, (search) => new URLSearchParams(search)) });
compare('a one-channel poll query', { name: 'parseQuery', run: reads(one, parseQuery) }, { name: 'URLSearchParams', run: reads(one, (search) => new URLSearchParams(search)) });
