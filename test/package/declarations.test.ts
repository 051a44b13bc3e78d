import { afterAll, describe, expect, it } from 'vitest';
import { ConsumerProject, ourErrors, subpaths } from './consumer.js';

// The published declarations, as a TypeScript user compiles them: every subpath imported from a
// project of its own, with `skipLibCheck: false` so that the package's .d.ts files are checked
// too (a name they use that the project's libs lack is an error there, not a silent `any`).

const imports = subpaths().map((subpath, n) => `import * as m${n} from '${subpath}';`);
const used = `export const modules = [${subpaths().map((_, n) => `m${n}`).join(', ')}];\n`;

const compilerOptions = (lib: string[]) => ({
  target: 'ES2022',
  lib,
  types: ['node'],
  module: 'nodenext',
  moduleResolution: 'nodenext',
  strict: true,
  skipLibCheck: false,
  noEmit: true,
});

describe('the declarations of every subpath', () => {
  const projects: ConsumerProject[] = [];
  afterAll(() => projects.forEach((project) => project.remove()));

  for (const [libs, lib] of [
    ['with the DOM lib', ['ES2022', 'DOM', 'DOM.Iterable']],
    ['without the DOM lib (a Node project: ES2022 and @types/node)', ['ES2022']],
  ] as const) {
    it(`type-check in an ES module project ${libs}`, async () => {
      const project = new ConsumerProject({ type: 'module' });
      projects.push(project);
      project.write('consumer.ts', `${imports.join('\n')}\n${used}`);
      project.write('tsconfig.json', JSON.stringify({ compilerOptions: compilerOptions([...lib]), files: ['consumer.ts'] }));
      expect(ourErrors(await project.tsc(), project.dir)).toEqual([]);
    }, 90_000);

    it(`type-check in a CommonJS project ${libs} (require of an ES module: TypeScript 5.8+)`, async () => {
      const project = new ConsumerProject({ type: 'commonjs' });
      projects.push(project);
      project.write('consumer.ts', `${imports.join('\n')}\n${used}`);
      project.write('tsconfig.json', JSON.stringify({ compilerOptions: compilerOptions([...lib]), files: ['consumer.ts'] }));
      expect(ourErrors(await project.tsc(), project.dir)).toEqual([]);
    }, 90_000);
  }

  it('name the subpaths the exports map has', () => {
    expect(subpaths()).toEqual(expect.arrayContaining(['longpoll-kit', 'longpoll-kit/node', 'longpoll-kit/express', 'longpoll-kit/koa', 'longpoll-kit/fetch', 'longpoll-kit/client', 'longpoll-kit/redis']));
  });
});
