/**
 * A knowledge-base file's parsed text, rebuilt from its stored chunks: chunks are slices of the
 * parsed document at [char_start, char_end), and neighbours overlap (chunk overlap), so
 * overlapping chunks are stitched back into one passage. Whitespace between chunks that do not
 * touch was not stored; each such run becomes its own text part.
 */
export interface TextSpan {
  text: string;
  char_start: number;
  char_end: number;
}

export function stitchSpans(chunks: readonly TextSpan[]): string[] {
  const ordered = [...chunks].sort((a, b) => a.char_start - b.char_start);
  const parts: Array<{ text: string; end: number }> = [];
  for (const chunk of ordered) {
    const last = parts[parts.length - 1];
    if (last && chunk.char_start < last.end) {
      // Overlap: append only what goes past the previous end.
      if (chunk.char_end > last.end) {
        last.text += chunk.text.slice(last.end - chunk.char_start);
        last.end = chunk.char_end;
      }
    } else {
      parts.push({ text: chunk.text, end: chunk.char_end });
    }
  }
  return parts.map((part) => part.text);
}
