import { createLogger, newId } from '@agentstack/core';
import type { TestDatabase } from '@agentstack/db/testing';
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MailBackend } from '../src/backend.js';
import type { RelayDatabase } from '../src/db.js';
import { RelayStore } from '../src/store.js';
import { Sweeper } from '../src/sweeper.js';
import { type RelayHarness, relayTestDatabase, startRelay } from './support/harness.js';

const log = createLogger({ name: 'test', level: 'silent' });

describe('the expiry sweeper', () => {
  let database: TestDatabase<RelayDatabase>;
  beforeAll(async () => {
    database = await relayTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  async function mailbox(expiresInMs: number, withData = true): Promise<string> {
    const id = newId('mbx');
    const local = id.slice(4).toLowerCase();
    await database.db
      .insertInto('mailboxes')
      .values({
        id,
        owner: '0x0000000000000000000000000000000000000001',
        address: `${local}@relay.test`,
        local_part: local,
        domain: 'relay.test',
        domain_id: null,
        expires_at: new Date(Date.now() + expiresInMs),
      } as never)
      .execute();
    if (withData) {
      const messageId = newId('msg');
      await database.db
        .insertInto('messages')
        .values({
          id: messageId,
          mailbox_id: id,
          envelope_to: `${local}@relay.test`,
          headers: '[]',
          size_bytes: 10,
          auth_results: '{}',
        } as never)
        .execute();
      await database.db
        .insertInto('attachments')
        .values({
          id: newId('att'),
          message_id: messageId,
          position: 0,
          content_type: 'text/plain',
          size_bytes: 1,
          sha256: 'x',
          content: Buffer.from('x'),
        } as never)
        .execute();
    }
    return id;
  }

  const removed: string[] = [];
  const backend = {
    removeMailbox: async (m: { id: string }) => {
      removed.push(m.id);
    },
  } as unknown as MailBackend;
  const sweeper = () =>
    new Sweeper({
      db: database.db,
      store: new RelayStore(database.db),
      backend,
      log,
      intervalMs: 60_000,
      batchSize: 3,
    });

  it('deletes expired mailboxes with their messages and attachments, each exactly once across concurrent sweepers', async () => {
    const expired = await Promise.all(Array.from({ length: 20 }, () => mailbox(-1_000)));
    const live = await Promise.all(Array.from({ length: 5 }, () => mailbox(3_600_000)));
    removed.length = 0;
    const results = await Promise.all([sweeper().sweep(), sweeper().sweep(), sweeper().sweep()]);
    const all = results.flat();
    expect(all.sort()).toEqual([...expired].sort());
    expect(new Set(all).size).toBe(all.length);
    expect(removed.sort()).toEqual([...expired].sort());
    const { rows } = await database.pool.query(
      `SELECT (SELECT count(*) FROM mailboxes)::int AS mailboxes, (SELECT count(*) FROM messages)::int AS messages,
              (SELECT count(*) FROM attachments)::int AS attachments`,
    );
    expect(rows[0]).toEqual({ mailboxes: live.length, messages: live.length, attachments: live.length });
  });

  it('leaves a mailbox the backend could not remove for the next pass', async () => {
    const stuck = await mailbox(-1_000, false);
    const failing = {
      removeMailbox: async () => {
        throw new Error('backend down');
      },
    } as unknown as MailBackend;
    const first = new Sweeper({
      db: database.db,
      store: new RelayStore(database.db),
      backend: failing,
      log,
      intervalMs: 60_000,
    });
    expect(await first.sweep()).toEqual([]);
    expect(await sweeper().sweep()).toEqual([stuck]);
  });
});

describe('expiry end to end', () => {
  let relay: RelayHarness;
  beforeAll(async () => {
    relay = await startRelay({ env: { RELAY_SWEEP_INTERVAL_MS: '250' } });
  });
  afterAll(async () => {
    await relay?.stop();
  });

  it('removes an expired mailbox and its mail shortly after expiry; until then it receives mail', async () => {
    const { fetch: pay } = await relay.payer();
    const box = (await relay.call(pay, 'POST', '/v1/mailboxes', { ttl: '10m' })).body;
    await nodemailer
      .createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true })
      .sendMail({ from: 'a@example.org', to: box.address, subject: 'before expiry', text: 'x' });
    // Fast-forward: the mailbox expires two seconds from now.
    await relay.database.pool.query(`UPDATE mailboxes SET expires_at = now() + interval '2 seconds' WHERE id = $1`, [
      box.id,
    ]);
    expect((await relay.call(pay, 'GET', `/v1/mailboxes/${box.id}`)).body.messages.total).toBe(1);
    await expect
      .poll(
        async () =>
          Number(
            (await relay.database.pool.query('SELECT count(*) AS n FROM mailboxes WHERE id = $1', [box.id])).rows[0].n,
          ),
        { timeout: 15_000, interval: 200 },
      )
      .toBe(0);
    const { rows } = await relay.database.pool.query('SELECT count(*)::int AS n FROM messages WHERE mailbox_id = $1', [
      box.id,
    ]);
    expect(rows[0].n).toBe(0);
    expect((await relay.call(pay, 'GET', `/v1/mailboxes/${box.id}`)).status).toBe(404);
  });
});
