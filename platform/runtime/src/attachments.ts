import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type { Attachment } from './events.js';
import { ToolError } from './tools/registry.js';
import { resolveInWorkspace } from './tools/workspace-path.js';

/** Images up to this size are shown to the model itself (vision); larger ones only by path. */
export const INLINE_IMAGE_BYTES = 4 * 1024 * 1024;

const IMAGE_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
};

export interface ResolvedAttachment {
  /** Path relative to the workspace. */
  path: string;
  note: string;
  /** `data:` URL for images small enough to show the model. */
  imageDataUrl?: string;
}

export class AttachmentError extends Error {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
    this.name = 'AttachmentError';
  }
}

/**
 * Checks the attachments of the new user message: each must be a file inside the workspace (the platform
 * uploads it there first). Images are inlined for vision-capable models; other files are named so the agent
 * can open them with its tools.
 */
export async function resolveAttachments(
  workspace: string,
  attachments: readonly Attachment[],
): Promise<ResolvedAttachment[]> {
  const out: ResolvedAttachment[] = [];
  for (const [index, attachment] of attachments.entries()) {
    let target: Awaited<ReturnType<typeof resolveInWorkspace>>;
    try {
      target = await resolveInWorkspace(workspace, attachment.path);
    } catch (err) {
      throw new AttachmentError(index, err instanceof ToolError ? err.message : 'invalid path');
    }
    const info = target.exists ? await stat(target.real).catch(() => undefined) : undefined;
    if (!info?.isFile()) throw new AttachmentError(index, `${target.display} is not a file in the workspace`);
    const type = IMAGE_TYPES[extname(target.real).toLowerCase()];
    const size = info.size < 1024 ? `${info.size} B` : `${Math.ceil(info.size / 1024)} KB`;
    const resolved: ResolvedAttachment = { path: target.display, note: `${type ?? 'file'}, ${size}` };
    if (type && info.size <= INLINE_IMAGE_BYTES) {
      resolved.imageDataUrl = `data:${type};base64,${(await readFile(target.real)).toString('base64')}`;
    }
    out.push(resolved);
  }
  return out;
}
