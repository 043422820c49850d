import { readlinkSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ToolError } from './registry.js';

/**
 * Workspace confinement for the file tools. The sandbox around the runtime is the security boundary; this
 * keeps the file tools' own semantics honest: every path names something inside the workspace, after `..`,
 * absolute paths and symlinks are resolved.
 */

export interface WorkspacePath {
  /** Absolute path as given, inside the workspace (symlinks not resolved). */
  path: string;
  /** Path relative to the workspace root, for messages (`.` for the root). */
  display: string;
  /** Real path of the target, or of the deepest existing ancestor when it does not exist yet. */
  real: string;
  exists: boolean;
}

function inside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Resolves a path the model gave against the workspace root (which must be a real path). Relative paths
 * are taken from the root; absolute paths are accepted only when they already point inside it.
 */
export async function resolveInWorkspace(root: string, input: string): Promise<WorkspacePath> {
  if (input.includes('\0')) throw new ToolError('path contains a NUL byte');
  const trimmed = input.trim();
  if (trimmed === '') throw new ToolError('path is empty');
  if (isAbsolute(trimmed) && !inside(root, resolve(trimmed))) {
    throw new ToolError(`${trimmed} is outside the workspace; use a path relative to the workspace`);
  }
  const path = resolve(root, trimmed);
  if (!inside(root, path)) throw new ToolError(`${trimmed} points outside the workspace`);

  // Follow symlinks: the target (or, for a new file, its deepest existing ancestor) must stay inside.
  let probe = path;
  let exists = true;
  for (;;) {
    try {
      const real = await realpath(probe);
      if (!inside(root, real)) {
        throw new ToolError(`${trimmed} resolves through a symbolic link to outside the workspace`);
      }
      return {
        path,
        display: relative(root, path) || '.',
        real: probe === path ? real : join(real, relative(probe, path)),
        exists,
      };
    } catch (err) {
      if (err instanceof ToolError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      // A dangling symlink is still a link: refuse it if it points out.
      if (probe === path) {
        const link = await lstat(path).catch(() => undefined);
        if (link?.isSymbolicLink()) throw new ToolError(`${trimmed} is a dangling symbolic link`);
      }
      exists = false;
      if (probe === root) throw new ToolError('the workspace directory is missing');
      probe = dirname(probe);
    }
  }
}

/**
 * After opening a file, checks what the descriptor really refers to (closing the window in which a path
 * component could have been swapped for a symlink between the check and the open). Linux only; elsewhere
 * the earlier check stands.
 */
export function assertDescriptorInside(root: string, fd: number, display: string): void {
  let target: string;
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return;
  }
  if (!inside(root, target)) throw new ToolError(`${display} resolves to outside the workspace`);
}
