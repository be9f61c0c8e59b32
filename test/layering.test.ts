/**
 * The shape of src/: imports point one way along the layers, and files stay short enough to read
 * in one sitting. Both checks read the source as text (no module is loaded) and list every
 * offending import or file, so one run shows all there is to fix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const SRC = resolve(new URL('../src', import.meta.url).pathname);

/**
 * The layers, lowest first:
 *   engine → nn/optim → relora/io/data → train → infer/bench/report → api → cli
 * A folder may import itself and the folders listed for it, nothing else. `api` (with
 * src/index.ts, the package entry) is the library's public surface; the CLI may use it.
 */
const ALLOWED: Record<string, readonly string[]> = {
  engine: [],
  nn: ['engine'],
  optim: ['engine'],
  relora: ['engine', 'nn', 'optim'],
  // A Hugging Face folder holds its tokenizer, which data reads and writes.
  io: ['engine', 'nn', 'data'],
  // Corpora and tokenizers know nothing of models.
  data: ['engine'],
  // Data-parallel processes (MPI) and what passes between them; a sharded optimizer (ZeRO) knows
  // AdamW's partition and moments, as PyTorch's ZeroRedundancyOptimizer wraps its optimizer.
  parallel: ['engine', 'optim'],
  train: ['engine', 'nn', 'optim', 'relora', 'io', 'data', 'parallel'],
  infer: ['engine', 'nn', 'optim', 'relora', 'io', 'data', 'train'],
  bench: ['engine', 'nn', 'optim', 'relora', 'io', 'data', 'train', 'parallel'],
  report: ['engine', 'nn', 'optim', 'relora', 'io', 'data', 'train'],
  api: ['engine', 'nn', 'optim', 'relora', 'io', 'data', 'train', 'infer', 'bench', 'report'],
  // The demo page's run, bundled for the browser: nothing that touches files.
  demo: ['engine', 'nn', 'optim', 'relora'],
  cli: ['engine', 'nn', 'optim', 'relora', 'io', 'data', 'train', 'infer', 'bench', 'report', 'api', 'parallel', 'demo'],
};

/** Files in src/ over this many lines fail the size check unless listed below. */
const MAX_LINES = 400;

/** Files allowed past MAX_LINES, and why splitting them would not make them easier to read. */
const LONG_FILES: Record<string, string> = {
  'io/safetensors.ts': 'one file format: header parsing and validation, streamed reading and writing, dtype conversion',
};

/** Lines as `wc -l` counts them, plus a last line without its newline. */
const lineCount = (text: string): number => text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return /\.(ts|mts|cts)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The layer a file of src/ belongs to: its top folder; files directly in src/ belong to `api`. */
function layerOf(file: string): string {
  const parts = relative(SRC, file).split(sep);
  return parts.length === 1 ? 'api' : parts[0];
}

/** Every relative import of a source text with its line: static, re-exports, side-effect and `import()`. */
function importsOf(text: string): { line: number; specifier: string }[] {
  return ts.preProcessFile(text, true, true).importedFiles
    .filter((f) => f.fileName.startsWith('.'))
    .map((f) => ({ line: text.slice(0, f.pos).split('\n').length, specifier: f.fileName }));
}

/** `src/path:line: from → to ('specifier')` for each import of `text` (the file at `file`) that runs against the layers. */
function violationsIn(file: string, text: string): string[] {
  const from = layerOf(file);
  const where = (line: number) => `src/${relative(SRC, file).split(sep).join('/')}:${line}`;
  const out: string[] = [];
  for (const imp of importsOf(text)) {
    const target = relative(SRC, resolve(dirname(file), imp.specifier));
    const to = target.startsWith('..') ? 'outside src/' : layerOf(join(SRC, target));
    if (to === from) continue;
    if (ALLOWED[from] === undefined) out.push(`${where(imp.line)}: folder "${from}" has no place in the layering (add it to ALLOWED)`);
    else if (!ALLOWED[from].includes(to)) out.push(`${where(imp.line)}: ${from} → ${to} ('${imp.specifier}')`);
  }
  return out;
}

test('the import check finds every kind of import, with its file and line', () => {
  const text = [
    "import { a } from '../engine/a.ts';",
    'import type {',
    '  B,',
    "} from '../cli/b.ts';",
    "export { c } from './c.ts';",
    "import '../report/d.ts';",
    "const e = await import('../bench/e.ts');",
    "import { f } from 'node:fs';",
    "import { g } from '../../tools/g.ts';",
  ].join('\n');
  assert.deepEqual(violationsIn(join(SRC, 'train', 'example.ts'), text), [
    "src/train/example.ts:4: train → cli ('../cli/b.ts')",
    "src/train/example.ts:6: train → report ('../report/d.ts')",
    "src/train/example.ts:7: train → bench ('../bench/e.ts')",
    "src/train/example.ts:9: train → outside src/ ('../../tools/g.ts')",
  ]);
  assert.deepEqual(violationsIn(join(SRC, 'cli', 'commands', 'x.ts'), "import { h } from '../../report/h.ts';"), []);
  assert.deepEqual(violationsIn(join(SRC, 'index.ts'), "export { i } from './api/i.ts';\nimport './cli/main.ts';"),
    ["src/index.ts:2: api → cli ('./cli/main.ts')"]);
});

test('every folder of src/ has its place in the layering', () => {
  const folders = new Set(sourceFiles(SRC).map(layerOf));
  const unknown = [...folders].filter((f) => !(f in ALLOWED));
  assert.deepEqual(unknown, [], `folders missing from ALLOWED: ${unknown.join(', ')}`);
});

test('imports point one way: engine → nn/optim → relora/io/data → train → infer/bench/report → api → cli', () => {
  const violations = sourceFiles(SRC).flatMap((f) => violationsIn(f, readFileSync(f, 'utf8')));
  assert.deepEqual(violations, [], `${violations.length} imports run against the layering:\n${violations.join('\n')}`);
});

test(`no file in src/ is over ${MAX_LINES} lines, except the listed ones`, () => {
  const lengths = new Map(sourceFiles(SRC).map((f) => [relative(SRC, f).split(sep).join('/'), lineCount(readFileSync(f, 'utf8'))]));
  const tooLong = [...lengths].filter(([f, n]) => n > MAX_LINES && !(f in LONG_FILES)).map(([f, n]) => `src/${f}: ${n} lines`);
  assert.deepEqual(tooLong, [], `files over ${MAX_LINES} lines (split them, or list them in LONG_FILES with the reason):\n${tooLong.join('\n')}`);
  // An exception that no longer applies is removed, so the list stays a list of real exceptions.
  const stale = Object.keys(LONG_FILES).filter((f) => (lengths.get(f) ?? 0) <= MAX_LINES);
  assert.deepEqual(stale, [], `LONG_FILES lists files that are not over ${MAX_LINES} lines (any more): ${stale.join(', ')}`);
});
