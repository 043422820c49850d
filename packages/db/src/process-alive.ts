import { readFileSync } from 'node:fs';

/**
 * Whether `pid` is a running process. A zombie counts as gone: it has exited and only waits for its parent
 * to reap it, which for an orphan (reparented to pid 1) can take seconds on some machines.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // Field 3 of /proc/<pid>/stat, after the parenthesised command name.
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}
