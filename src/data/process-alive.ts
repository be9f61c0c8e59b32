/** Whether a process id belongs to a running process, for telling a crashed writer's leftovers from a live one's. */

/**
 * True when process `pid` exists (on this machine), including one owned by another user; false
 * once it has exited. A pid can be reused, so true means "maybe still the writer": callers
 * leave such files alone.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
