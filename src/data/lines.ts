/**
 * Streams the lines of a file as strictly decoded UTF-8, one line at a time, so that a multi-GB
 * file never sits in memory and an encoding error can name its line.
 */
import { createReadStream } from 'node:fs';

export interface Line {
  /** 1-based line number. */
  number: number;
  text: string;
}

const NEWLINE = 0x0a;

/**
 * Lines without their "\n" (or "\r\n"). The newline byte never occurs inside a multi-byte UTF-8
 * sequence, so splitting bytes before decoding is safe, and each line is decoded on its own.
 */
export async function* readLines(path: string): AsyncGenerator<Line> {
  // ignoreBOM keeps U+FEFF in the text; only the one at the start of the file is dropped below.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let number = 0;
  const decode = (bytes: Uint8Array): Line => {
    number++;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch {
      throw new Error(`${path}: line ${number} is not valid UTF-8`);
    }
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (number === 1 && text.startsWith('\uFEFF')) text = text.slice(1);
    return { number, text };
  };

  let pending: Buffer[] = [];
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
      const piece = chunk.subarray(start, nl);
      if (pending.length > 0) {
        pending.push(piece);
        yield decode(Buffer.concat(pending));
        pending = [];
      } else {
        yield decode(piece);
      }
      start = nl + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) yield decode(Buffer.concat(pending));
}

/** The line number of the first invalid UTF-8 in some bytes (for errors about whole files). */
export function firstInvalidUtf8Line(bytes: Uint8Array): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let line = 1;
  let start = 0;
  for (;;) {
    let end = bytes.indexOf(NEWLINE, start);
    if (end < 0) end = bytes.length;
    try {
      decoder.decode(bytes.subarray(start, end));
    } catch {
      return line;
    }
    if (end >= bytes.length) return -1;
    start = end + 1;
    line++;
  }
}
