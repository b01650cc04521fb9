import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IngestError, type ParsedDocument } from '../src/ingest/document.ts';
import { detectFormat, parseDocument } from '../src/ingest/parsers/index.ts';

/** Asserts `promise` rejects with an IngestError of `code` whose message contains `fragment`. */
async function rejectsWith(promise: Promise<unknown>, code: IngestError['code'], fragment: string | RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof IngestError, `expected IngestError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (typeof fragment === 'string') assert.ok(error.message.includes(fragment), `message: ${error.message}`);
    else assert.match(error.message, fragment);
    assert.ok(!/\n\s+at /.test(error.message), 'no stack trace in the message');
    return true;
  });
}

function parse(text: string | Buffer, filename: string): Promise<ParsedDocument> {
  return parseDocument(typeof text === 'string' ? Buffer.from(text) : text, filename);
}

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489', 'hex');

describe('detectFormat', () => {
  it('uses magic bytes before the name', () => {
    assert.equal(detectFormat(Buffer.from('%PDF-1.7\n...'), 'notes.txt'), 'pdf');
    assert.throws(() => detectFormat(PNG, 'notes.txt'), (error: unknown) => error instanceof IngestError && error.code === 'unsupported_file' && /PNG image/.test(error.message));
  });

  it('maps extensions and sniffs HTML without one', () => {
    assert.equal(detectFormat(Buffer.from('# x'), 'README.MD'), 'markdown');
    assert.equal(detectFormat(Buffer.from('<p>x'), 'a.htm'), 'html');
    assert.equal(detectFormat(Buffer.from('a,b'), 'a.csv'), 'csv');
    assert.equal(detectFormat(Buffer.from('a\tb'), 'a.tsv'), 'csv');
    assert.equal(detectFormat(Buffer.from('{}'), 'a.jsonl'), 'json');
    assert.equal(detectFormat(Buffer.from('plain'), 'LICENSE'), 'text');
    assert.equal(detectFormat(Buffer.from('\ufeff  <!DOCTYPE html><p>x'), 'page'), 'html');
    assert.equal(detectFormat(Buffer.from('mentions %PDF- later'), 'x.txt'), 'text');
  });

  it('sends unrecognised bytes named .pdf to the PDF parser, but refuses them under a text name', () => {
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));
    assert.equal(detectFormat(random, 'scan.pdf'), 'pdf');
    assert.throws(() => detectFormat(random, 'notes.md'), /binary data \(\.md\)/);
  });
});

describe('text formats', () => {
  it('text: one section, CRLF normalised, BOM dropped, invalid UTF-8 read as Windows-1252', async () => {
    const doc = await parse('\ufeffline one\r\nline two\rline three\n', 'notes.txt');
    assert.deepEqual(doc, { format: 'text', sections: [{ text: 'line one\nline two\nline three\n' }] });
    const legacy = await parseDocument(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x80, 0x35]), 'legacy.txt');
    assert.equal(legacy.sections[0]?.text, 'café €5');
    const utf16 = await parseDocument(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('hi there', 'utf16le')]), 'w.txt');
    assert.equal(utf16.sections[0]?.text, 'hi there');
  });

  it('markdown: one section per heading, text kept as written, # in code fences is not a heading', async () => {
    const md = [
      'Intro paragraph.',
      '',
      '# Install ##',
      'Run `npm i`.',
      '```sh',
      '# not a heading',
      '```',
      'Usage',
      '=====',
      'See [docs](https://example.com).',
      '### Deep *title*',
      'deep text',
    ].join('\n');
    const doc = await parse(md, 'guide.md');
    assert.equal(doc.format, 'markdown');
    assert.deepEqual(doc.sections, [
      { text: 'Intro paragraph.\n' },
      { title: 'Install', text: '# Install ##\nRun `npm i`.\n```sh\n# not a heading\n```' },
      { title: 'Usage', text: 'Usage\n=====\nSee [docs](https://example.com).' },
      { title: 'Deep *title*', text: '### Deep *title*\ndeep text' },
    ]);
  });

  it('markdown: front matter dashes are not setext headings', async () => {
    const doc = await parse('---\ntitle: x\n---\nbody', 'post.md');
    assert.deepEqual(doc.sections, [{ text: '---\ntitle: x\n---\nbody' }]);
  });

  it('html: visible text only, headings become titles, entities decoded', async () => {
    const html = `<!doctype html><html><head><title>The &amp; Page</title><style>p{color:red}</style>
      <script>var hidden = "secret";</script></head><body>
      <p>Before   any
      heading.</p><noscript>enable js</noscript><template><p>tpl</p></template>
      <h1>First <em>heading</em></h1><p>One</p><p>Two<br>lines</p>
      <h2>Table</h2><table><tr><td>a</td><td>b</td></tr></table>
      <svg><title>icon</title><text>svg text</text></svg><div>after svg</div></body></html>`;
    const doc = await parse(html, 'page.html');
    assert.equal(doc.format, 'html');
    assert.deepEqual(doc.sections, [
      { title: 'The & Page', text: 'The & Page\n\nBefore any heading.' },
      { title: 'First heading', text: 'First heading\n\nOne\n\nTwo\nlines' },
      { title: 'Table', text: 'Table\n\na\tb\n\nafter svg' },
    ]);
  });

  it('csv: a section per record of `column: value` lines; semicolons and quotes handled', async () => {
    const csv = 'name;city;note\r\n"Lovelace, Ada";London;"said ""hi"""\r\nTuring;;\r\n\r\nHopper;Arlington;x;extra\r\n';
    const doc = await parse(csv, 'people.csv');
    assert.equal(doc.format, 'csv');
    assert.deepEqual(doc.sections, [
      { text: 'name: Lovelace, Ada\ncity: London\nnote: said "hi"' },
      { text: 'name: Turing' },
      { text: 'name: Hopper\ncity: Arlington\nnote: x\ncolumn 4: extra' },
    ]);
  });

  it('csv: an unclosed quote is invalid_file', async () => {
    await rejectsWith(parse('a,b\n1,"unclosed\n', 'bad.csv'), 'invalid_file', 'could not be parsed as CSV: Quote Not Closed');
  });

  it('json: array → a section per element, object paths flattened; jsonl → a section per line', async () => {
    const doc = await parse('[{"name":"Ada","tags":["math","code"],"address":{"city":"London"}},"plain",{},[]]', 'people.json');
    assert.deepEqual(doc, {
      format: 'json',
      sections: [{ text: 'name: Ada\ntags[0]: math\ntags[1]: code\naddress.city: London' }, { text: 'plain' }],
    });
    const object = await parse('{"a":{"b":[1,true,null]}}', 'o.json');
    assert.equal(object.sections[0]?.text, 'a.b[0]: 1\na.b[1]: true\na.b[2]: null');
    const lines = await parse('{"q":"one"}\r\n\n{"q":"two"}\n', 'qa.jsonl');
    assert.deepEqual(lines.sections, [{ text: 'q: one' }, { text: 'q: two' }]);
  });

  it('json: invalid JSON and an invalid JSONL line are invalid_file', async () => {
    await rejectsWith(parse('{"a": 1,', 'bad.json'), 'invalid_file', 'The file is not valid JSON');
    await rejectsWith(parse('{"a":1}\n{oops}\n', 'bad.jsonl'), 'invalid_file', 'Line 2 is not valid JSON');
  });
});

