import { spawnSync } from 'node:child_process';
import { access, chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, isProcessRunning, startProcess, waitFor } from '@agentstack/core';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../src/embedded.js';
import { binariesReachableBy, postgresBinaries } from '../src/embedded-binaries.js';

const alive = isProcessRunning;

async function query(url: string, text: string): Promise<any[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

describe('startEmbeddedPostgres', () => {
  let root: string;
  let dataDir: string;
  const running: EmbeddedPostgres[] = [];
  const start = async (options: Partial<Parameters<typeof startEmbeddedPostgres>[0]> = {}) => {
    const server = await startEmbeddedPostgres({ dataDir, durable: false, ...options });
    running.push(server);
    return server;
  };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'embedded-pg-'));
    await chmod(root, 0o755);
    // A parent that does not exist yet: it is created on the way, passable by the postgres user.
    dataDir = join(root, '.data', 'postgres');
  });
  afterAll(async () => {
    for (const server of running) await server.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('creates a cluster and databases, keeps the data across a restart, and leaves no process behind', async () => {
    const first = await start({ databases: ['wallet', 'relay'] });
    expect(first.versionNum).toBeGreaterThanOrEqual(180000);
    await query(first.urlFor('wallet'), 'CREATE TABLE notes (body text); INSERT INTO notes VALUES ($$kept$$)');
    const pidFile = join(dataDir, 'postmaster.pid');
    expect(Number((await readFile(pidFile, 'utf8')).split('\n')[0])).toBe(first.pid);

    await first.stop();
    expect(alive(first.pid)).toBe(false);
    await expect(access(pidFile)).rejects.toThrow();

    const second = await start({ databases: ['wallet', 'spawn'] });
    expect(await query(second.urlFor('wallet'), 'SELECT body FROM notes')).toEqual([{ body: 'kept' }]);
    const names = (await query(second.urlFor('postgres'), 'SELECT datname FROM pg_database ORDER BY datname')).map(
      (r) => r.datname,
    );
    expect(names).toEqual(expect.arrayContaining(['relay', 'spawn', 'wallet']));
    await second.stop();
    expect(alive(second.pid)).toBe(false);
  });

  it('recovers from a postmaster.pid whose process is gone', async () => {
    const dead = spawnSync('true').pid!;
    expect(alive(dead)).toBe(false);
    const contents = `${dead}\n${dataDir}\n1700000000\n5432\n\n127.0.0.1\n  1234   5678\nready   \n`;
    await writeFile(join(dataDir, 'postmaster.pid'), contents);
    const server = await start();
    expect(await query(server.urlFor('wallet'), 'SELECT body FROM notes')).toEqual([{ body: 'kept' }]);
    await server.stop();
  });

  it('stops postgres when its launcher is killed outright', async () => {
    const launcher = startProcess(process.execPath, [
      '--import',
      'tsx',
      join(import.meta.dirname, 'fixtures', 'start-embedded.ts'),
      dataDir,
    ]);
    const pid = Number(
      await waitFor(() => /pid:(\d+)/.exec(launcher.output())?.[1], { what: 'launcher', timeoutMs: 20_000 }),
    );
    launcher.child.kill('SIGKILL');
    await launcher.exited;
    await waitFor(() => !alive(pid), { what: 'postgres to stop after its launcher died' });
  });

  it('replaces a server orphaned by a launcher that could not stop it', async () => {
    // An orphan as an older launcher (or one without setpriv) leaves it: parent gone, still serving.
    const owner = await stat(dataDir);
    const { postgres } = await binariesReachableBy(await postgresBinaries(), owner);
    const port = await freePort();
    const orphanArgs = [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'fsync=off',
    ];
    spawnSync('sh', ['-c', '"$0" "$@" >/dev/null 2>&1 &', postgres, ...orphanArgs], { uid: owner.uid, gid: owner.gid });
    const orphan = await waitFor(
      async () => {
        const [pid, , , , , , , status] = (await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n');
        return status?.trim() === 'ready' && Number(pid);
      },
      { what: 'orphan to be ready' },
    );

    const server = await start();
    expect(server.pid).not.toBe(orphan);
    expect(alive(orphan)).toBe(false);
    expect(await query(server.urlFor('wallet'), 'SELECT body FROM notes')).toEqual([{ body: 'kept' }]);
    await server.stop();
  });

  it.runIf(process.getuid?.() === 0)('names a parent directory the postgres user cannot enter', async () => {
    const closed = join(root, 'closed');
    await mkdir(closed, { mode: 0o700 });
    await expect(startEmbeddedPostgres({ dataDir: join(closed, 'pg') })).rejects.toThrow(
      `${closed} (mode 700) does not let it in`,
    );
  });
});
