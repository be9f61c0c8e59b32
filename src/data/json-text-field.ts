/**
 * Reads one field of one JSON object from a stream of byte parts, emitting the field's string
 * value in pieces as it goes: the JSONL reader uses it for lines too long to hold as one string
 * (a 600 MB document), where JSON.parse cannot run. Other fields are skipped without being kept.
 *
 * It checks the structure it walks (object, keys, strings, escapes, nesting) but is more
 * lenient than JSON.parse inside skipped scalars (it does not check number syntax), and with a
 * repeated key it takes the first occurrence where JSON.parse takes the last.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const MAX_KEY_BYTES = 1 << 16;

const SIMPLE_ESCAPES: Record<number, string> = {
  0x22: '"', 0x5c: '\\', 0x2f: '/', 0x62: '\b', 0x66: '\f', 0x6e: '\n', 0x72: '\r', 0x74: '\t',
};

const isJsonWhitespace = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

type State =
  | 'start' // before "{"
  | 'key-or-end' // after "{": a key or "}"
  | 'key' // after ",": a key
  | 'key-text'
  | 'colon'
  | 'value'
  | 'field-text' // inside the wanted string
  | 'literal' // inside null / true / false / a number of the wanted field
  | 'skip' // inside a value of another field
  | 'after-value'
  | 'done';

/** What the wanted field held, once the object is complete. */
export type FieldOutcome = { kind: 'string' } | { kind: 'missing'; keys: string[] } | { kind: 'null' } | { kind: 'other'; what: string };

export class StreamingTextField {
  private state: State = 'start';
  private offset = 0; // bytes consumed, for messages
  private keyBytes: number[] = [];
  private keys: string[] = [];
  private currentIsField = false;
  private found: FieldOutcome | null = null;
  private literal = '';
  // Inside a skipped value: nesting depth, whether in a string, whether after a backslash.
  private depth = 0;
  private inString = false;
  private escaped = false;
  // Inside the wanted string: a pending escape (its text so far) and raw UTF-8 run decoding.
  private escape: string | null = null;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

  /** `fail(message)` builds the error for a message about the JSON (the caller adds file and line). */
  constructor(private readonly field: string, private readonly fail: (message: string) => Error) {}

  /** Consumes the next bytes; returns the text of the wanted field they hold (possibly ""). */
  feed(bytes: Uint8Array): string {
    let out = '';
    let i = 0;
    const n = bytes.length;
    while (i < n) {
      const b = bytes[i]!;
      switch (this.state) {
        case 'field-text': {
          if (this.escape !== null) {
            out += this.continueEscape(b);
            break;
          }
          // Copy the run up to the next quote or backslash in one decode.
          let end = i;
          while (end < n && bytes[end] !== QUOTE && bytes[end] !== BACKSLASH) {
            if (bytes[end]! < 0x20) throw this.fail(`control character 0x${bytes[end]!.toString(16)} inside a string at byte ${this.offset + end}`);
            end++;
          }
          if (end > i) out += this.decodeRun(bytes.subarray(i, end), true);
          if (end < n) {
            out += this.decodeRun(new Uint8Array(0), false);
            if (bytes[end] === QUOTE) {
              this.found = { kind: 'string' };
              this.state = 'after-value';
            } else {
              this.escape = '';
            }
            end++;
          }
          this.offset += end - i;
          i = end;
          continue;
        }
        case 'skip':
          this.skipByte(b);
          break;
        case 'key-text':
          if (this.escaped) this.escaped = false;
          else if (b === BACKSLASH) this.escaped = true;
          else if (b === QUOTE) {
            this.endKey();
            break;
          }
          if (this.keyBytes.length >= MAX_KEY_BYTES) throw this.fail(`a key longer than ${MAX_KEY_BYTES} bytes`);
          this.keyBytes.push(b);
          break;
        case 'literal':
          if (isJsonWhitespace(b) || b === 0x2c || b === 0x7d) {
            this.endLiteral();
            continue; // the delimiter is handled in the next state
          }
          // The kind of a scalar shows in its first bytes; a number may be long, keep only its start.
          if (this.literal.length < 8) this.literal += String.fromCharCode(b);
          break;
        default:
          this.structural(b);
      }
      i++;
      this.offset++;
    }
    return out;
  }

  /** Ends the object; returns what the wanted field held. */
  finish(): FieldOutcome {
    if (this.state === 'literal') this.endLiteral();
    if (this.state !== 'done') throw this.fail(`the line ends inside the JSON object (at byte ${this.offset})`);
    return this.found ?? { kind: 'missing', keys: this.keys };
  }

