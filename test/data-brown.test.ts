import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BROWN_DOCUMENT_COUNT,
  detokenize,
  isBrownValidation,
  loadBrownCorpus,
  loadBrownDocuments,
  stripBrownTags,
} from '../src/data/brown.ts';

// Lines as they appear in the package's files (ca01, cb02, cj20, …).
const CA01_OPENING =
  '\n\n\tThe/at Fulton/np-tl County/nn-tl Grand/jj-tl Jury/nn-tl said/vbd Friday/nr an/at investigation/nn of/in ' +
  "Atlanta's/np$ recent/jj primary/nn election/nn produced/vbd ``/`` no/at evidence/nn ''/'' that/cs any/dti " +
  'irregularities/nns took/vbd place/nn ./.\n\n\n' +
  "\t``/`` Only/rb a/at relative/jj handful/nn of/in such/jj reports/nns was/bedz received/vbn ''/'' ,/, the/at " +
  'jury/nn said/vbd ,/, ``/`` considering/in the/at widespread/jj interest/nn ./.\n';

test('strips tags and quotes from real Brown lines', () => {
  assert.equal(
    stripBrownTags(CA01_OPENING),
    'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.' +
      '\n\n"Only a relative handful of such reports was received", the jury said, "considering the widespread interest.',
  );
});

test('lines without a tab continue the paragraph; headlines stand alone', () => {
  const tagged =
    '\n\n\tSheriff/nn-tl Felix/np Tabb/np said/vbd so/rb ./.\n' +
    "``/`` There/ex wasn't/bedz* a/at bit/nn of/in trouble/nn ''/'' ./.\n\n\n" +
    'Merger/nn-hl proposed/vbn-hl \nHowever/wrb ,/, the/at jury/nn said/vbd it/pps ./.\n';
  assert.equal(
    stripBrownTags(tagged),
    'Sheriff Felix Tabb said so. "There wasn\'t a bit of trouble".\n\nMerger proposed\n\nHowever, the jury said it.',
  );
});

test('the tag is what follows the last slash; doubled sentence ends collapse', () => {
  assert.equal(stripBrownTags('\tabout/rb 1-1/2/cd miles/nns and/or/cc more/ap ./.'), 'about 1-1/2 miles and/or more.');
  assert.equal(stripBrownTags('\tby/in Ivan/np Allen/np Jr./np ./.'), 'by Ivan Allen Jr.');
  assert.equal(stripBrownTags("\tbeing/beg 1/8''/nn ''/'' brass/nn ./."), 'being 1/8" brass.');
  assert.equal(stripBrownTags('\t(/( Robertson/np ,/, 1937/cd ;/. ;/. Wyatt/np )/) ./.'), '(Robertson, 1937; Wyatt).');
});

test('detokenize: brackets, single quotes, dashes', () => {
  assert.equal(detokenize(['a', '(', 'b', ')', 'c']), 'a (b) c');
  assert.equal(detokenize(['he', 'said', "'", 'hi', "'", 'twice']), "he said 'hi' twice");
  assert.equal(detokenize(['size', '--', 'a', 'particle']), 'size -- a particle');
  assert.equal(detokenize(['Why', '?', '!']), 'Why?!');
  assert.equal(detokenize([]), '');
});

test('every document becomes readable text with no tags left', () => {
  const docs = loadBrownDocuments();
  assert.equal(docs.length, BROWN_DOCUMENT_COUNT);
  assert.equal(docs[0]!.id, 'ca01');
  assert.equal(docs[499]!.id, 'cr09');
  let words = 0;
  for (const d of docs) {
    assert.ok(d.text.length > 1000, `${d.id} is too short`);
    // A tag would leave "word/xx" fragments: a slash followed by a lowercase tag and a space.
    assert.doesNotMatch(d.text, /\/(nn|at|in|jj|vbd|np)[\s-]/, d.id);
    assert.ok(!d.text.includes('``') && !d.text.includes("''"), `${d.id} still has Brown quote tokens`);
    assert.ok(!/ [.,;:?!](\s|$)/.test(d.text), `${d.id} has a space before punctuation`);
    words += d.text.split(/\s+/).length;
  }
  assert.ok(words > 900_000 && words < 1_200_000, `about a million words, got ${words}`);
});

test('split is by whole document, deterministic and ~5% validation', () => {
  const a = loadBrownCorpus();
  const b = loadBrownCorpus();
  assert.equal(a.validation.length, 25);
  assert.equal(a.train.length, 475);
  assert.deepEqual(a, b);
  const docs = loadBrownDocuments();
  const expectedValidation = docs.filter((_, i) => isBrownValidation(i)).map((d) => d.text);
  assert.deepEqual(a.validation, expectedValidation);
  assert.equal(a.validation[0], docs[9]!.text);
  const train = new Set(a.train);
  for (const v of a.validation) assert.ok(!train.has(v));
  const tenth = loadBrownCorpus({ validationEvery: 10 });
  assert.equal(tenth.validation.length, 50);
  assert.throws(() => loadBrownCorpus({ validationEvery: 1 }), /validationEvery must be an integer >= 2, got 1/);
});
