/**
 * Markdown: one section per heading, titled with that heading. The text is kept as written (links, emphasis,
 * tables): embedding models read Markdown well, and the chunker's character offsets then match the file.
 * Headings are recognised by hand, line by line, rather than with regular expressions that could backtrack
 * on a hostile 20 MB line; `#` lines inside fenced code blocks and front matter are not headings.
 */
import type { DocumentSection, ParsedDocument } from '../document.ts';
import { cleanTitle, decodeText, normalizeNewlines, yieldAndCheck, type DocumentParser } from './common.ts';

const LINES_PER_TURN = 50_000;

/** The text of an ATX heading (`## Title ##`), or undefined when the line is not one. */
export function atxHeading(line: string): string | undefined {
  let at = 0;
  while (at < 3 && line[at] === ' ') at += 1;
  let level = 0;
  while (line[at + level] === '#') level += 1;
  if (level < 1 || level > 6) return undefined;
  const after = line[at + level];
  if (after !== undefined && after !== ' ' && after !== '\t') return undefined;
  let text = line.slice(at + level).trim();
  // An optional closing run of #s, if separated by a space, is not part of the title.
  let end = text.length;
  while (end > 0 && text[end - 1] === '#') end -= 1;
  if (end === 0 || text[end - 1] === ' ' || text[end - 1] === '\t') text = text.slice(0, end).trimEnd();
  return text;
}

/** `===` or `---` under a paragraph line (setext heading). Two characters at least, so a lone `-` list item is not one. */
function isSetextUnderline(line: string): boolean {
  const trimmed = line.trim();
  if (trimmed.length < 2 || (trimmed[0] !== '=' && trimmed[0] !== '-')) return false;
  for (const char of trimmed) if (char !== trimmed[0]) return false;
  return true;
}

function isParagraphLine(line: string | undefined): line is string {
  if (line === undefined || line.trim() === '') return false;
  const first = line.trimStart()[0];
  return first !== '#' && first !== '>' && first !== '-' && first !== '*' && first !== '+' && first !== '|' && first !== '`';
}

function fenceMarker(line: string): string | undefined {
  const trimmed = line.trimStart();
  if (line.length - trimmed.length > 3) return undefined;
  return trimmed.startsWith('```') ? '```' : trimmed.startsWith('~~~') ? '~~~' : undefined;
}

export const MarkdownParser: DocumentParser = {
  async parse(bytes: Buffer, _filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    const text = normalizeNewlines(decodeText(bytes));
    const sections: DocumentSection[] = [];
    let title: string | undefined;
    let lines: string[] = [];
    const flush = (): void => {
      if (lines.length > 0) sections.push(title === undefined ? { text: lines.join('\n') } : { title, text: lines.join('\n') });
      lines = [];
    };

    let fence: string | undefined;
    let inFrontMatter = false;
    let lineNumber = 0;
    for (let start = 0; start <= text.length; lineNumber += 1) {
      if (lineNumber % LINES_PER_TURN === LINES_PER_TURN - 1) await yieldAndCheck(signal);
      const newline = text.indexOf('\n', start);
      const end = newline === -1 ? text.length : newline;
      const line = text.slice(start, end);
      start = end + 1;

      if (lineNumber === 0 && line.trimEnd() === '---') inFrontMatter = true;
      else if (inFrontMatter) inFrontMatter = !(line.trimEnd() === '---' || line.trimEnd() === '...');
      else if (fence !== undefined) fence = fenceMarker(line) === fence ? undefined : fence;
      else if ((fence = fenceMarker(line)) === undefined) {
        const heading = atxHeading(line);
        const previous = lines.at(-1);
        if (heading !== undefined) {
          flush();
          title = cleanTitle(heading);
        } else if (isSetextUnderline(line) && isParagraphLine(previous)) {
          lines.pop();
          flush();
          title = cleanTitle(previous);
          lines.push(previous);
        }
      }
      lines.push(line);
    }
    flush();
    return { format: 'markdown', sections };
  },
};
