import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import type { Sandbox } from './sandbox.js';
import type { ExecOptions } from './spec.js';

/** A process inside with a pseudo-terminal: bytes in and out (stdout and stderr merged by the pty). */
export interface SandboxPty {
  stdin: Writable;
  stdout: Readable;
  exited: Promise<{ code: number | null; signal: string | null }>;
  /** Sets the terminal size; the program gets SIGWINCH as on a real terminal. */
  resize(cols: number, rows: number): Promise<void>;
  kill(signal?: NodeJS.Signals): void;
}

export interface PtyOptions extends Omit<ExecOptions, 'stdin' | 'maxOutputBytes' | 'timeoutMs'> {
  cols: number;
  rows: number;
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const size = (n: number, what: string) => {
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`${what} must be an integer 1…1000`);
  return n;
};

/**
 * Runs `argv` inside on a pty. The pty comes from util-linux `script` inside the sandbox (its own devpts,
 * so nothing is allocated on the host and no native module is needed); the wrapper records the pty's
 * name in the sandbox's private /tmp so `resize` can set its size with `stty -F` (a TIOCSWINSZ, which
 * sends SIGWINCH to the terminal's foreground group).
 */
export function spawnPty(sandbox: Sandbox, argv: string[], options: PtyOptions): SandboxPty {
  if (argv.length === 0) throw new Error('argv must not be empty');
  const cols = size(options.cols, 'cols');
  const rows = size(options.rows, 'rows');
  const ttyFile = `/tmp/.pty-${randomBytes(6).toString('hex')}`;
  const inner = `stty cols ${cols} rows ${rows}; tty > ${ttyFile}; exec ${argv.map(quote).join(' ')}`;
  const proc = sandbox.spawn(['script', '--quiet', '--flush', '--return', '--command', inner, '/dev/null'], {
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: { TERM: 'xterm-256color', ...options.env },
  });
  proc.stderr.resume();
  const exited = proc.exited.finally(() =>
    sandbox.exec(['rm', '-f', ttyFile], { timeoutMs: 5_000 }).catch(() => undefined),
  );
  return {
    stdin: proc.stdin,
    stdout: proc.stdout,
    exited,
    kill: (signal) => proc.kill(signal),
    async resize(newCols, newRows) {
      const c = size(newCols, 'cols');
      const r = size(newRows, 'rows');
      const result = await sandbox.exec(['/bin/sh', '-c', `t=$(cat ${ttyFile}) && stty -F "$t" cols ${c} rows ${r}`], {
        timeoutMs: 5_000,
      });
      if (result.exitCode !== 0) throw new Error(`resize failed: ${result.stderr.trim() || result.exitCode}`);
    },
  };
}
