/**
 * Documents from plain-text files: either each file is one document, or documents are
 * separated by blank lines (lines holding only whitespace).
 */
import { readFile } from 'node:fs/promises';
import { firstInvalidUtf8Line, readLines } from './lines.ts';

export type TextFileMode = 'file' | 'blank-line';

export async function* readTextFile(path: string, mode: TextFileMode = 'file'): AsyncGenerator<string> {
  if (mode === 'file') {
    yield await readWholeFile(path);
    return;
  }
  let paragraph: string[] = [];
  let count = 0;
  for await (const { text } of readLines(path)) {
    if (text.trim().length === 0) {
      if (paragraph.length > 0) {
        yield paragraph.join('\n');
        count++;
        paragraph = [];
      }
    } else {
      paragraph.push(text);
    }
  }
  if (paragraph.length > 0) {
    yield paragraph.join('\n');
    count++;
  }
  if (count === 0) throw new Error(`${path}: the file holds no text (empty or only whitespace)`);
}

/** The whole file as one document (it is one document, so it is held in memory anyway). */
async function readWholeFile(path: string): Promise<string> {
  const bytes = await readFile(path);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${path}: line ${firstInvalidUtf8Line(bytes)} is not valid UTF-8`);
  }
  if (text.trim().length === 0) throw new Error(`${path}: the file holds no text (empty or only whitespace)`);
  return text;
}