describe('hostile and degenerate inputs', () => {
  it('empty and whitespace-only files are "The file is empty"', async () => {
    await rejectsWith(parse(Buffer.alloc(0), 'a.txt'), 'invalid_file', 'The file is empty');
    await rejectsWith(parse(' \r\n\t\n', 'a.pdf'), 'invalid_file', 'The file is empty');
    await rejectsWith(parse('\ufeff\n', 'a.md'), 'invalid_file', 'The file is empty');
  });

  it('a file with no visible text is invalid_file "no text"', async () => {
    await rejectsWith(parse('<script>only()</script>', 'a.html'), 'invalid_file', 'no text');
    await rejectsWith(parse('[[], {}]', 'a.json'), 'invalid_file', 'no text');
  });

  it('a PNG named .txt and a binary file named .md are unsupported_file', async () => {
    const supported = 'supported: PDF, text, Markdown, HTML, CSV, JSON, DOCX';
    await rejectsWith(parse(PNG, 'photo.txt'), 'unsupported_file', `Unsupported file type: PNG image; ${supported}`);
    await rejectsWith(parse(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), 'tool.md'), 'unsupported_file', 'ELF executable');
    await rejectsWith(parse(Buffer.from('text\0with a NUL'), 'notes.md'), 'unsupported_file', 'binary data (.md)');
  });

  it('a 20 MB line without newlines parses in bounded time as text, Markdown, HTML, CSV and JSON', async () => {
    const line = 'a'.repeat(20 * 1024 * 1024);
    const started = Date.now();
    assert.equal((await parse(line, 'big.txt')).sections[0]?.text.length, line.length);
    assert.equal((await parse(`# ${' '.repeat(1 << 20)}${line}`, 'big.md')).sections[0]?.title?.length, 200);
    assert.equal((await parse(`<p>${' \t'.repeat(1 << 20)}${line}</p>`, 'big.html')).sections[0]?.text.length, line.length);
    const heading = (await parse(`<h1>${line}</h1>`, 'heading.html')).sections[0];
    assert.deepEqual([heading?.title?.length, heading?.text.length], [200, line.length], 'title shortened, text kept whole');
    assert.equal((await parse(`h\n${line}`, 'big.csv')).sections[0]?.text.length, line.length + 3);
    assert.equal((await parse(`["${line}"]`, 'big.json')).sections[0]?.text.length, line.length);
    assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
  });

  it('100,000 nested <div>s parse in linear time (no stack, no quadratic element list)', async () => {
    const started = Date.now();
    const doc = await parse(`${'<div>'.repeat(100_000)}deep text${'</div>'.repeat(100_000)}`, 'deep.html');
    assert.deepEqual(doc.sections, [{ text: 'deep text' }]);
    const unclosed = await parse(`<h1>T</h1>${'<div>'.repeat(100_000)}tail${'</x>'.repeat(100_000)}`, 'deep.html');
    assert.deepEqual(unclosed.sections, [{ title: 'T', text: 'T\n\ntail' }]);
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });

  it('100,000 levels of JSON arrays flatten without a stack overflow; unclosed ones are invalid_file', async () => {
    const doc = await parse(`${'['.repeat(100_000)}"bottom"${']'.repeat(100_000)}`, 'deep.json');
    const text = doc.sections[0]?.text ?? '';
    assert.ok(text.endsWith('…: bottom'), text.slice(-40));
    assert.ok(text.length < 200, 'the path is capped');
    await rejectsWith(parse('['.repeat(100_000), 'deep.json'), 'invalid_file', 'not valid JSON');
  });

  it('an aborted signal rejects with the abort reason, not an IngestError', async () => {
    const controller = new AbortController();
    controller.abort(new Error('job cancelled'));
    await assert.rejects(parseDocument(Buffer.from('text'), 'a.txt', { signal: controller.signal }), /job cancelled/);
    const big = Buffer.from(`${'x,y\n'.repeat(50_000)}`);
    const later = new AbortController();
    const parsing = parseDocument(big, 'big.csv', { signal: later.signal });
    later.abort(new Error('stop now'));
    await assert.rejects(parsing, /stop now/);
  });
});
