/** Reading a small JSON file of a model folder, its size checked before it is read. */
import { readFileSync, statSync } from 'node:fs';

/**
 * Parses the JSON object in `path`. A file larger than `maxBytes` is refused by its size
 * (a hostile or mistaken multi-gigabyte file is never read into memory); every error names the file.
 */
export function readJsonObjectFile(path: string, maxBytes: number): Record<string, unknown> {
  let text: string;
  try {
    const bytes = statSync(path).size;
    if (bytes > maxBytes) throw new Error(`the file is ${bytes.toLocaleString('en-US')} bytes, more than the ${(maxBytes / 2 ** 20).toFixed(0)} MiB such a file can be`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`, { cause: e });
  }
  return parseJsonObject(text, path);
}

/** Parses `text` (the content of `path`, named in errors) as a JSON object. */
export function parseJsonObject(text: string, path: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${path}: expected a JSON object`);
  return raw as Record<string, unknown>;
}
