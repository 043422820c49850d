import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Machine-wide uid reservations: one file per uid in a root-only directory, created with O_EXCL, so two
 * managers (the spawn service, the tenant orchestrator, tests running side by side) never hand out the same
 * uid. A reservation lives as long as the sandbox exists (stopped included: its files carry the uid) and
 * is released by destroy. One whose sandbox directory is gone and that no process runs as is stale (a
 * crashed test) and is taken back.
 */
export interface UidRange {
  first: number;
  count: number;
}

export const DEFAULT_UID_RANGE: UidRange = { first: 2_000_000, count: 100_000 };
export const DEFAULT_REGISTRY_DIR = '/var/lib/agentstack-sandbox/uids';

interface Reservation {
  sandbox: string;
  /** The sandbox's state directory: while it exists the uid is in use. */
  dir: string;
  at: string;
}

export class UidRegistry {
  constructor(
    readonly dir: string = DEFAULT_REGISTRY_DIR,
    readonly range: UidRange = DEFAULT_UID_RANGE,
  ) {
    if (!Number.isInteger(range.first) || range.first < 1000 || range.first + range.count > 2 ** 32 - 2) {
      throw new Error(`uid range ${range.first}+${range.count} must lie between 1000 and 2^32-2`);
    }
  }

  private path(uid: number): string {
    return join(this.dir, String(uid));
  }

  async reserve(sandbox: string, sandboxDir: string): Promise<number> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const offset = randomInt(this.range.count);
    for (let i = 0; i < this.range.count; i++) {
      const uid = this.range.first + ((offset + i) % this.range.count);
      const record: Reservation = { sandbox, dir: sandboxDir, at: new Date().toISOString() };
      try {
        await writeFile(this.path(uid), JSON.stringify(record), { flag: 'wx', mode: 0o600 });
        return uid;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (await this.reclaimIfStale(uid)) i -= 1; // try the same uid again
      }
    }
    throw new Error(`no free uid in ${this.range.first}…${this.range.first + this.range.count - 1}`);
  }

  /** Releases `uid` if (and only if) it is reserved for `sandbox`. */
  async release(uid: number, sandbox: string): Promise<void> {
    const record = await this.read(uid);
    if (record && record.sandbox === sandbox) await unlink(this.path(uid)).catch(() => {});
  }

  async read(uid: number): Promise<Reservation | undefined> {
    try {
      return JSON.parse(await readFile(this.path(uid), 'utf8')) as Reservation;
    } catch {
      return undefined;
    }
  }

  async owner(uid: number): Promise<string | undefined> {
    return (await this.read(uid))?.sandbox;
  }

  async reserved(): Promise<number[]> {
    const names = await readdir(this.dir).catch(() => []);
    return names.filter((n) => /^\d+$/.test(n)).map(Number);
  }

  private async reclaimIfStale(uid: number): Promise<boolean> {
    const record = await this.read(uid);
    if (record && existsSync(record.dir)) return false;
    if ((await processesOfUid(uid)).length > 0) return false;
    await unlink(this.path(uid)).catch(() => {});
    return true;
  }
}

/** Host pids whose real or effective uid is `uid`. */
export async function processesOfUid(uid: number): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const status = await readFile(`/proc/${name}/status`, 'utf8').catch(() => '');
    const match = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    if (match && (Number(match[1]) === uid || Number(match[2]) === uid)) found.push(Number(name));
  }
  return found;
}
