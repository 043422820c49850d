import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLogger,
  createSecretBox,
  freePort,
  type ManagedProcess,
  newId,
  startProcess,
  waitFor,
} from '@agentstack/core';
import { createDatabase, startEmbeddedPostgres } from '@agentstack/db';
import {
  createDnsLookup,
  createRelayService,
  loadRelayConfig,
  migrateRelay,
  type RelayDatabase,
  webhookSecrets,
} from '@agentstack/relay';
import { PaymentGate, PgX402Store } from '@agentstack/x402';
import { HTTPFacilitatorClient } from '@x402/core/server';
import nodemailer from 'nodemailer';
import { load, percentile, report, SMOKE } from './lib.js';

/**
 * SMTP ingest of relay's embedded backend versus Debian's Postfix delivering over LMTP to Dovecot, on the same
 * machine, with the same load generator (nodemailer, pooled connections). Figures: messages acknowledged per
 * second (the 250 after DATA), and the time from that acknowledgement to a webhook announcing the message —
 * relay's signed webhook (after its PostgreSQL commit) versus Dovecot's push notification (OX driver, after
 * Postfix queued the message and delivered it through LMTP). Both durable: relay's PostgreSQL fsyncs, Postfix
 * fsyncs its queue files. Private instances under a temp dir on free ports; nothing system-wide is changed.
 */
const BINARIES = {
  postfix: '/usr/sbin/postfix',
  dovecot: '/usr/sbin/dovecot',
  doveadm: '/usr/bin/doveadm',
  lmtp: '/usr/lib/dovecot/lmtp',
  push: '/usr/lib/dovecot/modules/lib20_push_notification_plugin.so',
  dnsmasq: '/usr/sbin/dnsmasq',
};

async function checkBinaries() {
  const missing: string[] = [];
  for (const [name, path] of Object.entries(BINARIES)) {
    if (
      !(await access(path).then(
        () => true,
        () => false,
      ))
    ) {
      missing.push(`${name} (${path})`);
    }
  }
  if (missing.length) {
    throw new Error(
      `the relay benchmark needs ${missing.join(', ')}. On Debian 12: apt-get install -y postfix dovecot-core ` +
        'dovecot-lmtpd dnsmasq-base (not dovecot-imapd: it conflicts with cyrus-imapd). The benchmark starts its own ' +
        'private instances and needs no running mail service.',
    );
  }
}

const idOf = (subject: string) => /bench-(\d+)/.exec(subject)?.[1];

/** Records when each message's notification arrives (relay's webhook JSON or Dovecot's push JSON). */
async function startReceiver() {
  const arrivals = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as {
          subject?: string;
          data?: { message?: { subject?: string } };
        };
        const id = idOf(body.data?.message?.subject ?? body.subject ?? '');
        if (id && !arrivals.has(id)) arrivals.set(id, at);
      } catch {
        // not ours
      }
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/notify`,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function startProcessChecked(command: string, args: string[], ready: () => Promise<boolean>, what: string) {
  const proc = startProcess(command, args);
  let exited = false;
  proc.exited.then(() => {
    exited = true;
  });
  await waitFor(
    async () => {
      if (exited) throw new Error(`${what} exited: ${proc.output()}`);
      return ready();
    },
    { timeoutMs: 20_000, what },
  );
  return proc;
}

const listening = (port: number) => () =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** Dovecot (LMTP + push notifications) and Postfix (SMTP in, LMTP out) as private instances. */
async function startPostfixDovecot(dir: string, notifyUrl: string) {
  const ids = (name: string) => Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
  const lmtpPort = await freePort();
  const smtpPort = await freePort();
  const dove = join(dir, 'dovecot');
  for (const sub of ['run', 'state', 'mail', 'home']) await mkdir(join(dove, sub), { recursive: true });
  for (const sub of ['mail', 'home']) await chown(join(dove, sub), ids('dovecot'), ids('dovecot'));
  const doveConf = join(dove, 'dovecot.conf');
  await writeFile(
    doveConf,
    `base_dir = ${dove}/run
state_dir = ${dove}/state
instance_name = relaybench-${randomBytes(3).toString('hex')}
log_path = ${dove}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:${dove}/mail/%n
mail_attribute_dict = file:%h/dovecot-attributes
imap_metadata = yes
mail_fsync = always
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=${dove}/home/%n
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
  process_min_avail = 4
}
service anvil {
  chroot =
}
mail_plugins = notify push_notification
plugin {
  push_notification_driver = ox:url=${notifyUrl} user_from_metadata
}
`,
  );
  const dovecot = await startProcessChecked(
    BINARIES.dovecot,
    ['-F', '-c', doveConf],
    listening(lmtpPort),
    'dovecot LMTP',
  );

  const pf = join(dir, 'postfix');
  const conf = join(pf, 'conf');
  for (const sub of ['conf', 'queue', 'data']) await mkdir(join(pf, sub), { recursive: true });
  await chown(join(pf, 'data'), ids('postfix'), ids('postfix'));
  await writeFile(
    join(conf, 'main.cf'),
    `compatibility_level = 3.6
