/**
 * HTTP clients that misbehave on purpose, on raw sockets: a multipart upload with hand-written part headers,
 * and a slow-loris client that trickles its request one byte at a time.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

export interface RawReply {
  status: number;
  body: string;
}

/** A multipart upload with a hand-written Content-Disposition, so the filename bytes are exactly the test's. */
export function rawUpload(url: string, key: string, disposition: Buffer, content: Buffer): Promise<RawReply> {
  const boundary = `----cairn${randomUUID()}`;
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; `),
    disposition,
    Buffer.from('\r\nContent-Type: application/octet-stream\r\n\r\n'),
    content,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return new Promise((resolve, reject) => {
    const request = http.request(`${url}/v1/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length },
    });
    request.on('response', (response) => {
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => resolve({ status: response.statusCode!, body: Buffer.concat(parts).toString('utf8') }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

export interface TrickleResult {
  elapsedMs: number;
  closedAt: number;
  /** What the server sent before closing (Node's 408 answer, if any). */
  reply: string;
  bytesSent: number;
}

/** Sends `head` at once, then one byte of `trickle` every `everyMs` until the server closes the connection. */
export function slowClient(port: number, head: string, trickle: Buffer, everyMs: number): Promise<TrickleResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    const replies: Buffer[] = [];
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (part: Buffer) => replies.push(part));
    socket.on('error', () => undefined); // a reset after the server gives up is expected
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        if (sent >= trickle.length) {
          clearInterval(timer);
          socket.destroy();
          return reject(new Error(`the server did not close the slow connection within ${Date.now() - started} ms`));
        }
        socket.write(trickle.subarray(sent, sent + 1));
        sent += 1;
      }, everyMs);
    });
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ elapsedMs: Date.now() - started, closedAt: Date.now(), reply: Buffer.concat(replies).toString('latin1'), bytesSent: sent });
    });
  });
}
