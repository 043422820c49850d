import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A free TCP port on 127.0.0.1 (asks the kernel, then releases it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** Polls `probe` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  {
    timeoutMs = 10_000,
    intervalMs = 50,
    what = 'condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(intervalMs);
  }
  const reason = lastError instanceof Error ? `: ${lastError.message}` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${reason}`);
}

export interface ManagedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Output collected so far (stdout and stderr interleaved), for error messages. */
  output(): string;
  /** SIGTERM the whole process group, then SIGKILL after `graceMs`. Resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

/**
 * Starts a child in its own process group, so stopping it takes its children too, and tracks it by pid
 * (never by name: other processes on the machine may share a name).
 */
export function startProcess(
  command: string,
  args: string[],
  options: SpawnOptions & { keepOutputBytes?: number } = {},
): ManagedProcess {
  const { keepOutputBytes = 64_000, ...spawnOptions } = options;
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...spawnOptions });
  let buffer = '';
  const collect = (chunk: Buffer) => {
    buffer = (buffer + chunk.toString()).slice(-keepOutputBytes);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  untilExit.add(pid);
  exited.then(() => untilExit.delete(pid));
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  return {
    pid,
    child,
    output: () => buffer,
    exited,
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Reap stragglers of the group (e.g. daemons' own children).
      signal('SIGKILL');
    },
  };
}

const untilExit = new Set<number>();
let exitHookInstalled = false;
/** Last resort on parent exit: kill every group still alive that this module started. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pid of untilExit) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });
}
installExitHook();

/** Polls an HTTP URL until it answers with a status below 500. */
export function waitForHttp(url: string, timeoutMs = 15_000): Promise<Response> {
  return waitFor(
    async () => {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
      return res.status < 500 ? res : undefined;
    },
    { timeoutMs, what: url },
  );
}

/**
 * Whether `pid` is a running process. A zombie counts as gone: it has exited and only waits for its parent
 * to reap it, which for an orphan (reparented to pid 1) can take seconds on some machines.
 */
export function isProcessRunning(pid: number): boolean {
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