queue_directory = ${pf}/queue
data_directory = ${pf}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.local
mydomain = bench.local
myorigin = bench.local
mydestination =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
virtual_mailbox_domains = bench.test
virtual_transport = lmtp:inet:127.0.0.1:${lmtpPort}
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file_prefixes = ${pf}
maillog_file = ${pf}/postfix.log
smtputf8_enable = no
biff = no
default_process_limit = 100
`,
  );
  await writeFile(
    join(conf, 'master.cf'),
    [
      `127.0.0.1:${smtpPort} inet n - n - - smtpd`,
      'cleanup unix n - n - 0 cleanup',
      'qmgr unix n - n 300 1 qmgr',
      'rewrite unix - - n - - trivial-rewrite',
      'bounce unix - - n - 0 bounce',
      'defer unix - - n - 0 bounce',
      'trace unix - - n - 0 bounce',
      'verify unix - - n - 1 verify',
      'flush unix n - n 1000? 0 flush',
      'proxymap unix - - n - - proxymap',
      'smtp unix - - n - - smtp',
      'relay unix - - n - - smtp',
      'showq unix n - n - - showq',
      'error unix - - n - - error',
      'retry unix - - n - - error',
      'discard unix - - n - - discard',
      'lmtp unix - - n - - lmtp',
      'anvil unix - - n - 1 anvil',
      'scache unix - - n - 1 scache',
      'postlog unix-dgram n - n - 1 postlogd',
      '',
    ].join('\n'),
  );
  const postfix = await startProcessChecked(
    BINARIES.postfix,
    ['-c', conf, 'start-fg'],
    listening(smtpPort),
    'postfix smtpd',
  );
  return {
    smtpPort,
    /** Dovecot's push driver notifies only users whose METADATA names them. */
    enablePush(user: string) {
      const result = spawnSync(
        BINARIES.doveadm,
        [
          '-c',
          doveConf,
          'mailbox',
          'metadata',
          'set',
          '-u',
          user,
          '-s',
          '',
          '/private/vendor/vendor.dovecot/http-notify',
          `user=${user}`,
        ],
        { encoding: 'utf8' },
      );
      if (result.status !== 0) throw new Error(`doveadm failed: ${result.stderr}`);
    },
    async stop() {
      await postfix.stop(5_000);
      await dovecot.stop(5_000);
    },
  };
}

/** relay's embedded backend in-process: durable embedded PostgreSQL, its SMTP server, its webhook worker. */
async function startRelay(dir: string, notifyUrl: string, dnsServer: string) {
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o755);
  const pg = await startEmbeddedPostgres({
    dataDir: join(dir, 'pg'),
    databases: ['relay'],
    durable: true,
    settings: { max_connections: '50' },
  });
  const url = pg.urlFor('relay');
  await migrateRelay(url);
  const database = createDatabase<RelayDatabase>({ connectionString: url, max: 20 });
  const config = loadRelayConfig({
    DATABASE_URL: url,
    FACILITATOR_URL: 'http://127.0.0.1:9',
    BASE_RPC_URL: 'http://127.0.0.1:9',
    PAY_TO_ADDRESS: '0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65',
    RELAY_DOMAINS: 'bench.test',
    RELAY_SMTP_PORT: '0',
    RELAY_WEBHOOK_ALLOW_PRIVATE: 'true',
    RELAY_DNS_SERVER: dnsServer,
    LOG_LEVEL: 'silent',
  });
  const log = createLogger({ name: 'relay-bench', level: 'silent' });
  const box = createSecretBox(randomBytes(32), 'relay');
  const service = createRelayService({
    config,
    database,
    box,
    // The benchmark never calls a paid route; the gate is only needed to build the app.
    gate: new PaymentGate({
      facilitator: new HTTPFacilitatorClient({ url: 'http://127.0.0.1:9' }),
      network: 'eip155:8453',
      payTo: '0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65',
      asset: { address: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913', name: 'USD Coin', version: '2' },
      store: new PgX402Store(database.pool),
      serviceName: 'bench',
    }),
    log,
  });
  await service.start();
  const mailboxId = newId('mbx');
  await database.db
    .insertInto('mailboxes')
    .values({
      id: mailboxId,
      owner: '0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65',
      address: 'u1@bench.test',
      local_part: 'u1',
      domain: 'bench.test',
      domain_id: null,
      expires_at: new Date(Date.now() + 86_400_000),
    })
    .execute();
  const hookId = newId('wh');
  await database.db
    .insertInto('webhooks')
    .values({
      id: hookId,
      mailbox_id: mailboxId,
      url: notifyUrl,
      secret: webhookSecrets(box).seal(hookId, 'whsec_bench_0123456789'),
    })
    .execute();
  return {
    smtpPort: service.smtpPort() as number,
    async stop() {
      await service.stop();
      await database.close();
      await pg.stop();
    },
  };
}

async function drive(
  port: number,
  arrivals: Map<string, number>,
  { total, concurrency, offset }: { total: number; concurrency: number; offset: number },
) {
  const transports = Array.from({ length: concurrency }, () =>
    nodemailer.createTransport({
      host: '127.0.0.1',
      port,
      ignoreTLS: true,
      pool: true,
      maxConnections: 1,
      maxMessages: Number.POSITIVE_INFINITY,
    }),
  );
  const acks = new Map<string, number>();
  const body = 'An agent-sized message. '.repeat(80);
  const result = await load(
    async (i) => {
      const id = String(offset + i);
      const transport = transports[i % concurrency] as (typeof transports)[number];
      const info = await transport.sendMail({
        from: 'load@sender.test',
        to: 'u1@bench.test',
        subject: `bench-${id}`,
        text: body,
      });
      if (!/^250 /.test(info.response)) throw new Error(`not acknowledged: ${info.response}`);
      acks.set(id, performance.now());
    },
    { total, concurrency },
  );
  for (const t of transports) t.close();
  await waitFor(() => [...acks.keys()].every((id) => arrivals.has(id)), {
    timeoutMs: 120_000,
    intervalMs: 20,
    what: `notifications for all ${total} messages`,
  });
  const latencies = [...acks].map(([id, ack]) => Math.max(0, (arrivals.get(id) as number) - ack));
  return { perSecond: result.perSecond, latencies };
}

export async function main() {
  await checkBinaries();
  const total = SMOKE ? 20 : 600;
  const concurrency = SMOKE ? 2 : 8;
  const warmup = SMOKE ? 4 : 40;
  const dir = await mkdtemp(join(tmpdir(), 'relay-bench-'));
  await chmod(dir, 0o755);
  const receiver = await startReceiver();
  const started: { stop(): Promise<void> }[] = [];
  let dns: ManagedProcess | undefined;
  try {
    // A real DNS server for relay's SPF/DKIM/DMARC checks of incoming mail (it answers NXDOMAIN at once).
    const dnsPort = await freePort();
    dns = startProcess(BINARIES.dnsmasq, [
      '--keep-in-foreground',
      '--no-daemon',
      '--conf-file=/dev/null',
      '--no-resolv',
      '--no-hosts',
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      `--port=${dnsPort}`,
      '--user=root',
      '--group=root',
      '--pid-file=',
      '--local=/test/',
    ]);
    const lookup = createDnsLookup({ servers: [`127.0.0.1:${dnsPort}`], timeoutMs: 1_000 });
    await waitFor(
      () =>
        lookup.resolve('x.test', 'TXT').then(
          () => true,
          (e: NodeJS.ErrnoException) => e.code === 'ENOTFOUND',
        ),
      {
        what: 'dnsmasq',
      },
    );

    const relay = await startRelay(join(dir, 'relay'), receiver.url, `127.0.0.1:${dnsPort}`);
    started.push(relay);
    const peer = await startPostfixDovecot(dir, receiver.url);
    started.push(peer);
    peer.enablePush('u1@bench.test');

    await drive(relay.smtpPort, receiver.arrivals, { total: warmup, concurrency, offset: 1_000_000 });
    await drive(peer.smtpPort, receiver.arrivals, { total: warmup, concurrency, offset: 2_000_000 });
    const ours = await drive(relay.smtpPort, receiver.arrivals, { total, concurrency, offset: 0 });
    const theirs = await drive(peer.smtpPort, receiver.arrivals, { total, concurrency, offset: 3_000_000 });

    await report({
      name: 'relay',
      ours: 'relay.sh embedded backend (smtp-server → mailauth + mailparser → PostgreSQL commit → signed webhook)',
      peer: 'Debian Postfix 3.7 → LMTP → Dovecot 2.3 (push notification)',
      figures: [
        { label: 'SMTP ingest', ours: ours.perSecond, peer: theirs.perSecond, unit: 'msg/s', higherIsBetter: true },
        {
          label: 'p50 ack → webhook',
          ours: percentile(ours.latencies, 50),
          peer: percentile(theirs.latencies, 50),
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          label: 'p99 ack → webhook',
          ours: percentile(ours.latencies, 99),
          peer: percentile(theirs.latencies, 99),
          unit: 'ms',
          higherIsBetter: false,
        },
      ],
      notes: [
        `${total} messages of ~2 KB per side after ${warmup} warm-up messages, ${concurrency} concurrent SMTP connections (nodemailer pools).`,
        'relay checks SPF/DKIM/DMARC (mailauth, local DNS server), parses and stores each message before answering 250; Postfix answers 250 once queued and delivers afterwards.',
      ],
    });
  } finally {
    for (const item of started.reverse()) await item.stop().catch((err) => console.error('stop failed:', err));
    await dns?.stop();
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
}
