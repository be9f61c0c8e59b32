/**
 * Turns the data sources a user names (files, folders, glob patterns) into a sorted list of
 * data files, failing early with the source that matched nothing.
 */
import { stat, readdir } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { glob, isDynamicPattern } from 'tinyglobby';

export type DataFormat = 'txt' | 'jsonl' | 'parquet';

const FORMAT_OF_EXTENSION: Record<string, DataFormat> = {
  '.txt': 'txt',
  '.text': 'txt',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.parquet': 'parquet',
};

export const DATA_EXTENSIONS = Object.keys(FORMAT_OF_EXTENSION);

/** The format of a data file by its extension, or undefined for other files. */
export function dataFormatOf(path: string): DataFormat | undefined {
  return FORMAT_OF_EXTENSION[extname(path).toLowerCase()];
}

async function statOrNull(path: string) {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

async function dataFilesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue; // hidden files and folders: editor and VCS clutter
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await dataFilesUnder(path)));
    else if (dataFormatOf(path) !== undefined) out.push(path);
  }
  return out;
}

/**
 * Absolute paths of the data files behind `sources`, in order of the sources; files found in a
 * folder or by a glob are sorted. A file named directly must have a known extension; files of
 * other types inside folders and glob results are skipped. Each file appears once.
 */
export async function resolveDataFiles(sources: readonly string[], cwd = process.cwd()): Promise<string[]> {
  if (sources.length === 0) throw new Error('data sources: none given (expected files, folders or glob patterns)');
  const seen = new Set<string>();
  const files: string[] = [];
  const add = (path: string) => {
    if (!seen.has(path)) {
      seen.add(path);
      files.push(path);
    }
  };
  for (const source of sources) {
    const path = resolve(cwd, source);
    const info = await statOrNull(path);
    if (info?.isFile()) {
      if (dataFormatOf(path) === undefined) {
        throw new Error(`data source ${source}: unsupported file type (expected ${DATA_EXTENSIONS.join(', ')})`);
      }
      add(path);
    } else if (info?.isDirectory()) {
      const found = (await dataFilesUnder(path)).sort();
      if (found.length === 0) throw new Error(`data source ${source}: folder holds no data files (${DATA_EXTENSIONS.join(', ')})`);
      found.forEach(add);
    } else if (isDynamicPattern(source)) {
      const found = (await glob(source, { cwd, absolute: true, onlyFiles: true }))
        .filter((f) => dataFormatOf(f) !== undefined)
        .sort();
      if (found.length === 0) throw new Error(`data source ${source}: no data files matched the pattern`);
      found.forEach(add);
    } else {
      throw new Error(`data source ${source}: no such file or folder (${path})`);
    }
  }
  return files;
}
