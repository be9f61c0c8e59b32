/**
 * One process per run folder. Two trainings writing the same folder would interleave their
 * config, weights and metrics (and delete each other's temporary checkpoint folders), every
 * manifest still verifying; so a run folder is locked while a process writes it.
 *
 * The lock is a file created with O_EXCL (`RUN/run.lock`) holding the owner's pid, hostname,
 * start time and, on Linux, the kernel's start tick of that pid. A crash cannot leave it stuck:
 * a lock whose owner on this host is gone (no such pid, or the pid now belongs to a process that
 * started later) is stale and taken over. A lock from another host cannot be checked and is
 * never taken over; the error says how to remove it by hand.
 */
import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isProcessAlive } from '../data/process-alive.ts';

/** The lock file's name inside a run folder. */
export const RUN_LOCK_FILE = 'run.lock';

interface LockOwner {
  pid: number;
  hostname: string;
  /** ISO time the lock was taken. */
  started: string;
  /** Linux: the process's start time in clock ticks since boot (field 22 of /proc/PID/stat), to tell a reused pid. */
  proc_start?: string;
}

/** Thrown when another live process holds the run folder. */
export class RunLockedError extends Error {}

function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function readOwner(path: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (Number.isSafeInteger(o.pid) && typeof o.hostname === 'string' && typeof o.started === 'string') return o as LockOwner;
  } catch {
    // Unreadable: a crash between creating the file and writing it.
  }
  return null;
}

/** Whether the owner named in a lock file is certainly gone (so the lock may be taken over). */
function ownerGone(owner: LockOwner | null): boolean {
  if (owner === null) return true;
  if (owner.hostname !== hostname()) return false;
  if (!isProcessAlive(owner.pid)) return true;
  const now = procStart(owner.pid);
  return owner.proc_start !== undefined && now !== undefined && now !== owner.proc_start;
}

const sameOwner = (a: LockOwner | null, b: LockOwner | null): boolean =>
  !!a && !!b && a.pid === b.pid && a.hostname === b.hostname && a.started === b.started && a.proc_start === b.proc_start;

function describe(owner: LockOwner): string {
  return `process ${owner.pid} on ${owner.hostname} (since ${owner.started})`;
}

/** Moves a stale lock out of the way; false if another process changed the lock meanwhile. */
function removeStale(path: string, seen: LockOwner | null): boolean {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return false; // someone else took it away first
  }
  const moved = readOwner(aside);
  if (seen === null ? moved === null : sameOwner(moved, seen)) {
    unlinkSync(aside);
    return true;
  }
  // A live lock was taken between our look and the rename: put it back unless a newer one exists.
  try {
    linkSync(aside, path);
  } catch {
    // The name is taken again; the holder of that lock wins.
  }
  unlinkSync(aside);
  return false;
}

/** Stale locks moved aside by a process that died before removing them. */
function removeLeftAsides(runDir: string): void {
  for (const name of readdirSync(runDir)) {
    const prefix = `${RUN_LOCK_FILE}.stale-`;
    const pid = name.startsWith(prefix) ? Number(name.slice(prefix.length)) : NaN;
    if (Number.isSafeInteger(pid) && pid > 0 && !isProcessAlive(pid)) rmSync(join(runDir, name), { force: true });
  }
}

function tryCreate(path: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new Error(`cannot create the lock file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    writeSync(fd, `${JSON.stringify(owner)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Take the run folder for this process (creating the folder if needed). Returns the function
 * that releases it (idempotent; also run when the process exits normally). Throws
 * {@link RunLockedError} naming the folder and the process that holds it.
 */
export function lockRunFolder(runDir: string): () => void {
  const created = !existsSync(runDir);
  if (!created && !statSync(runDir).isDirectory()) throw new Error(`${runDir} is a file, not a run folder`);
  mkdirSync(runDir, { recursive: true });
  const path = join(runDir, RUN_LOCK_FILE);
  const start = procStart(process.pid);
  const me: LockOwner = { pid: process.pid, hostname: hostname(), started: new Date().toISOString(), ...(start ? { proc_start: start } : {}) };
  for (let attempt = 0; ; attempt++) {
    if (tryCreate(path, me)) break;
    const owner = readOwner(path);
    if (attempt < 5 && ownerGone(owner)) {
      removeStale(path, owner);
      continue;
    }
    if (owner === null) throw new RunLockedError(`run folder ${runDir} is locked (${path} exists but cannot be read); if no relora process uses this folder, delete ${path}`);
    const remote = owner.hostname !== hostname();
    throw new RunLockedError(
      `run folder ${runDir} is in use by ${owner.pid === process.pid && !remote ? 'this process' : describe(owner)}: one process per run folder. ` +
      (remote ? `If that process is no longer running, delete ${path}.` : `Wait for it to finish (or stop it), or choose another folder.`),
    );
  }
  removeLeftAsides(runDir);
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    if (sameOwner(readOwner(path), me)) {
      try {
        unlinkSync(path);
      } catch {
        // Already gone.
      }
    }
    // A folder this lock created and nothing else filled goes with it.
    if (created && existsSync(runDir) && readdirSync(runDir).length === 0) rmdirSync(runDir);
  };
  process.on('exit', release);
  return release;
}
