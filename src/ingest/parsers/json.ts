/**
 * JSON and JSON Lines. A top-level array gives one section per element, JSONL one per line, anything else
 * one section; each value is flattened into `path: value` lines (`items[0].name: Ada`), which keeps keys next
 * to their values for retrieval. V8's JSON.parse is iterative, and the flattening below uses an explicit
 * stack, so 100,000 levels of nesting cannot overflow the call stack.
 */
import { IngestError, type DocumentSection, type ParsedDocument } from '../document.ts';
import { decodeText, extensionOf, normalizeNewlines, yieldAndCheck, type DocumentParser } from './common.ts';

/** Paths stop growing past this depth (marked `…`): a 100,000-level path would be one huge line per value. */
const MAX_PATH_DEPTH = 32;
const LINES_PER_TURN = 50_000;
const LINE_EXTENSIONS = new Set(['.jsonl', '.ndjson']);

function leafText(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

/** `path: value` for every leaf, in document order; empty arrays and objects produce nothing. */
export function* flattenJson(root: unknown): Generator<string> {
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value: root, path: '', depth: 0 }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const { value, path, depth } = frame;
    if (value === null || typeof value !== 'object') {
      yield path ? `${path}: ${leafText(value)}` : leafText(value);
      continue;
    }
    const children: Array<[string, unknown]> = Array.isArray(value)
      ? value.map((item, index) => [`[${index}]`, item])
      : Object.entries(value).map(([key, item]) => [path ? `.${key}` : key, item]);
    // Pushed in reverse so they pop in document order.
    for (let index = children.length - 1; index >= 0; index -= 1) {
      const [segment, item] = children[index] as [string, unknown];
      const childPath = depth < MAX_PATH_DEPTH ? path + segment : depth === MAX_PATH_DEPTH ? `${path}…` : path;
      stack.push({ value: item, path: childPath, depth: depth + 1 });
    }
  }
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new IngestError('invalid_file', `${where} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

class SectionCollector {
  readonly sections: DocumentSection[] = [];
  private lines = 0;

  constructor(private readonly signal: AbortSignal | undefined) {}

  async add(value: unknown): Promise<void> {
    const parts: string[] = [];
    for (const line of flattenJson(value)) {
      parts.push(line);
      if (++this.lines % LINES_PER_TURN === 0) await yieldAndCheck(this.signal);
    }
    if (parts.length > 0) this.sections.push({ text: parts.join('\n') });
  }
}

export const JsonParser: DocumentParser = {
  async parse(bytes: Buffer, filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    const text = normalizeNewlines(decodeText(bytes));
    const out = new SectionCollector(signal);
    if (LINE_EXTENSIONS.has(extensionOf(filename))) {
      let lineNumber = 0;
      for (let start = 0; start < text.length; ) {
        const newline = text.indexOf('\n', start);
        const end = newline === -1 ? text.length : newline;
        const line = text.slice(start, end);
        start = end + 1;
        lineNumber += 1;
        if (line.trim()) await out.add(parseJson(line, `Line ${lineNumber}`));
      }
      return { format: 'json', sections: out.sections };
    }
    const root = parseJson(text, 'The file');
    if (Array.isArray(root)) for (const item of root) await out.add(item);
    else await out.add(root);
    return { format: 'json', sections: out.sections };
  },
};
