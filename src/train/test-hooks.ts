/**
 * Fault injection for the reliability tests. The tests run training in a child process (so that
 * they can SIGKILL it), hence the switches are environment variables. In a real run none is set
 * and every hook returns at once.
 *
 *   RELORA_TEST_PAUSE=<point>        when the run reaches <point>, print
 *                                    "relora-test: paused at <point>" on stderr and block, so the
 *                                    test can kill the process exactly there;
 *   RELORA_TEST_RELEASE=<file>       …until that file exists, then carry on (at most 120 s);
 *   RELORA_TEST_FAIL=<point>:<CODE>  throw an error with that errno code (e.g. ENOSPC) at <point>.
 *
 * Points: "checkpoint:<step>" (inside the write of that checkpoint: model.safetensors is in the
 * temporary folder, the rest is not) and "update:<step>" (inside that update: gradients
 * computed, optimizer not yet stepped) and "metrics" (every append to metrics.jsonl); after the
 * last update "finish:eval", "finish:rank", "finish:summary" and (in the CLI) "finish:report".
 */
import { existsSync } from 'node:fs';

const PAUSE_LIMIT_MS = 120_000;
const POLL_MS = 20;

let sleeper: Int32Array | null = null;

function sleepSync(ms: number): void {
  sleeper ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.wait(sleeper, 0, 0, ms);
}

export function testHook(point: string): void {
  const env = process.env;
  if (env.RELORA_TEST_PAUSE === point) {
    process.stderr.write(`relora-test: paused at ${point}\n`);
    const release = env.RELORA_TEST_RELEASE;
    const until = Date.now() + PAUSE_LIMIT_MS;
    // Blocking (not awaiting) keeps everything else in the process still, signal handlers included.
    while (Date.now() < until && !(release && existsSync(release))) sleepSync(POLL_MS);
  }
  const fail = env.RELORA_TEST_FAIL;
  if (fail && fail.startsWith(`${point}:`)) {
    const code = fail.slice(point.length + 1);
    throw Object.assign(new Error(`${code}: injected by RELORA_TEST_FAIL at ${point}`), { code });
  }
}
