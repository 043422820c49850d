import { access } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort, type ManagedProcess, startProcess, waitFor } from '@agentstack/core';
import { SMTPServer } from 'smtp-server';
import { createDnsLookup, type DnsLookup } from '../../src/dns.js';

// ---- webhook receiver

export interface ReceivedHook {
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

export interface HookReceiver {
  url: string;
  received: ReceivedHook[];
  /** The status to answer the next requests with (popped per request; 200 when empty). */
  respondWith: number[];
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedHook[]>;
  close(): Promise<void>;
}

export async function startHookReceiver(): Promise<HookReceiver> {
  const received: ReceivedHook[] = [];
  const respondWith: number[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
      res.statusCode = respondWith.shift() ?? 200;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    respondWith,
    waitFor: (count, timeoutMs = 15_000) =>
      waitFor(() => (received.length >= count ? received : undefined), { timeoutMs, what: `${count} webhook(s)` }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// ---- SMTP sink (the "outbound relay" and the JMAP server's submission target)

export interface SunkMessage {
  from: string;
  to: string[];
  raw: Buffer;
}

export interface SmtpSink {
  port: number;
  messages: SunkMessage[];
  /** Recipients to refuse at RCPT TO. */
  refuse: Set<string>;
  waitFor(count: number, timeoutMs?: number): Promise<SunkMessage[]>;
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: SunkMessage[] = [];
  const refuse = new Set<string>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onAuth(_auth, _session, callback) {
      callback(null, { user: 'any' });
    },
    onRcptTo(address, _session, callback) {
      if (refuse.has(address.address.toLowerCase())) {
        return callback(Object.assign(new Error('5.1.1 refused by the test sink'), { responseCode: 550 }));
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    messages,
    refuse,
    waitFor: (count, timeoutMs = 15_000) =>
      waitFor(() => (messages.length >= count ? messages : undefined), {
        timeoutMs,
        what: `${count} message(s) at the sink`,
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// ---- DNS server (Debian dnsmasq) serving a test zone on loopback

export const DNSMASQ = '/usr/sbin/dnsmasq';

export interface TestDns {
  port: number;
  lookup: DnsLookup;
  server: string;
  stop(): Promise<void>;
}

export interface Zone {
  /** Domains answered only from these records (anything else under them: NXDOMAIN). */
  local: string[];
  txt?: { name: string; value: string }[];
  mx?: { name: string; host: string; priority: number }[];
}

/**
 * TXT strings longer than 255 bytes are split into several character-strings, as DNS requires; dnsmasq
 * takes them comma-separated (the values used here contain no commas).
 */
function txtArgument(name: string, value: string): string {
  if (value.includes(',')) throw new Error('dnsmasq TXT values here must not contain commas');
  const chunks: string[] = [];
  for (let i = 0; i < value.length; i += 255) chunks.push(value.slice(i, i + 255));
  return `--txt-record=${name},${chunks.join(',')}`;
}

export async function startDnsmasq(zone: Zone): Promise<TestDns> {
  await access(DNSMASQ).catch(() => {
    throw new Error(
      `${DNSMASQ} not found: apt-get install -y dnsmasq-base (the DNS server these tests run on loopback)`,
    );
  });
  const port = await freePort();
  const args = [
    '--keep-in-foreground',
    '--no-daemon',
    '--conf-file=/dev/null',
    '--no-resolv',
    '--no-hosts',
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    `--port=${port}`,
    '--user=root',
    '--group=root',
    '--pid-file=',
    ...zone.local.map((d) => `--local=/${d}/`),
    ...(zone.txt ?? []).map((r) => txtArgument(r.name, r.value)),
    ...(zone.mx ?? []).map((r) => `--mx-host=${r.name},${r.host},${r.priority}`),
  ];
  const proc: ManagedProcess = startProcess(DNSMASQ, args);
  const lookup = createDnsLookup({ servers: [`127.0.0.1:${port}`], timeoutMs: 1_000 });
  let exited = false;
  proc.exited.then(() => {
    exited = true;
  });
  await waitFor(
    async () => {
      if (exited) throw new Error(`dnsmasq exited: ${proc.output()}`);
      try {
        await lookup.resolve(`probe.${zone.local[0] ?? 'test'}`, 'TXT');
        return true;
      } catch (err) {
        return (err as NodeJS.ErrnoException).code === 'ENOTFOUND' || (err as NodeJS.ErrnoException).code === 'ENODATA';
      }
    },
    { timeoutMs: 10_000, what: 'dnsmasq to answer' },
  );
  return { port, lookup, server: `127.0.0.1:${port}`, stop: () => proc.stop(2_000) };
}
