/** Documents from JSON Lines files: one JSON object per line, the text in a named field. */
import { readLines } from './lines.ts';

export async function* readJsonlFile(path: string, textField = 'text'): AsyncGenerator<string> {
  let count = 0;
  for await (const { number, text } of readLines(path)) {
    if (text.trim().length === 0) continue;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      throw new Error(`${path}: line ${number} is not valid JSON (${(err as Error).message})`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      throw new Error(`${path}: line ${number} is not a JSON object`);
    }
    const value = (record as Record<string, unknown>)[textField];
    if (typeof value !== 'string') {
      const fields = Object.keys(record).join(', ') || '(none)';
      const problem = value === undefined ? 'has no field' : `has a non-string field`;
      throw new Error(`${path}: line ${number} ${problem} "${textField}" (fields: ${fields})`);
    }
    if (value.length === 0) continue;
    count++;
    yield value;
  }
  if (count === 0) throw new Error(`${path}: no documents (no non-empty "${textField}" values)`);
}
