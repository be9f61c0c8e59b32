/**
 * Which special tokens go in front of a prompt. Our tokenizers add none (documents are only
 * separated by EOS). Hugging Face LLaMA tokenizers usually start every text with BOS, said
 * either by tokenizer_config.json (`add_bos_token`) or by a TemplateProcessing post-processor in
 * tokenizer.json; a model conditioned that way should see it in front of the prompt too.
 */

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Ids of the special tokens a TemplateProcessing puts before the text of a single sequence. */
function templatePrefix(processor: unknown): number[] | null {
  if (!isRecord(processor)) return null;
  if (processor.type === 'Sequence' && Array.isArray(processor.processors)) {
    for (const p of processor.processors) {
      const found = templatePrefix(p);
      if (found) return found;
    }
    return null;
  }
  if (processor.type !== 'TemplateProcessing' || !Array.isArray(processor.single)) return null;
  const specials = isRecord(processor.special_tokens) ? processor.special_tokens : {};
  const ids: number[] = [];
  for (const piece of processor.single) {
    if (!isRecord(piece)) break;
    if ('Sequence' in piece) return ids;
    const tok = piece.SpecialToken;
    if (!isRecord(tok) || typeof tok.id !== 'string') break;
    const entry = specials[tok.id];
    if (!isRecord(entry) || !Array.isArray(entry.ids)) break;
    ids.push(...entry.ids.filter((x): x is number => Number.isInteger(x)));
  }
  return null;
}

/** The ids to put before an encoded prompt. */
export function promptPrefix(tokenizerJson: object | null, tokenizerConfig: Json | null, bosId: number | null): number[] {
  const add = tokenizerConfig?.add_bos_token;
  if (add === true) return bosId === null ? [] : [bosId];
  if (add === false) return [];
  return (tokenizerJson && templatePrefix((tokenizerJson as Json).post_processor)) ?? [];
}
