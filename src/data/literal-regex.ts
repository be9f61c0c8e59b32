/**
 * A global regex that finds any of a set of literal strings (added tokens), longest first at each
 * position. Tokenizers such as LLaMA's have hundreds of added tokens ("<0x00>" … "<0xFF>"); a flat
 * alternation of them is tried in full at every character, which made encoding some ten times
 * slower than the BPE itself. Grouping the alternatives by first character lets the regex
 * engine reject almost every position at once.
 */

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The regex, or null for no strings. Empty strings are ignored. */
export function literalAlternation(strings: readonly string[]): RegExp | null {
  const groups = new Map<string, string[]>();
  // Longest first, so that a token that contains another is matched whole.
  for (const s of [...new Set(strings)].filter((x) => x.length > 0).sort((a, b) => b.length - a.length)) {
    const first = String.fromCodePoint(s.codePointAt(0)!);
    let rests = groups.get(first);
    if (rests === undefined) groups.set(first, (rests = []));
    rests.push(s.slice(first.length));
  }
  if (groups.size === 0) return null;
  const parts = [...groups].map(([first, rests]) => `${escapeRegex(first)}(?:${rests.map(escapeRegex).join('|')})`);
  return new RegExp(parts.join('|'), 'gu');
}
