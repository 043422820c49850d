import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, readlink } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { z } from 'zod';
import { defineTool, ToolError } from './registry.js';
import { assertDescriptorInside, resolveInWorkspace } from './workspace-path.js';

export const READ_DEFAULT_BYTES = 100_000;
export const READ_MAX_BYTES = 256_000;
export const WRITE_MAX_BYTES = 2_000_000;
export const LIST_DEFAULT_ENTRIES = 500;

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function explain(err: unknown, display: string): never {
  if (err instanceof ToolError) throw err;
  const code = (err as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    ENOENT: 'does not exist',
    EISDIR: 'is a directory',
    ENOTDIR: 'has a path component that is not a directory',
    EACCES: 'is not accessible (permission denied)',
    EPERM: 'is not accessible (operation not permitted)',
    ELOOP: 'is a symbolic link loop',
    ENOSPC: 'cannot be written: no space left',
    EDQUOT: 'cannot be written: disk quota exceeded',
    EROFS: 'is on a read-only file system',
  };
  const reason = code ? reasons[code] : undefined;
  if (reason) throw new ToolError(`${display} ${reason}`);
  throw err;
}

export const readFileTool = defineTool({
  name: 'read_file',
  description:
    'Read a text file from the workspace. Paths are relative to the workspace. Large files are returned in ' +
    'pieces: pass `offset` (in bytes) to continue where the previous read stopped.',
  parameters: z.object({
    path: z.string().min(1).describe('File path relative to the workspace'),
    offset: z.number().int().min(0).optional().describe('Byte offset to start reading at (default 0)'),
    max_bytes: z
      .number()
      .int()
      .min(1)
      .max(READ_MAX_BYTES)
      .optional()
      .describe(`How many bytes to read at most (default ${READ_DEFAULT_BYTES})`),
  }),
  async execute({ path, offset = 0, max_bytes = READ_DEFAULT_BYTES }, ctx) {
    const target = await resolveInWorkspace(ctx.workspace, path);
    if (!target.exists) throw new ToolError(`${target.display} does not exist`);
    let handle: FileHandle | undefined;
    try {
      // O_NONBLOCK: a FIFO planted in the workspace must not hang the read.
      handle = await open(target.real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      assertDescriptorInside(ctx.workspace, handle.fd, target.display);
      const stat = await handle.stat();
      if (stat.isDirectory()) throw new ToolError(`${target.display} is a directory; use list_files`);
      if (!stat.isFile()) throw new ToolError(`${target.display} is not a regular file`);
      if (offset > stat.size)
        throw new ToolError(`offset ${offset} is past the end of ${target.display} (${stat.size} bytes)`);
      const buffer = Buffer.alloc(Math.min(max_bytes, stat.size - offset));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      const chunk = buffer.subarray(0, bytesRead);
      if (chunk.includes(0)) {
        throw new ToolError(
          `${target.display} is a binary file (${formatSize(stat.size)}); inspect it with shell tools (file, xxd, …)`,
        );
      }
      const end = offset + bytesRead;
      let text = chunk.toString('utf8');
      if (stat.size === 0) text = `(${target.display} is empty)`;
      else if (offset > 0 || end < stat.size) {
        text += `\n[${target.display} is ${stat.size} bytes; this shows bytes ${offset}–${end}.${
          end < stat.size ? ` Read on with offset=${end}.` : ''
        }]`;
      }
      return text;
    } catch (err) {
      explain(err, target.display);
    } finally {
      await handle?.close();
    }
  },
});

export const writeFileTool = defineTool({
  name: 'write_file',
  description:
    'Create or overwrite a text file in the workspace (parent directories are created). Set `append` to add ' +
    'to the end instead. Paths are relative to the workspace.',
  parameters: z.object({
    path: z.string().min(1).describe('File path relative to the workspace'),
    content: z.string().describe('The full text to write'),
    append: z.boolean().optional().describe('Append to the file instead of replacing it (default false)'),
  }),
  async execute({ path, content, append = false }, ctx) {
    const bytes = Buffer.byteLength(content);
    if (bytes > WRITE_MAX_BYTES) {
      throw new ToolError(`content is ${formatSize(bytes)}; write_file takes at most ${formatSize(WRITE_MAX_BYTES)}`);
    }
    const target = await resolveInWorkspace(ctx.workspace, path);
    let handle: FileHandle | undefined;
    try {
      if (!target.exists) await mkdir(dirname(target.real), { recursive: true });
      // Re-check after creating directories, then open without following a final symlink.
      const checked = await resolveInWorkspace(ctx.workspace, path);
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (append ? constants.O_APPEND : 0);
      handle = await open(checked.real, flags, 0o644);
      assertDescriptorInside(ctx.workspace, handle.fd, checked.display);
      const stat = await handle.stat();
      if (!stat.isFile()) throw new ToolError(`${checked.display} is not a regular file`);
      if (!append) await handle.truncate(0);
      await handle.write(content);
      const verb = !target.exists ? 'created' : append ? 'appended to' : 'overwrote';
      return `${verb} ${checked.display} (${formatSize(bytes)} written${append ? `, now ${formatSize(stat.size + bytes)}` : ''})`;
    } catch (err) {
      explain(err, target.display);
    } finally {
      await handle?.close();
    }
  },
});

/** Directories that are listed but not descended into: they are large and rarely what the user means. */
const NOT_EXPANDED = new Set(['node_modules', '.git', '__pycache__', '.venv', 'venv', '.cache', '.next', 'dist']);

export const listFilesTool = defineTool({
  name: 'list_files',
  description:
    'List files and directories in the workspace (directories end with "/"). Set `recursive` to walk ' +
    'subdirectories (node_modules, .git and similar are listed but not expanded).',
  parameters: z.object({
    path: z.string().optional().describe('Directory relative to the workspace (default: the workspace root)'),
    recursive: z.boolean().optional().describe('Walk subdirectories too (default false)'),
    max_entries: z
      .number()
      .int()
      .min(1)
      .max(5_000)
      .optional()
      .describe(`At most this many entries (default ${LIST_DEFAULT_ENTRIES})`),
  }),
  async execute({ path = '.', recursive = false, max_entries = LIST_DEFAULT_ENTRIES }, ctx) {
    const target = await resolveInWorkspace(ctx.workspace, path);
    if (!target.exists) throw new ToolError(`${target.display} does not exist`);
    const lines: string[] = [];
    let more = false;
    const walk = async (dir: string, depth: number): Promise<void> => {
      let names: string[];
      try {
        names = (await readdir(dir)).sort();
      } catch (err) {
        explain(err, relative(target.real, dir) || target.display);
      }
      for (const name of names) {
        if (ctx.signal.aborted) return;
        if (lines.length >= max_entries) {
          more = true;
          return;
        }
        const full = join(dir, name);
        const shown = relative(target.real, full);
        const stat = await lstat(full).catch(() => undefined);
        if (!stat) continue;
        if (stat.isSymbolicLink()) {
          lines.push(`${shown} -> ${await readlink(full).catch(() => '?')}`);
        } else if (stat.isDirectory()) {
          const skip = NOT_EXPANDED.has(name);
          lines.push(`${shown}/${recursive && skip ? '  (not expanded)' : ''}`);
          if (recursive && !skip && depth < 20) await walk(full, depth + 1);
        } else {
          lines.push(`${shown}  ${stat.isFile() ? formatSize(stat.size) : '(special file)'}`);
        }
      }
    };
    const stat = await lstat(target.real);
    if (!stat.isDirectory()) throw new ToolError(`${target.display} is a file, not a directory; use read_file`);
    await walk(target.real, 0);
    if (lines.length === 0) return `${target.display} is empty`;
    const header = `${target.display}/ (${lines.length}${more ? '+' : ''} entries)`;
    return [header, ...lines, ...(more ? [`[… more entries; raise max_entries or list a subdirectory]`] : [])].join(
      '\n',
    );
  },
});
