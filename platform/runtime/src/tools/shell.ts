import { spawn } from 'node:child_process';
import { z } from 'zod';
import { defineTool } from './registry.js';

/** Output kept per command (stdout and stderr interleaved as they arrive): the head and the tail, within what one tool result may carry. */
export const SHELL_OUTPUT_BYTES = 20_000;

/** Keeps the first and last bytes of a stream that may be far larger than what is worth showing. */
class HeadTail {
  #head: Buffer[] = [];
  #headBytes = 0;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  #dropped = 0;
  constructor(
    private readonly headMax: number,
    private readonly tailMax: number,
  ) {}

  push(chunk: Buffer) {
    if (this.#headBytes < this.headMax) {
      const take = chunk.subarray(0, this.headMax - this.#headBytes);
      this.#head.push(take);
      this.#headBytes += take.length;
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length === 0) return;
    this.#tail.push(chunk);
    this.#tailBytes += chunk.length;
    while (this.#tailBytes > this.tailMax) {
      const first = this.#tail[0]!;
      const excess = this.#tailBytes - this.tailMax;
      if (first.length <= excess) {
        this.#tail.shift();
        this.#tailBytes -= first.length;
        this.#dropped += first.length;
      } else {
        this.#tail[0] = first.subarray(excess);
        this.#tailBytes -= excess;
        this.#dropped += excess;
      }
    }
  }

  text(): string {
    const head = Buffer.concat(this.#head).toString('utf8');
    const tail = Buffer.concat(this.#tail).toString('utf8');
    return this.#dropped > 0 ? `${head}\n[… ${this.#dropped} bytes of output cut …]\n${tail}` : head + tail;
  }
}

export const shellTool = defineTool({
  name: 'shell',
  description:
    'Run a bash command in the workspace (the working directory) and return its exit code and output ' +
    '(stdout and stderr together). Use it to run programs, install packages, use git, etc. Commands that ' +
    'read from stdin get end-of-file. Long outputs are cut in the middle.',
  parameters: z.object({
    command: z.string().min(1).max(100_000).describe('The bash command line to run'),
    timeout_seconds: z
      .number()
      .positive()
      .optional()
      .describe('Stop the command after this many seconds (cannot exceed the tool time limit)'),
  }),
  async execute({ command, timeout_seconds }, ctx) {
    const started = performance.now();
    const output = new HeadTail(Math.floor(SHELL_OUTPUT_BYTES * 0.75), Math.floor(SHELL_OUTPUT_BYTES * 0.25));
    // Its own process group, so a timeout or cancel takes the command's children with it.
    const child = spawn('bash', ['-lc', command], {
      cwd: ctx.workspace,
      env: ctx.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    child.stdout.on('data', (c: Buffer) => output.push(c));
    child.stderr.on('data', (c: Buffer) => output.push(c));

    let ownTimeout = false;
    const limitMs = timeout_seconds === undefined ? undefined : Math.min(timeout_seconds * 1000, ctx.timeoutMs);
    const ownTimer =
      limitMs === undefined
        ? undefined
        : setTimeout(() => {
            ownTimeout = true;
            killGroup();
          }, limitMs);
    ctx.signal.addEventListener('abort', killGroup, { once: true });

    try {
      const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve, reject) => {
          child.once('error', reject);
          child.once('exit', (code, signal) => resolve({ code, signal }));
        },
      );
      // A background job may keep the pipes open; take what arrived shortly after exit, then let go.
      await new Promise<void>((resolve) => {
        if (child.stdout.closed && child.stderr.closed) return resolve();
        const timer = setTimeout(resolve, 200);
        child.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      child.stdout.destroy();
      child.stderr.destroy();
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const text = output.text();
      const status = ownTimeout
        ? `[stopped after ${(limitMs! / 1000).toFixed(1)} s (timeout_seconds); ran ${seconds} s]`
        : signal
          ? `[killed by ${signal} after ${seconds} s]`
          : `[exit code ${code} after ${seconds} s]`;
      return { output: `${status}\n${text === '' ? '(no output)' : text}`, isError: ownTimeout || code !== 0 };
    } finally {
      if (ownTimer) clearTimeout(ownTimer);
      ctx.signal.removeEventListener('abort', killGroup);
    }
  },
});
