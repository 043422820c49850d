import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOutboundDispatcher } from '../src/outbound.js';
import { listFilesTool, readFileTool, writeFileTool } from '../src/tools/files.js';
import { builtinTools } from '../src/tools/index.js';
import { capOutput, runTool, type Tool, type ToolContext, ToolRegistry } from '../src/tools/registry.js';
import { shellTool } from '../src/tools/shell.js';
import { alive, tempDir } from './helpers.js';

let root: string;
let workspace: string;
let outside: string;
let ctx: Omit<ToolContext, 'signal' | 'timeoutMs'>;

beforeAll(() => {
  root = realpathSync(tempDir('tools'));
  workspace = join(root, 'workspace');
  outside = join(root, 'outside');
  mkdirSync(workspace);
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret.txt'), 'top secret');
  ctx = {
    workspace,
    tenantId: 'ten_tools',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HTTPS_PROXY: 'http://egress.internal:3128', HOME: workspace },
    http: createOutboundDispatcher(),
    platform: { url: 'http://127.0.0.1:9', apiKey: 'k' },
    log: createLogger({ name: 'tools-test', level: 'silent' }),
  };
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const call = (tool: Tool, args: unknown, timeoutMs = 10_000, signal = new AbortController().signal) =>
  runTool(tool, JSON.stringify(args), ctx, { signal, timeoutMs });

describe('workspace confinement', () => {
  it('refuses ../ escapes, absolute paths outside and symlinks that lead out', async () => {
    symlinkSync('/etc', join(workspace, 'etc-link'));
    symlinkSync(join(outside, 'secret.txt'), join(workspace, 'secret-link'));
    symlinkSync(outside, join(workspace, 'outside-dir'));
    symlinkSync(join(outside, 'new.txt'), join(workspace, 'dangling'));

    const attempts: [Tool, unknown, RegExp][] = [
      [readFileTool, { path: '../outside/secret.txt' }, /points outside the workspace/],
      [readFileTool, { path: 'a/../../outside/secret.txt' }, /points outside the workspace/],
      [readFileTool, { path: '/etc/passwd' }, /outside the workspace; use a path relative/],
      [readFileTool, { path: join(outside, 'secret.txt') }, /outside the workspace/],
      [readFileTool, { path: 'etc-link/passwd' }, /symbolic link to outside the workspace/],
      [readFileTool, { path: 'secret-link' }, /symbolic link to outside the workspace/],
      [readFileTool, { path: 'outside-dir/secret.txt' }, /symbolic link to outside the workspace/],
      [writeFileTool, { path: '../escape.txt', content: 'x' }, /points outside the workspace/],
      [writeFileTool, { path: '/tmp/escape.txt', content: 'x' }, /outside the workspace/],
      [writeFileTool, { path: 'outside-dir/planted.txt', content: 'x' }, /symbolic link to outside the workspace/],
      [
        writeFileTool,
        { path: 'outside-dir/deep/er/planted.txt', content: 'x' },
        /symbolic link to outside the workspace/,
      ],
      [writeFileTool, { path: 'secret-link', content: 'overwritten' }, /symbolic link to outside the workspace/],
      [writeFileTool, { path: 'dangling', content: 'x' }, /dangling symbolic link/],
      [writeFileTool, { path: 'etc-link/evil.conf', content: 'x' }, /symbolic link to outside the workspace/],
      [listFilesTool, { path: '..' }, /points outside the workspace/],
      [listFilesTool, { path: '/' }, /outside the workspace/],
      [listFilesTool, { path: 'etc-link' }, /symbolic link to outside the workspace/],
      [readFileTool, { path: 'bad\u0000name' }, /NUL byte/],
    ];
    for (const [tool, args, message] of attempts) {
      const result = await call(tool, args);
      expect(result.isError, JSON.stringify(args)).toBe(true);
      expect(result.output, JSON.stringify(args)).toMatch(message);
    }
    // Nothing outside was read, written or clobbered.
    expect(readFileSync(join(outside, 'secret.txt'), 'utf8')).toBe('top secret');
    for (const f of ['planted.txt', 'new.txt', 'deep']) expect(existsSync(join(outside, f))).toBe(false);
    expect(existsSync(join(root, 'escape.txt'))).toBe(false);
    expect(existsSync('/tmp/escape.txt')).toBe(false);
  });

  it('follows symlinks that stay inside, and accepts absolute paths inside the workspace', async () => {
    mkdirSync(join(workspace, 'real'));
    writeFileSync(join(workspace, 'real', 'inside.txt'), 'inside');
    symlinkSync('real', join(workspace, 'alias'));
    expect(await call(readFileTool, { path: 'alias/inside.txt' })).toMatchObject({ isError: false, output: 'inside' });
    expect(await call(readFileTool, { path: join(workspace, 'real/inside.txt') })).toMatchObject({ output: 'inside' });
    expect((await call(writeFileTool, { path: 'alias/via-link.txt', content: 'ok' })).isError).toBe(false);
    expect(readFileSync(join(workspace, 'real', 'via-link.txt'), 'utf8')).toBe('ok');
  });
});

describe('file tools', () => {
  it('writes (creating directories), appends, overwrites and reads back', async () => {
    expect((await call(writeFileTool, { path: 'notes/a/b.txt', content: 'hello\n' })).output).toBe(
      'created notes/a/b.txt (6 B written)',
    );
    expect((await call(writeFileTool, { path: 'notes/a/b.txt', content: 'world\n', append: true })).output).toBe(
      'appended to notes/a/b.txt (6 B written, now 12 B)',
    );
    expect(await call(readFileTool, { path: 'notes/a/b.txt' })).toMatchObject({
      isError: false,
      output: 'hello\nworld\n',
    });
    expect((await call(writeFileTool, { path: 'notes/a/b.txt', content: 'short' })).output).toBe(
      'overwrote notes/a/b.txt (5 B written)',
    );
    expect((await call(readFileTool, { path: 'notes/a/b.txt' })).output).toBe('short');
  });

  it('reads large files in pieces and refuses binaries, directories and missing files', async () => {
    const big = Array.from({ length: 3000 }, (_, i) => `line ${i}`).join('\n');
    writeFileSync(join(workspace, 'big.txt'), big);
    const first = await call(readFileTool, { path: 'big.txt', max_bytes: 1000 });
    expect(first.output.startsWith('line 0\nline 1\n')).toBe(true);
    expect(first.output).toContain(
      `[big.txt is ${big.length} bytes; this shows bytes 0–1000. Read on with offset=1000.]`,
    );
    const next = await call(readFileTool, { path: 'big.txt', offset: 1000, max_bytes: 1000 });
    expect(next.output.slice(0, 1000)).toBe(big.slice(1000, 2000));
    expect((await call(readFileTool, { path: 'big.txt', offset: 10_000_000 })).output).toMatch(/past the end/);
    writeFileSync(join(workspace, 'blob.bin'), Buffer.from([1, 2, 0, 3]));
    expect(await call(readFileTool, { path: 'blob.bin' })).toMatchObject({
      isError: true,
      output: expect.stringMatching(/binary file/),
    });
    expect((await call(readFileTool, { path: 'notes' })).output).toMatch(/is a directory; use list_files/);
    expect((await call(readFileTool, { path: 'nope.txt' })).output).toBe('nope.txt does not exist');
    execFileSync('mkfifo', [join(workspace, 'pipe')]);
    expect(await call(readFileTool, { path: 'pipe' }, 3_000)).toMatchObject({
      isError: true,
      output: 'pipe is not a regular file',
    });
    writeFileSync(join(workspace, 'empty.txt'), '');
    expect((await call(readFileTool, { path: 'empty.txt' })).output).toBe('(empty.txt is empty)');
  });

  it('refuses oversized writes and invalid arguments with a message for the model', async () => {
    const huge = await call(writeFileTool, { path: 'huge.txt', content: 'x'.repeat(2_000_001) });
    expect(huge).toMatchObject({ isError: true, output: expect.stringMatching(/at most 1\.9 MB/) });
    expect(existsSync(join(workspace, 'huge.txt'))).toBe(false);
    const missing = await runTool(writeFileTool, '{"path":"x.txt"}', ctx, {
      signal: new AbortController().signal,
      timeoutMs: 1000,
    });
    expect(missing).toMatchObject({
      isError: true,
      output: expect.stringContaining('invalid arguments for write_file: content:'),
    });
    const notJson = await runTool(writeFileTool, '{path:', ctx, {
      signal: new AbortController().signal,
      timeoutMs: 1000,
    });
    expect(notJson.output).toMatch(/^invalid arguments: not valid JSON/);
  });

  it('lists directories, recursively, without descending into node_modules or following links', async () => {
    const dir = join(workspace, 'proj');
    mkdirSync(join(dir, 'src'), { recursive: true });
    mkdirSync(join(dir, 'node_modules', 'pkg'), { recursive: true });
    writeFileSync(join(dir, 'src', 'index.ts'), 'export {};\n');
    writeFileSync(join(dir, 'README.md'), '# hi\n');
    symlinkSync('/etc', join(dir, 'etc'));
    const flat = await call(listFilesTool, { path: 'proj' });
    expect(flat.output).toBe('proj/ (4 entries)\nREADME.md  5 B\netc -> /etc\nnode_modules/\nsrc/');
    const deep = await call(listFilesTool, { path: 'proj', recursive: true });
    expect(deep.output).toBe(
      'proj/ (5 entries)\nREADME.md  5 B\netc -> /etc\nnode_modules/  (not expanded)\nsrc/\nsrc/index.ts  11 B',
    );
    const capped = await call(listFilesTool, { path: 'proj', recursive: true, max_entries: 2 });
    expect(capped.output).toContain('(2+ entries)');
    expect(capped.output).toContain('more entries');
    mkdirSync(join(workspace, 'void'));
    expect((await call(listFilesTool, { path: 'void' })).output).toBe('void is empty');
  });
});

describe('shell tool', () => {
  it('runs in the workspace with the env it is given (proxy settings included), reporting the exit code', async () => {
    const ok = await call(shellTool, { command: 'pwd; echo "proxy=$HTTPS_PROXY"; echo oops >&2' });
    expect(ok.isError).toBe(false);
    expect(ok.output).toMatch(/^\[exit code 0 after \d+\.\d s\]\n/);
    expect(ok.output).toContain(`${workspace}\nproxy=http://egress.internal:3128\noops\n`);
    const failed = await call(shellTool, { command: 'echo partial; exit 3' });
    expect(failed).toMatchObject({
      isError: true,
      output: expect.stringMatching(/^\[exit code 3 after .*\]\npartial\n$/),
    });
    const quiet = await call(shellTool, { command: 'true' });
    expect(quiet.output).toMatch(/\n\(no output\)$/);
    const stdin = await call(shellTool, { command: 'cat; echo after-eof' });
    expect(stdin.output).toContain('after-eof');
  });

  it('keeps the head and the tail of huge outputs', async () => {
    const big = await call(shellTool, { command: 'seq 1 200000' });
    expect(big.output).toContain('\n1\n2\n3\n');
    expect(big.output).toContain('200000\n');
    expect(big.output).toMatch(/bytes of output cut/);
    expect(big.output).not.toContain('characters cut');
    expect(big.output.length).toBeLessThan(21_000);
  });

  it('honours its own timeout_seconds and kills background children too', async () => {
    const started = Date.now();
    const result = await call(shellTool, { command: '(sleep 60 & echo $! > child.pid; wait)', timeout_seconds: 1 });
    expect(result.isError).toBe(true);
    expect(result.output).toMatch(/^\[stopped after 1\.0 s \(timeout_seconds\)/);
    expect(Date.now() - started).toBeLessThan(5_000);
    const child = Number(readFileSync(join(workspace, 'child.pid'), 'utf8'));
    await waitFor(() => !alive(child), { what: 'the background child to be killed' });
  });

  it('returns promptly when a command leaves a background job holding its output', async () => {
    const started = Date.now();
    const result = await call(shellTool, { command: 'sleep 5 & echo started' });
    expect(result.output).toContain('started');
    expect(Date.now() - started).toBeLessThan(4_000);
  });
});

describe('registry', () => {
  it('describes tools as JSON Schema for the model', () => {
    const registry = new ToolRegistry(builtinTools());
    const [shell] = registry.definitions(['shell', 'nope']);
    expect(registry.definitions(['shell', 'nope'])).toHaveLength(1);
    expect(shell!.function.name).toBe('shell');
    expect(shell!.function.parameters).toMatchObject({
      type: 'object',
      properties: { command: { type: 'string' }, timeout_seconds: { type: 'number' } },
      required: ['command'],
    });
    expect(shell!.function.parameters).not.toHaveProperty('$schema');
    expect(() => new ToolRegistry([shellTool, shellTool])).toThrow('registered twice');
  });

  it('stops a tool that ignores its signal at the time budget', async () => {
    const stubborn: Tool = {
      name: 'stubborn',
      description: 'never finishes',
      parameters: readFileTool.parameters,
      execute: () => new Promise(() => undefined),
    };
    const result = await call(stubborn, { path: 'x' }, 300);
    expect(result).toMatchObject({ isError: true, output: 'stubborn timed out after 0.3 s; it was stopped' });
    expect(result.ms).toBeGreaterThanOrEqual(290);
  });

  it('rethrows when the run itself is aborted', async () => {
    const controller = new AbortController();
    const pending = call(shellTool, { command: 'sleep 30' }, 60_000, controller.signal);
    setTimeout(() => controller.abort(new Error('gone')), 200);
    await expect(pending).rejects.toThrow('gone');
  });

  it('cuts the middle of over-long outputs', () => {
    const text = `${'a'.repeat(30_000)}${'b'.repeat(30_000)}`;
    const cut = capOutput(text);
    expect(cut.length).toBeLessThan(24_100);
    expect(cut.startsWith('aaaa')).toBe(true);
    expect(cut.endsWith('bbbb')).toBe(true);
    expect(cut).toContain('characters cut');
  });
});
