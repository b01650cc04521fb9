/**
 * docs/clients.md shows, per client, code that the client matrix runs: each ```ts block after a
 * `<!-- recipe: name -->` line must equal the `// recipe: name` … `// end recipe` block of a
 * test/clients file (indentation aside), so the documented recipes cannot rot.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const root = path.join(import.meta.dirname, '..', '..');
const doc = readFileSync(path.join(root, 'docs', 'clients.md'), 'utf8');

function dedent(lines: string[]): string {
  const indent = Math.min(...lines.filter((line) => line.trim()).map((line) => /^ */.exec(line)![0].length));
  return lines.map((line) => line.slice(indent)).join('\n').trim();
}

function documentedRecipes(): Map<string, string> {
  const recipes = new Map<string, string>();
  for (const match of doc.matchAll(/<!-- recipe: ([\w-]+) -->\s*```ts\n([\s\S]*?)```/g)) recipes.set(match[1]!, match[2]!.trim());
  return recipes;
}

function testedRecipes(): Map<string, string> {
  const recipes = new Map<string, string>();
  const dir = import.meta.dirname;
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.test.ts'))) {
    const source = readFileSync(path.join(dir, file), 'utf8');
    for (const match of source.matchAll(/^[ \t]*\/\/ recipe: ([\w-]+)\n([\s\S]*?)^[ \t]*\/\/ end recipe$/gm)) {
      recipes.set(match[1]!, dedent(match[2]!.replace(/\n$/, '').split('\n')));
    }
  }
  return recipes;
}

describe('docs/clients.md recipes', () => {
  it('shows exactly the recipes the client matrix runs, for every client', () => {
    const documented = documentedRecipes();
    const tested = testedRecipes();
    assert.deepEqual([...documented.keys()].sort(), ['ai-sdk-openai', 'ai-sdk-openai-compatible', 'http', 'langchain', 'openai']);
    assert.deepEqual([...tested.keys()].sort(), [...documented.keys()].sort());
    for (const [name, code] of documented) assert.equal(code, tested.get(name), `recipe ${name} differs between docs/clients.md and test/clients`);
  });

  it('is linked from the README', () => {
    assert.match(readFileSync(path.join(root, 'README.md'), 'utf8'), /\]\(docs\/clients\.md\)/);
  });
});
