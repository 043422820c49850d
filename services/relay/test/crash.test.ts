import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, type ManagedProcess, startProcess, waitForHttp } from '@agentstack/core';
import type { TestDatabase } from '@agentstack/db/testing';
import { type PaymentTestbed, startPaymentTestbed } from '@agentstack/x402/testing';
import nodemailer from 'nodemailer';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayDatabase } from '../src/db.js';
import { relayTestDatabase } from './support/harness.js';

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const tsx = fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url));

let bed: PaymentTestbed;
let database: TestDatabase<RelayDatabase>;
let dataDir: string;
let env: Record<string, string>;
let apiUrl: string;
let smtpPort: number;

beforeAll(async () => {
  bed = await startPaymentTestbed();
  database = await relayTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'relay-crash-'));
  await chmod(dataDir, 0o700);
  const port = await freePort();
  smtpPort = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  env = {
    ...(process.env as Record<string, string>),
    CHAIN: 'devnet',
    BASE_RPC_URL: bed.devnet.rpcUrl,
    FACILITATOR_URL: bed.facilitatorUrl,
    DATABASE_URL: database.url,
    PAY_TO_ADDRESS: privateKeyToAccount(generatePrivateKey()).address,
    SERVICE_DATA_DIR: dataDir,
    RELAY_PORT: String(port),
    RELAY_SMTP_PORT: String(smtpPort),
    RELAY_DOMAINS: 'relay.test',
    LOG_LEVEL: 'warn',
  };
});
afterAll(async () => {
  await database?.drop();
  await bed?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function startService(): Promise<ManagedProcess> {
  const proc = startProcess(tsx, [main, 'serve'], { env });
  await Promise.race([
    waitForHttp(`${apiUrl}/v1/health`, 60_000),
    proc.exited.then(() => {
      throw new Error(`relay exited during start:\n${proc.output()}`);
    }),
  ]);
  return proc;
}

/** kill -9 of the whole process group: no shutdown hooks, no flushing, connections cut mid-sentence. */
function killHard(proc: ManagedProcess) {
  try {
    process.kill(-proc.pid, 'SIGKILL');
  } catch {
    process.kill(proc.pid, 'SIGKILL');
  }
  return proc.exited;
}

/** Opens an SMTP session and stops in the middle of DATA (no terminating dot). */
async function halfSentMessage(to: string): Promise<void> {
  const socket = createConnection({ host: '127.0.0.1', port: smtpPort });
  socket.on('error', () => {});
  const lines = [
    'EHLO crash.test',
    'MAIL FROM:<half@example.org>',
    `RCPT TO:<${to}>`,
    'DATA',
    'From: half@example.org\r\nSubject: never finished\r\n\r\nthe first half of the body',
  ];
  let received = '';
  const replies = () => (received.match(/^\d{3} /gm) ?? []).length;
  await new Promise<void>((resolve) => {
    socket.on('data', (chunk) => {
      received += chunk.toString();
      const count = replies();
      // greeting, EHLO, MAIL, RCPT, DATA (354): then the partial body goes out and we stop.
      if (count >= 1 && lines.length > 0 && count > 5 - lines.length) socket.write(`${lines.shift()}\r\n`);
      if (lines.length === 0) resolve();
    });
  });
}

describe('a crash while messages are being received', () => {
  it('loses nothing that was acknowledged with 250, and stores nothing half-received', async () => {
    let proc = await startService();
    const payer = await bed.fundedAccount(1_000_000n);
    const pay = bed.payingFetch(payer).fetch;
    const created = await pay(`${apiUrl}/v1/mailboxes`, { method: 'POST' });
    expect(created.status).toBe(201);
    const mailbox = (await created.json()) as { id: string; address: string };

    const acknowledged = new Set<string>();
    let failed = 0;
    let stop = false;
    const sender = async (n: number) => {
      const transport = nodemailer.createTransport({
        host: '127.0.0.1',
        port: smtpPort,
        ignoreTLS: true,
        pool: true,
        maxConnections: 1,
      });
      for (let i = 0; !stop; i++) {
        const subject = `s${n}-${i}`;
        try {
          const info = await transport.sendMail({
            from: 'load@example.org',
            to: mailbox.address,
            subject,
            text: `message ${subject} `.repeat(200),
            attachments: [{ filename: `${subject}.bin`, content: Buffer.alloc(20_000, n) }],
          });
          if (/^250 /.test(info.response)) acknowledged.add(subject);
        } catch {
          failed += 1;
          break;
        }
      }
      transport.close();
    };
    const senders = [1, 2, 3, 4].map(sender);
    await halfSentMessage(mailbox.address);
    await expect.poll(() => acknowledged.size, { timeout: 30_000, interval: 20 }).toBeGreaterThanOrEqual(25);
    await killHard(proc);
    stop = true;
    await Promise.all(senders);
    expect(failed).toBeGreaterThan(0); // the kill really interrupted sending

    proc = await startService();
    try {
      const subjects = new Set<string>();
      let cursor: string | null = null;
      do {
        const res = await pay(
          `${apiUrl}/v1/mailboxes/${mailbox.id}/messages?limit=100${cursor ? `&cursor=${cursor}` : ''}`,
        );
        const page = (await res.json()) as {
          items: { subject: string; hasAttachments: boolean }[];
          nextCursor: string | null;
        };
        for (const item of page.items) {
          subjects.add(item.subject);
          expect(item.hasAttachments).toBe(true);
        }
        cursor = page.nextCursor;
      } while (cursor);
      for (const subject of acknowledged) expect(subjects.has(subject), `acknowledged ${subject} is stored`).toBe(true);
      expect(subjects.has('never finished')).toBe(false);
      // Every stored message is whole: as many attachments as messages.
      const { rows } = await database.pool.query(
        `SELECT count(*)::int AS messages, (SELECT count(*)::int FROM attachments a JOIN messages m ON m.id = a.message_id
           WHERE m.mailbox_id = $1) AS attachments FROM messages WHERE mailbox_id = $1`,
        [mailbox.id],
      );
      expect(rows[0].attachments).toBe(rows[0].messages);
    } finally {
      await proc.stop();
    }
  });
});