  private structural(b: number): void {
    if (isJsonWhitespace(b)) return;
    const unexpected = (expected: string) => this.fail(`expected ${expected} at byte ${this.offset}, found ${JSON.stringify(String.fromCharCode(b))}`);
    switch (this.state) {
      case 'start':
        if (b !== 0x7b) throw this.fail('not a JSON object');
        this.state = 'key-or-end';
        return;
      case 'key-or-end':
      case 'key':
        if (b === 0x7d && this.state === 'key-or-end') this.state = 'done';
        else if (b === QUOTE) {
          this.state = 'key-text';
          this.keyBytes = [];
        } else throw unexpected('a key');
        return;
      case 'colon':
        if (b !== 0x3a) throw unexpected('":"');
        this.state = 'value';
        return;
      case 'value':
        if (this.currentIsField && this.found === null) {
          if (b === QUOTE) this.state = 'field-text';
          else if (b === 0x7b || b === 0x5b) {
            this.found = { kind: 'other', what: b === 0x7b ? 'an object' : 'an array' };
            this.startSkip(b);
          } else {
            this.literal = String.fromCharCode(b);
            this.state = 'literal';
          }
        } else {
          this.startSkip(b);
        }
        return;
      case 'after-value':
        if (b === 0x2c) this.state = 'key';
        else if (b === 0x7d) this.state = 'done';
        else throw unexpected('"," or "}"');
        return;
      case 'done':
        throw this.fail(`unexpected text after the JSON object at byte ${this.offset}`);
      default:
        throw this.fail(`internal state ${this.state}`);
    }
  }

  private endKey(): void {
    let key: string;
    try {
      key = JSON.parse(`"${new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(this.keyBytes))}"`) as string;
    } catch (err) {
      throw this.fail(`a key that is not a valid JSON string (${(err as Error).message})`);
    }
    this.keys.push(key);
    this.currentIsField = key === this.field;
    this.state = 'colon';
  }

  private endLiteral(): void {
    const text = this.literal;
    if (text === 'null') this.found = { kind: 'null' };
    else if (text === 'true' || text === 'false') this.found = { kind: 'other', what: 'a boolean' };
    else if (/^-?\d/.test(text)) this.found = { kind: 'other', what: 'a number' };
    else throw this.fail(`an unexpected value ${JSON.stringify(text)} for "${this.field}"`);
    this.state = 'after-value';
  }

  private startSkip(b: number): void {
    this.state = 'skip';
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.skipByte(b);
  }

  /** One byte of a skipped value; a scalar ends at the "," or "}" that follows it. */
  private skipByte(b: number): void {
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (b === BACKSLASH) this.escaped = true;
      else if (b === QUOTE) {
        this.inString = false;
        if (this.depth === 0) this.state = 'after-value';
      }
      return;
    }
    if (b === QUOTE) this.inString = true;
    else if (b === 0x7b || b === 0x5b) this.depth++;
    else if (b === 0x7d || b === 0x5d) {
      if (this.depth === 0) {
        // The "}" closing the object ends a scalar value.
        if (b !== 0x7d) throw this.fail(`unbalanced "]" at byte ${this.offset}`);
        this.state = 'done';
        return;
      }
      this.depth--;
      if (this.depth === 0) this.state = 'after-value';
    } else if (b === 0x2c && this.depth === 0) this.state = 'key';
  }

  private decodeRun(bytes: Uint8Array, stream: boolean): string {
    try {
      return this.utf8.decode(bytes, { stream });
    } catch {
      throw this.fail('text that is not valid UTF-8');
    }
  }

  /** One byte after a backslash in the wanted string; returns the text it completes, if any. */
  private continueEscape(b: number): string {
    const sofar = this.escape!;
    if (sofar.length === 0) {
      if (b === 0x75) {
        this.escape = 'u';
        return '';
      }
      const simple = SIMPLE_ESCAPES[b];
      if (simple === undefined) throw this.fail(`bad escape "\\${String.fromCharCode(b)}" at byte ${this.offset}`);
      this.escape = null;
      return simple;
    }
    const hex = sofar + String.fromCharCode(b);
    if (!/^u[0-9a-fA-F]*$/.test(hex)) throw this.fail(`bad \\u escape at byte ${this.offset}`);
    if (hex.length < 5) {
      this.escape = hex;
      return '';
    }
    this.escape = null;
    // A surrogate pair written as two escapes joins again when the pieces are concatenated.
    return String.fromCharCode(parseInt(hex.slice(1), 16));
  }
}
