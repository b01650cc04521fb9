/**
 * HTML: visible text, with h1–h6 starting titled sections. Built on htmlparser2's Tokenizer rather than its
 * Parser: the Parser keeps open elements in an array it shifts and unshifts, which is quadratic (100,000
 * nested <div>s take over 10 s). Extraction needs no element stack, only a few counters, so it is linear.
 */
import { Tokenizer } from 'htmlparser2';
import type { DocumentSection, ParsedDocument } from '../document.ts';
import { cleanTitle, decodeText, yieldAndCheck, type DocumentParser } from './common.ts';

/** Elements whose content is never shown (head's <title> is handled on its own). */
const HIDDEN = new Set(['script', 'style', 'noscript', 'template', 'head', 'iframe', 'svg', 'math', 'select']);
const BLOCKS = new Set([
  'address', 'article', 'aside', 'blockquote', 'body', 'dd', 'details', 'dialog', 'div', 'dl', 'dt', 'fieldset',
  'figcaption', 'figure', 'footer', 'form', 'header', 'hr', 'li', 'main', 'nav', 'ol', 'p', 'pre', 'section',
  'summary', 'table', 'tbody', 'thead', 'tfoot', 'tr', 'ul', 'caption',
]);
const CELLS = new Set(['td', 'th']);
const HEADINGS = new Set(['h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
const CHARS_PER_TURN = 1 << 20;

/** Accumulates text for the current section; whitespace is collapsed as a browser would (outside <pre>). */
class SectionBuilder {
  readonly sections: DocumentSection[] = [];
  private parts: string[] = [];
  private title: string | undefined;

  append(text: string, preformatted: boolean): void {
    this.parts.push(preformatted ? text : text.replace(/[ \t\n\r\f]+/g, ' '));
  }

  breakLine(): void {
    this.parts.push('\n');
  }

  breakParagraph(): void {
    this.parts.push('\n\n');
  }

  startSection(title: string | undefined): void {
    this.flush();
    this.title = title;
  }

  flush(): void {
    // Trim each line by hand: a regex like /[ \t]*\n/ backtracks quadratically on long runs of spaces.
    const lines = this.parts.join('').split('\n').map((line) => line.trim());
    const kept: string[] = [];
    for (const line of lines) if (line !== '' || (kept.length > 0 && kept.at(-1) !== '')) kept.push(line);
    const text = kept.join('\n').trim();
    if (text) this.sections.push(this.title === undefined ? { text } : { title: this.title, text });
    this.parts = [];
  }
}

/** Sections of an HTML document (also used for mammoth's DOCX → HTML output). */
export async function extractHtmlSections(html: string, signal?: AbortSignal): Promise<DocumentSection[]> {
  const out = new SectionBuilder();
  let hidden: string | undefined; // the hidden element being skipped, and how deep in it we are
  let hiddenDepth = 0;
  let pre = 0;
  let heading: string[] | undefined;
  let titleText: string[] | undefined;
  let tag = '';
  let documentTitle: string | undefined;

  const text = (value: string): void => {
    if (titleText) titleText.push(value);
    else if (hidden !== undefined) return;
    else if (heading) heading.push(value);
    else out.append(value, pre > 0);
  };
  const open = (name: string): void => {
    if (name === 'title' && documentTitle === undefined && (hidden === undefined || hidden === 'head')) titleText = [];
    else if (hidden !== undefined) {
      if (name === hidden) hiddenDepth += 1;
      // <body> implies </head>, which authors often omit.
      if (name === 'body' && hidden === 'head') hidden = undefined;
    } else if (HIDDEN.has(name)) {
      hidden = name;
      hiddenDepth = 1;
    } else if (HEADINGS.has(name)) heading ??= [];
    else if (name === 'br') {
      if (heading) heading.push(' ');
      else out.breakLine();
    } else if (name === 'pre') pre += 1;
    if (hidden !== undefined) return;
    if (BLOCKS.has(name)) out.breakParagraph();
    else if (CELLS.has(name)) out.append('\t', true);
  };
  const close = (name: string): void => {
    if (name === 'title' && titleText) {
      // The page title names everything before the first heading, and is searchable text itself.
      documentTitle = cleanTitle(titleText.join('')) ?? '';
      titleText = undefined;
      if (documentTitle) {
        out.startSection(documentTitle);
        out.append(documentTitle, false);
        out.breakParagraph();
      }
    } else if (hidden !== undefined) {
      if (name === hidden && --hiddenDepth === 0) hidden = undefined;
    } else if (HEADINGS.has(name) && heading) {
      const full = heading.join('');
      heading = undefined;
      out.startSection(cleanTitle(full));
      out.append(full, false); // in full: the title may be shortened, the text must not be
      out.breakParagraph();
    } else {
      if (name === 'pre' && pre > 0) pre -= 1;
      if (BLOCKS.has(name)) out.breakParagraph();
    }
  };

  const tokenizer = new Tokenizer({ decodeEntities: true }, {
    ontext: (start, end) => text(html.slice(start, end)),
    ontextentity: (codepoint) => text(String.fromCodePoint(codepoint)),
    onopentagname: (start, end) => {
      tag = html.slice(start, end).toLowerCase();
      open(tag);
    },
    onclosetag: (start, end) => close(html.slice(start, end).toLowerCase()),
    // `<div/>` is not self-closing in HTML, but `<title/>`, `<script/>`, `<h1/>` must not swallow the rest.
    onselfclosingtag: () => {
      if (tag === 'title' || HIDDEN.has(tag) || HEADINGS.has(tag)) close(tag);
    },
    onopentagend: () => undefined,
    onattribdata: () => undefined,
    onattribentity: () => undefined,
    onattribend: () => undefined,
    onattribname: () => undefined,
    oncdata: () => undefined,
    oncomment: () => undefined,
    ondeclaration: () => undefined,
    onprocessinginstruction: () => undefined,
    onend: () => undefined,
  });
  // Callbacks receive absolute offsets, so feeding the string in slices keeps `html.slice` valid.
  for (let at = 0; at < html.length; at += CHARS_PER_TURN) {
    if (at > 0) await yieldAndCheck(signal);
    tokenizer.write(html.slice(at, at + CHARS_PER_TURN));
  }
  tokenizer.end();
  if (heading) out.append(heading.join(''), false); // an unclosed heading is still text
  out.flush();
  return out.sections;
}

export const HtmlParser: DocumentParser = {
  async parse(bytes: Buffer, _filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    return { format: 'html', sections: await extractHtmlSections(decodeText(bytes), signal) };
  },
};
