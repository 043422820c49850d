import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNTIME_DIR = fileURLToPath(new URL('../../../runtime', import.meta.url));
export const RUNTIME_BUNDLE = join(RUNTIME_DIR, 'dist', 'agentsquads-runtime.mjs');
export const HANDS_DIR = fileURLToPath(new URL('../../../../data/hands', import.meta.url));

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** The one-file runtime the sandboxes run, built (≈ 1–2 s) when missing or older than its sources. */
export function ensureRuntimeBundle(): string {
  const built = (() => {
    try {
      return statSync(RUNTIME_BUNDLE).mtimeMs;
    } catch {
      return 0;
    }
  })();
  if (built < newestSource(join(RUNTIME_DIR, 'src'))) {
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: RUNTIME_DIR, stdio: 'pipe' });
  }
  return RUNTIME_BUNDLE;
}
