/** Whether a process id belongs to a running process, for telling a crashed writer's leftovers from a live one's. */
import { readFileSync } from 'node:fs';

/**
 * True when process `pid` exists (on this machine) and has not exited, including one owned by
 * another user; false once it has exited. A zombie — exited, but not yet reaped by its parent —
 * counts as exited: in a container whose PID 1 never reaps orphans (a rank that mpirun left
 * behind, a killed trainer) it would otherwise hold its locks forever. A pid can be reused, so
 * true means "maybe still the writer": callers leave such files alone.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** Linux: the process state (field 3 of /proc/PID/stat) is Z (zombie) or X (dead). Elsewhere false. */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false; // no procfs (macOS), or the process was reaped just now: kill() saw it alive
  }
  // The command name (field 2) may hold spaces and parentheses: the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state === 'Z' || state === 'X';
}
