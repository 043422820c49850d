import { execFile } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The one-file runtime a sandbox or container runs with plain Node (no node_modules inside). */
export const RUNTIME_BUNDLE = join(root, 'dist', 'agentsquads-runtime.mjs');
/** The Hands shipped with the repository. */
export const HANDS_DIR = fileURLToPath(new URL('../../../data/hands', import.meta.url));

const newestSource = (dir: string): number =>
  Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
      entry.isDirectory() ? newestSource(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs,
    ),
  );

let building: Promise<string> | undefined;

/** Builds the bundle when it is missing or older than the sources (≈ 1 s with esbuild); returns its path. */
export function ensureRuntimeBundle(): Promise<string> {
  building ??= (async () => {
    const built = statSync(RUNTIME_BUNDLE, { throwIfNoEntry: false })?.mtimeMs ?? 0;
    // Its own sources and the workspace packages it bundles.
    const sources = ['src', '../../packages/core/src', '../../packages/egress/src'].map((d) =>
      newestSource(join(root, d)),
    );
    if (built < Math.max(...sources, statSync(join(root, 'package.json')).mtimeMs)) {
      await promisify(execFile)(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root });
    }
    return RUNTIME_BUNDLE;
  })().finally(() => {
    building = undefined;
  });
  return building;
}
