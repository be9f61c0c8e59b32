/**
 * Documents from Parquet files (the Hugging Face datasets format), one text column, read one row
 * group at a time so that only a row group's worth of text is in memory.
 */
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { nullsSkippedNote, type RecordReadOptions } from './jsonl.ts';

/** The top-level column names of a Parquet file. */
export async function parquetColumns(path: string): Promise<string[]> {
  const file = await asyncBufferFromFile(path);
  const metadata = await parquetMetadataAsync(file);
  return parquetSchema(metadata).children.map((c) => c.element.name);
}

/**
 * The texts of one column; null cells are skipped and counted, as in the JSONL reader. A row
 * group's text is in memory at once (the cells are strings already), so options.maxPieceBytes
 * does not apply here.
 */
export async function* readParquetFile(path: string, textColumn = 'text', options: RecordReadOptions = {}): AsyncGenerator<string> {
  const file = await asyncBufferFromFile(path);
  let metadata;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw new Error(`${path}: not a readable Parquet file (${(err as Error).message})`);
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  if (!columns.includes(textColumn)) {
    throw new Error(`${path}: no column "${textColumn}" (columns: ${columns.join(', ') || '(none)'})`);
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let rowStart = 0;
  let count = 0;
  let nulls = 0;
  for (const [group, rowGroup] of metadata.row_groups.entries()) {
    const rowEnd = rowStart + Number(rowGroup.num_rows);
    let rows;
    try {
      rows = await parquetReadObjects({
        file,
        metadata,
        columns: [textColumn],
        rowStart,
        rowEnd,
        compressors,
        parsers: { stringFromBytes: (bytes: Uint8Array) => decoder.decode(bytes) },
      });
    } catch (err) {
      const why = err instanceof TypeError && /encoded data|decode/i.test(err.message) ? 'text that is not valid UTF-8' : (err as Error).message;
      throw new Error(`${path}: row group ${group} (rows ${rowStart}..${rowEnd - 1}), column "${textColumn}": ${why}`);
    }
    for (const [i, row] of rows.entries()) {
      const value: unknown = row[textColumn];
      if (value === null || value === undefined) {
        nulls++;
        continue;
      }
      if (typeof value !== 'string') {
        throw new Error(`${path}: row ${rowStart + i}, column "${textColumn}" holds ${typeof value}, expected text`);
      }
      if (value.length === 0) continue;
      count++;
      yield value;
    }
    rowStart = rowEnd;
  }
  if (nulls > 0) options.onNote?.(nullsSkippedNote(path, textColumn, nulls));
  if (count === 0) throw new Error(`${path}: no documents (column "${textColumn}" has no non-empty text)`);
}
