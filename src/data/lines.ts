/**
 * Streams the lines of a file as strictly decoded UTF-8, so that a multi-GB file never sits in
 * memory and an encoding error can name its line. A line longer than `maxPartBytes` comes in
 * parts, so that even a single line of any size is read in bounded memory.
 */
import { createReadStream } from 'node:fs';

export interface Line {
  /** 1-based line number. */
  number: number;
  text: string;
}

/** Raw bytes of (part of) a line, without its "\n"; `end` marks the line's last part. */
export interface LinePart {
  number: number;
  bytes: Buffer;
  end: boolean;
}

const NEWLINE = 0x0a;
const READ_CHUNK = 1 << 20;

/** Default longest line part: lines up to this size come whole. */
export const DEFAULT_MAX_LINE_PART_BYTES = 16 * 2 ** 20;

/**
 * Line parts: every line as one part when it has at most `maxPartBytes` bytes, else as parts of
 * between one and two times that size. The newline byte never occurs inside a multi-byte UTF-8 sequence, so splitting
 * bytes at newlines before decoding is safe (parts of one long line are decoded as a stream).
 */
export async function* readLineParts(path: string, maxPartBytes = DEFAULT_MAX_LINE_PART_BYTES): AsyncGenerator<LinePart> {
  let number = 1;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const take = (last: Buffer): Buffer => {
    const bytes = pending.length === 0 ? last : Buffer.concat([...pending, last]);
    pending = [];
    pendingBytes = 0;
    return bytes;
  };
  for await (const chunk of createReadStream(path, { highWaterMark: Math.min(READ_CHUNK, maxPartBytes) }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
      yield { number, bytes: take(chunk.subarray(start, nl)), end: true };
      number++;
      start = nl + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes >= maxPartBytes) yield { number, bytes: take(Buffer.alloc(0)), end: false };
    }
  }
  if (pending.length > 0) yield { number, bytes: take(Buffer.alloc(0)), end: true };
}

/** Why a line is refused: bytes that are not UTF-8, or a line too long for one string. */
function decodeError(path: string, number: number, err: unknown): Error {
  if (err instanceof RangeError && !/encoded data|decode/i.test(err.message)) {
    return new Error(`${path}: line ${number} is too long to hold as one string (${err.message})`);
  }
  return new Error(`${path}: line ${number} is not valid UTF-8`);
}

/**
 * Decodes the parts of lines into text: a trailing "\r" of a line is dropped, and so is a U+FEFF
 * (byte-order mark) at the start of the file; any other U+FEFF is text.
 */
export class LineDecoder {
  // ignoreBOM keeps U+FEFF in the text; only the one at the start of the file is dropped below.
  private readonly decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  private heldCarriageReturn = false;
  private atLineStart = true;

  constructor(private readonly path: string) {}

  /** The text of one part; parts must come in order. */
  decode(part: LinePart): string {
    let text: string;
    try {
      text = this.decoder.decode(part.bytes, { stream: !part.end });
    } catch (err) {
      throw decodeError(this.path, part.number, err);
    }
    if (part.number === 1 && this.atLineStart && text.startsWith('\uFEFF')) text = text.slice(1);
    if (this.heldCarriageReturn) text = `\r${text}`;
    this.heldCarriageReturn = false;
    if (text.endsWith('\r')) {
      text = text.slice(0, -1);
      // A "\r" at the end of a middle part may be the one before the line's "\n": hold it back.
      this.heldCarriageReturn = !part.end;
    }
    this.atLineStart = part.end;
    return text;
  }
}

/** Whole lines without their "\n" (or "\r\n"). */
export async function* readLines(path: string): AsyncGenerator<Line> {
  const decoder = new LineDecoder(path);
  let parts: string[] = [];
  for await (const part of readLineParts(path)) {
    parts.push(decoder.decode(part));
    if (part.end) {
      yield { number: part.number, text: parts.length === 1 ? parts[0]! : parts.join('') };
      parts = [];
    }
  }
}

/** The line number of the first invalid UTF-8 in a file, or -1 (for errors about whole files). */
export async function firstInvalidUtf8Line(path: string): Promise<number> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for await (const part of readLineParts(path)) {
    try {
      decoder.decode(part.bytes, { stream: !part.end });
    } catch {
      return part.number;
    }
  }
  return -1;
}
