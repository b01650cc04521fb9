/**
 * JSON and JSON Lines. A top-level array gives one section per element, JSONL one per line, anything else
 * one section; each value is flattened into `path: value` lines (`items[0].name: Ada`), which keeps keys next
 * to their values for retrieval. V8's JSON.parse is iterative, and the flattening below uses an explicit
 * stack, so 100,000 levels of nesting cannot overflow the call stack. A top-level array is split into its
 * elements by a linear scan and each is parsed on its own, so a 90 MB array never exists as one object graph
 * (which took 2 GB); anything the scan does not accept is parsed whole, for JSON.parse's own error message.
 */
import { IngestError, type DocumentSection, type ParsedDocument } from '../document.ts';
import { decodeText, extensionOf, normalizeNewlines, yieldAndCheck, type StreamingParser } from './common.ts';
import { DEFAULT_FORMAT_LIMITS, overLimit } from './limits.ts';

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

/**
 * [start, end) of each element of a top-level JSON array, or undefined when `text` is not one (or is malformed
 * in a way the scan notices). Strings are skipped with their escapes, so brackets and commas inside them do not
 * count. The elements themselves are validated later by JSON.parse.
 */
export function* arrayElements(text: string): Generator<[number, number], boolean> {
  let at = skipSpace(text, 0);
  if (text.charCodeAt(at) !== 0x5b /* [ */) return false;
  at = skipSpace(text, at + 1);
  if (text.charCodeAt(at) === 0x5d /* ] */) return skipSpace(text, at + 1) === text.length;
  let depth = 0;
  let start = at;
  for (; at < text.length; at++) {
    const code = text.charCodeAt(at);
    if (code === 0x22 /* " */) {
      for (at++; at < text.length && text.charCodeAt(at) !== 0x22; at++) if (text.charCodeAt(at) === 0x5c) at++;
    } else if (code === 0x5b || code === 0x7b) depth++;
    else if (code === 0x5d || code === 0x7d) {
      if (depth === 0) {
        yield [start, at];
        return code === 0x5d && skipSpace(text, at + 1) === text.length;
      }
      depth--;
    } else if (code === 0x2c /* , */ && depth === 0) {
      yield [start, at];
      start = at + 1;
    }
  }
  return false;
}

function skipSpace(text: string, at: number): number {
  while (at < text.length && (text[at] === ' ' || text[at] === '\n' || text[at] === '\t' || text[at] === '\r')) at++;
  return at;
}

class SectionFlattener {
  private lines = 0;

  constructor(
    private readonly signal: AbortSignal | undefined,
    private readonly maxValues: number,
  ) {}

  /** The section of one value, or undefined when it has no leaves. */
  async section(value: unknown): Promise<DocumentSection | undefined> {
    const parts: string[] = [];
    for (const line of flattenJson(value)) {
      parts.push(line);
      if (++this.lines > this.maxValues) throw new IngestError('invalid_file', overLimit('JSON file', this.maxValues, 'values'));
      if (this.lines % LINES_PER_TURN === 0) await yieldAndCheck(this.signal);
    }
    return parts.length > 0 ? { text: parts.join('\n') } : undefined;
  }
}

export class JsonParser implements StreamingParser {
  constructor(private readonly maxValues: number = DEFAULT_FORMAT_LIMITS.maxJsonValues) {}

  async parse(bytes: Buffer, filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    const sections: DocumentSection[] = [];
    for await (const section of this.sections(bytes, filename, signal)) sections.push(section);
    return { format: 'json', sections };
  }

  async *sections(bytes: Buffer, filename: string, signal?: AbortSignal): AsyncGenerator<DocumentSection> {
    const text = normalizeNewlines(decodeText(bytes));
    const out = new SectionFlattener(signal, this.maxValues);
    if (LINE_EXTENSIONS.has(extensionOf(filename))) {
      let lineNumber = 0;
      for (let start = 0; start < text.length; ) {
        const newline = text.indexOf('\n', start);
        const end = newline === -1 ? text.length : newline;
        const line = text.slice(start, end);
        start = end + 1;
        lineNumber += 1;
        if (!line.trim()) continue;
        const section = await out.section(parseJson(line, `Line ${lineNumber}`));
        if (section) yield section;
      }
      return;
    }
    const elements = arrayElements(text);
    for (let next = elements.next(); ; next = elements.next()) {
      if (next.done) {
        if (next.value) return;
        break; // not an array, or malformed: JSON.parse of the whole text decides (and words the error)
      }
      const [start, end] = next.value;
      let element: unknown;
      try {
        element = JSON.parse(text.slice(start, end));
      } catch {
        break;
      }
      const section = await out.section(element);
      if (section) yield section;
    }
    const root = parseJson(text, 'The file');
    // Only reached when the scan gave up before any element was handed on, or the text is not an array.
    if (Array.isArray(root)) {
      for (const item of root) {
        const section = await out.section(item);
        if (section) yield section;
      }
    } else {
      const section = await out.section(root);
      if (section) yield section;
    }
  }
}
