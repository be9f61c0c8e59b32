/** CLI error handling: a user-facing message and an exit code, never a stack trace. */

/** An error in what the user asked for (bad flag, bad file): exit code 2. */
export class UsageError extends Error {}

export function fail(err: unknown): never {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`relora: error: ${msg}\n`);
  if (process.env.RELORA_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
}

/**
 * A script's option parsing (node:util parseArgs, parseIntOption…): a bad flag or value ends the
 * process as a usage error — message, exit 2 — never a stack trace.
 */
export function scriptOptions<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    fail(typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS') ? new UsageError((err as Error).message) : err);
  }
}

export function parseIntOption(name: string, min = 1): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new UsageError(`${name}: expected an integer >= ${min}, got "${v}"`);
    }
    return n;
  };
}

export function parseFloatOption(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${name}: expected a number, got "${v}"`);
    return n;
  };
}
