/** Plain text: the whole file is one section. */
import type { ParsedDocument } from '../document.ts';
import { decodeText, normalizeNewlines, type DocumentParser } from './common.ts';

export const TextParser: DocumentParser = {
  async parse(bytes: Buffer, _filename: string, signal?: AbortSignal): Promise<ParsedDocument> {
    signal?.throwIfAborted();
    return { format: 'text', sections: [{ text: normalizeNewlines(decodeText(bytes)) }] };
  },
};
