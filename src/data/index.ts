/**
 * Data: corpora, tokenizers, packing, token cache and sampling order.
 *
 *   const corpus = sources ? await fileCorpus(sources, { textField }) : brownCorpus('train');
 *   const tokenizer = tokenizerPath
 *     ? await loadTokenizer(tokenizerPath)
 *     : (await trainByteLevelBpeOnCorpus(corpus, { vocabSize: 8000 })).tokenizer;   // then saveTokenizer
 *   const data = await TokenDataset.fromCorpus(corpus, tokenizer, { cacheDir, workers: 2 });
 *   // documents of any size: corpus.pieces() streams them; the cache tokenises them in chunks
 *   const sampler = new SequenceSampler({ numSequences: data.numSequences(seqLen), seed });
 *   for (const i of sampler.nextBatch(microBatch)) data.readSequence(i, seqLen);   // Int32Array
 *   // checkpoint: sampler.state() -> {epoch, position}; resume: new SequenceSampler({…, state})
 *   // or train while tokenising: the first epoch goes shard by shard, each shard once it is on disk
 *   const { dataset, done } = TokenDataset.build(corpus, tokenizer, { cacheDir, workers: 2 });
 *   const growing = new SequenceSampler({ numSequences: dataset.sequences(seqLen), seed, shardSequences: shardSequences(2 ** 24, seqLen) });
 *   await growing.ready(batch);   // then growing.nextBatch(batch) as above
 */
export { loadBrownCorpus, loadBrownDocuments, stripBrownTags, detokenize, isBrownValidation, BROWN_DOCUMENT_COUNT } from './brown.ts';
export type { BrownDocument, BrownSplit } from './brown.ts';
export { brownCorpus, corpusFromPieces, fileCorpus, memoryCorpus } from './corpus.ts';
export type { Corpus, FileCorpusOptions } from './corpus.ts';
export { resolveDataFiles, dataFormatOf, DATA_EXTENSIONS } from './sources.ts';
export type { DataFormat } from './sources.ts';
export { readTextFile, readTextPieces } from './text-files.ts';
export type { TextFileMode } from './text-files.ts';
export { readJsonlFile, readJsonlPieces } from './jsonl.ts';
export type { RecordReadOptions } from './jsonl.ts';
export { joinPieces, piecesOf, tokenizerChunks } from './pieces.ts';
export type { TextChunk, TextPiece } from './pieces.ts';
export { readParquetFile, parquetColumns } from './parquet.ts';
export type { Tokenizer } from './tokenizer.ts';
export { ByteLevelBpe, DEFAULT_EOS_TOKEN, byteLevelBpeFromJSON } from './bpe.ts';
export { trainByteLevelBpe, trainByteLevelBpeFromCounts, trainByteLevelBpeOnCorpus, tokenizerTrainingMemoryBytes, WordCounter } from './bpe-train.ts';
export type { BpeTrainOptions, TokenizerSample } from './bpe-train.ts';
export { HfTokenizer } from './hf-tokenizer.ts';
export { SentencePieceBpe } from './sentencepiece-bpe.ts';
export { loadTokenizer, saveTokenizer, tokenizerFromJSON } from './tokenizer-files.ts';
export type { TokenizerImplementation } from './tokenizer-files.ts';
export { packSequences, withEos, sequenceCount } from './packing.ts';
export { buildTokenCache, tokenCacheKey, tokenizerHash, dtypeForVocab } from './token-cache.ts';
export { TokenDataset } from './token-dataset.ts';
export type { TokenCacheBuild } from './token-dataset.ts';
export type { TokenCacheMeta, TokenCacheOptions, TokenDtype } from './token-cache.ts';
export { SequenceSampler, epochPermutation, shardPermutation, shardSequences, DEFAULT_SHARD_TOKENS } from './sampler.ts';
export type { SamplerState, SequenceCount, SequenceSamplerOptions } from './sampler.ts';
