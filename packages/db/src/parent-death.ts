import { existsSync } from 'node:fs';

const SETPRIV = '/usr/bin/setpriv';
const hasSetpriv = process.platform === 'linux' && existsSync(SETPRIV);

/**
 * Wraps a command so the kernel sends it `signal` when the process that started it dies, however it
 * dies (`PR_SET_PDEATHSIG` via util-linux `setpriv`, which then execs the command under the same pid).
 * Exit hooks do not run when a test worker or launcher is SIGKILLed; this still does. Where setpriv is
 * missing the command runs unwrapped.
 */
export function dieWithParent(command: string, args: string[], signal: NodeJS.Signals): [string, string[]] {
  if (!hasSetpriv) return [command, args];
  return [SETPRIV, ['--pdeathsig', signal.replace(/^SIG/, ''), '--', command, ...args]];
}
