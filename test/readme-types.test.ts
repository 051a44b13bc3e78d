import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ConsumerProject } from './package/consumer.js';

// Every TypeScript block of the README, each compiled on its own (one module per block),
// strictly, against the built declarations (dist/, through the exports map, as a user's
// project resolves them). A block is skipped only when the comment before it says
// "not compiled" and why; none is today.

interface Block {
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly code: string;
  /** The HTML comment right before the fence, if any. */
  readonly comment: string | undefined;
}

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

function blocks(): Block[] {
  const found: Block[] = [];
  // A fence may be indented (inside a list item): its code is dedented by as much.
  const fence = /^( *)(?:<!--((?:(?!-->)[\s\S])*)-->\n\1)?```(?:ts|typescript|tsx|mts|cts)\n([\s\S]*?)\n\1```$/gm;
  for (const match of readme.matchAll(fence)) {
    const [whole, indent = '', comment, code = ''] = match;
    const line = readme.slice(0, match.index + whole.indexOf('```')).split('\n').length;
    found.push({ line, code: code.replace(new RegExp(`^${indent}`, 'gm'), ''), comment });
  }
  return found;
}

/**
 * The slices of Deno's and Bun's APIs the fetch section calls, shaped as in their own types
 * (`Deno.serve(handler)`; `Bun.serve({ fetch })`, which passes its server as the second argument),
 * since neither runtime's types are installed here.
 */
const runtimes = `
interface DenoServeHandlerInfo { readonly remoteAddr: { readonly transport: 'tcp' | 'udp'; readonly hostname: string; readonly port: number } }
declare const Deno: { serve(handler: (request: Request, info: DenoServeHandlerInfo) => Response | Promise<Response>): { finished: Promise<void> } };
interface BunSocketAddress { address: string; family: 'IPv4' | 'IPv6'; port: number }
interface BunServer { readonly port: number; readonly hostname: string; readonly url: URL; requestIP(request: Request): BunSocketAddress | null; stop(closeActiveConnections?: boolean): Promise<void> }
declare const Bun: { serve(options: { fetch(this: BunServer, request: Request, server: BunServer): Response | Promise<Response>; port?: number; idleTimeout?: number }): BunServer };
`;

describe('the README’s TypeScript blocks', () => {
  const all = blocks();
  const compiled = all.filter((block) => !/not compiled/i.test(block.comment ?? ''));
  const project = new ConsumerProject({ type: 'module' });
  afterAll(() => project.remove());

  it('are all ```ts fences, and every one not compiled says why', () => {
    expect(readme.match(/^ *```(typescript|tsx|mts|cts|js|javascript)$/gm) ?? []).toEqual([]);
    expect(all.length).toBe((readme.match(/^ *```ts$/gm) ?? []).length);
    for (const block of all.filter((b) => !compiled.includes(b))) expect(block.comment, `README.md:${block.line}`).toMatch(/not compiled[^]*\w{3,}/i);
    expect(compiled.length).toBeGreaterThanOrEqual(10);
  });

  it('compile, each on its own, with strict, against the built declarations', async () => {
    const files = compiled.map((block) => `readme-line-${block.line}.ts`);
    compiled.forEach((block, n) => project.write(files[n]!, block.code));
    project.write('runtimes.d.ts', runtimes);
    project.write(
      'tsconfig.json',
      JSON.stringify({
        compilerOptions: {
          target: 'ES2023',
          lib: ['ES2023', 'DOM', 'DOM.Iterable'],
          types: ['node'],
          module: 'nodenext',
          moduleResolution: 'nodenext',
          moduleDetection: 'force', // every block a module of its own: no names shared between blocks
          strict: true,
          noUncheckedIndexedAccess: true,
          noImplicitOverride: true,
          noImplicitReturns: true,
          // Third-party declarations are not ours to check; the package's own are checked
          // strictly by test/package/declarations.test.ts.
          skipLibCheck: true,
          noEmit: true,
        },
        files: [...files, 'runtimes.d.ts'],
      }),
    );
    const { output } = await project.tsc();
    expect(output.split('\n').filter((line) => line.includes('error TS'))).toEqual([]);
  }, 90_000);
});
