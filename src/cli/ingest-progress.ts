/**
 * What `cairn ingest` shows while it works: a progress bar on a terminal, plain lines otherwise
 * (a CI log or a pipe gets one line per event instead of nothing).
 */
import { SingleBar } from 'cli-progress';

export interface IngestProgress {
  start(total: number): void;
  file(event: 'uploaded' | 'replaced' | 'skipped' | 'failed' | 'detached', key: string, detail?: string): void;
  ingesting(done: number, total: number, chunks: number, failed: number): void;
  stop(): void;
}

export function createIngestProgress(out: NodeJS.WriteStream): IngestProgress {
  return out.isTTY ? new BarProgress(out) : new LineProgress(out);
}

class BarProgress implements IngestProgress {
  private readonly bar: SingleBar;
  private uploaded = 0;
  private failed = 0;

  constructor(private readonly out: NodeJS.WriteStream) {
    this.bar = new SingleBar({ format: 'ingest [{bar}] {value}/{total} files | uploaded {uploaded} | chunks {chunks} | failed {failed}', stream: out, hideCursor: true });
  }

  start(total: number): void {
    this.bar.start(total, 0, { uploaded: 0, chunks: 0, failed: 0 });
  }

  file(event: Parameters<IngestProgress['file']>[0], key: string, detail?: string): void {
    if (event === 'uploaded' || event === 'replaced') this.bar.update({ uploaded: (this.uploaded += 1) });
    if (event === 'failed') {
      this.bar.update({ failed: (this.failed += 1) });
      this.out.write(`\nfailed ${key}: ${detail ?? ''}\n`);
    }
  }

  ingesting(done: number, _total: number, chunks: number, failed: number): void {
    this.bar.update(done, { chunks, failed: this.failed + failed });
  }

  stop(): void {
    this.bar.stop();
  }
}

class LineProgress implements IngestProgress {
  private last = '';

  constructor(private readonly out: NodeJS.WriteStream) {}

  start(total: number): void {
    this.out.write(`ingest: ${total} file(s) to upload\n`);
  }

  file(event: Parameters<IngestProgress['file']>[0], key: string, detail?: string): void {
    this.out.write(`${event} ${key}${detail ? `: ${detail}` : ''}\n`);
  }

  /** Only when something changed, so a long wait does not flood the log. */
  ingesting(done: number, total: number, chunks: number, failed: number): void {
    const line = `ingesting: ${done}/${total} files done, ${chunks} chunks, ${failed} failed`;
    if (line !== this.last) this.out.write(`${line}\n`);
    this.last = line;
  }

  stop(): void {}
}
