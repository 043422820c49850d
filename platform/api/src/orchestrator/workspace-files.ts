import { constants } from 'node:fs';
import { chown, lstat, mkdir, open } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { AppError, invalidRequest } from '@agentstack/core';

/**
 * A path relative to a tenant's workspace, normalised; refuses absolute paths, `..` that leaves it, NUL
 * bytes and the workspace itself.
 */
export function workspaceRelativePath(relativePath: string): string {
  if (typeof relativePath !== 'string' || relativePath.length === 0 || relativePath.length > 1024) {
    throw invalidRequest('a relative path of 1 to 1024 characters is required', 'path');
  }
  if (relativePath.includes('\0')) throw invalidRequest('the path contains a NUL byte', 'path');
  if (relativePath.startsWith('/')) throw invalidRequest('the path must be relative to the workspace', 'path');
  const normal = posix.normalize(relativePath).replace(/\/+$/, '');
  if (normal === '.' || normal === '' || normal === '..' || normal.startsWith('../')) {
    throw invalidRequest('the path must stay inside the workspace', 'path');
  }
  return normal;
}

export const outsideWorkspace = (path: string) =>
  new AppError('path_outside_workspace', `${path} leads outside the workspace (through a link)`, 400, {
    field: 'path',
  });

/**
 * Writes a file into a workspace from the host, as root, for a tenant whose processes are all stopped (so
 * nothing can swap a directory for a link while we walk): every existing component must be a real
 * directory, the file itself is opened with O_NOFOLLOW, and what we create is owned by the tenant.
 */
export async function writeIntoStoppedWorkspace(
  workspace: string,
  relativePath: string,
  data: Uint8Array,
  owner: number,
): Promise<void> {
  const parts = relativePath.split('/');
  const name = parts.pop() as string;
  let dir = workspace;
  for (const part of parts) {
    dir = join(dir, part);
    const info = await lstat(dir).catch(() => undefined);
    if (!info) {
      await mkdir(dir, { mode: 0o755 });
      await chown(dir, owner, owner);
    } else if (!info.isDirectory()) {
      throw info.isSymbolicLink()
        ? outsideWorkspace(relativePath)
        : invalidRequest(`${part} is not a directory`, 'path');
    }
  }
  const target = join(dir, name);
  const existing = await lstat(target).catch(() => undefined);
  if (existing?.isSymbolicLink()) throw outsideWorkspace(relativePath);
  if (existing && !existing.isFile()) throw invalidRequest(`${relativePath} is not a regular file`, 'path');
  const handle = await open(
    target,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    0o644,
  );
  try {
    await handle.chown(owner, owner);
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

/**
 * The same inside a running sandbox, as the tenant (its own processes could race a host-side walk): make
 * the directories, refuse when the directory resolves outside /workspace or the file is a link, write stdin.
 * Exit 3 means "outside the workspace".
 */
export const WRITE_INSIDE_SCRIPT = [
  'set -e',
  'p="$1"; d=$(dirname -- "$p")',
  'mkdir -p -- "$d"',
  'r=$(realpath -- "$d")',
  'case "$r/" in /workspace/*) ;; *) exit 3 ;; esac',
  '[ ! -L "$p" ] || exit 3',
  '[ ! -e "$p" ] || [ -f "$p" ] || { echo "not a regular file" >&2; exit 4; }',
  'cat > "$p"',
].join('\n');
