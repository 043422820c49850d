import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { access, chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type ManagedProcess, startProcess, waitFor } from '@agentstack/core';

/**
 * A private Cyrus IMAP 3.6 (Debian `cyrus-imapd`) with JMAP, under a temp dir, on free loopback ports:
 * HTTP (JMAP), LMTP (delivery) and IMAP (logins create the account). Users authenticate with passwords
 * from a private sasldb, or with HS256 JSON Web Tokens (`http_jwt_key_dir`) that expire after `jwtMaxAge`
 * seconds. EmailSubmission goes to `smtpPort` (an SMTP sink). Search filters use Xapian; `index()` runs
 * squatter. Started by the test, stopped by pid; nothing outside the temp dir is touched.
 */
export const CYRUS_MASTER = '/usr/lib/cyrus/bin/master';
const SQUATTER = '/usr/lib/cyrus/bin/squatter';
const SASLPASSWD = '/usr/sbin/saslpasswd2';

export interface CyrusServer {
  httpUrl: string;
  lmtpPort: number;
  dir: string;
  /** Creates (or re-passwords) a user `local@domain` and makes sure the account exists. */
  addUser(address: string, password: string): Promise<void>;
  setPassword(address: string, password: string): Promise<void>;
  /** A JWT for the user, valid for the configured max age from `issuedAt`. */
  jwt(address: string, issuedAt?: number): string;
  /** Indexes every mailbox for search (Xapian), so text/from filters see new mail. */
  index(): void;
  stop(): Promise<void>;
}

export async function cyrusAvailable(): Promise<boolean> {
  try {
    await access(CYRUS_MASTER);
    await access(SASLPASSWD);
    return true;
  } catch {
    return false;
  }
}

function cyrusIds(): { uid: number; gid: number } {
  const id = spawnSync('id', ['-u', 'cyrus'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'cyrus'], { encoding: 'utf8' });
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  const result = spawnSync('chown', ['-R', `${uid}:${gid}`, path]);
  if (result.status !== 0) throw new Error(`chown failed: ${result.stderr}`);
  await chown(path, uid, gid);
}

export async function startCyrus({
  smtpPort,
  jwtMaxAge = 2,
}: {
  smtpPort: number;
  jwtMaxAge?: number;
}): Promise<CyrusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'relay-cyrus-'));
  await chmod(dir, 0o755);
  const [httpPort, lmtpPort, imapPort] = [await freePort(), await freePort(), await freePort()];
  for (const sub of ['conf', 'conf/socket', 'conf/proc', 'conf/log', 'spool', 'search', 'sieve', 'run', 'jwt']) {
    await mkdir(join(dir, sub), { recursive: true });
  }
  const jwtKey = randomBytes(32);
  await writeFile(
    join(dir, 'jwt', 'hmac.pem'),
    `-----BEGIN HMAC KEY-----\n${jwtKey.toString('base64')}\n-----END HMAC KEY-----\n`,
  );
  const conf = join(dir, 'imapd.conf');
  // defaultdomain must not be the test users' domain: Cyrus strips it and then looks the user up in the wrong realm.
  await writeFile(
    conf,
    [
      `configdirectory: ${dir}/conf`,
      `partition-default: ${dir}/spool`,
      `sievedir: ${dir}/sieve`,
      'servername: cyrus.local',
      'defaultdomain: cyrus.local',
      'virtdomains: userid',
      'admins: admin@cyrus.local',
      'sasl_pwcheck_method: auxprop',
      'sasl_auxprop_plugin: sasldb',
      `sasl_sasldb_path: ${dir}/sasldb2`,
      'sasl_mech_list: PLAIN LOGIN',
      'allowplaintext: yes',
      'httpmodules: jmap',
      'httpallowcompress: no',
      `http_jwt_key_dir: ${dir}/jwt`,
      `http_jwt_max_age: ${jwtMaxAge}s`,
      'conversations: yes',
      'conversations_db: twoskip',
      'autocreate_post: yes',
      'autocreate_quota: 0',
      'autocreate_inbox_folders: Drafts|Sent|Trash',
      'smtp_backend: host',
      `smtp_host: 127.0.0.1:${smtpPort}`,
      'search_engine: xapian',
      'search_index_headers: yes',
      'defaultsearchtier: t1',
      `t1searchpartition-default: ${dir}/search`,
      `lmtpsocket: ${dir}/conf/socket/lmtp`,
      `idlesocket: ${dir}/conf/socket/idle`,
      `notifysocket: ${dir}/conf/socket/notify`,
      'syslog_prefix: relay-test-cyrus',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(dir, 'cyrus.conf'),
    [
      'START {',
      `  recover cmd="ctl_cyrusdb -r -C ${conf}"`,
      '}',
      'SERVICES {',
      `  http cmd="httpd -C ${conf}" listen="127.0.0.1:${httpPort}" prefork=0`,
      `  lmtp cmd="lmtpd -a -C ${conf}" listen="127.0.0.1:${lmtpPort}" prefork=0`,
      `  imap cmd="imapd -C ${conf}" listen="127.0.0.1:${imapPort}" prefork=0`,
      '}',
      'EVENTS {',
      '}',
      'DAEMON {',
      '}',
      '',
    ].join('\n'),
  );
  const { uid, gid } = cyrusIds();
  // The sasldb must exist before the server reads it.
  spawnSync(SASLPASSWD, ['-p', '-c', '-f', join(dir, 'sasldb2'), '-u', 'cyrus.local', 'admin'], {
    input: randomBytes(9).toString('hex'),
  });
  await chownTree(dir, uid, gid);

  const proc: ManagedProcess = startProcess(CYRUS_MASTER, [
    '-C',
    conf,
    '-M',
    join(dir, 'cyrus.conf'),
    '-D',
    '-p',
    join(dir, 'run', 'master.pid'),
  ]);
  let exited = false;
  proc.exited.then(() => {
    exited = true;
  });
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  await waitFor(
    async () => {
      if (exited) throw new Error(`cyrus master exited: ${proc.output()}`);
      const res = await fetch(`${httpUrl}/jmap/`).catch(() => undefined);
      return res !== undefined;
    },
    { timeoutMs: 15_000, what: 'Cyrus HTTP to answer' },
  );

  const setPassword = async (address: string, password: string) => {
    const at = address.lastIndexOf('@');
    const result = spawnSync(
      SASLPASSWD,
      ['-p', '-c', '-f', join(dir, 'sasldb2'), '-u', address.slice(at + 1), address.slice(0, at)],
      {
        input: password,
      },
    );
    if (result.status !== 0) throw new Error(`saslpasswd2 failed: ${result.stderr}`);
    await chown(join(dir, 'sasldb2'), uid, gid);
  };

  /** An IMAP login creates the account (autocreate) with its folders. */
  const imapLogin = (address: string, password: string) =>
    new Promise<void>((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port: imapPort });
      let buffer = '';
      let step = 0;
      socket.on('data', (chunk) => {
        buffer += chunk.toString();
        if (step === 0 && buffer.includes('* OK')) {
          step = 1;
          socket.write(`a1 LOGIN "${address}" "${password}"\r\n`);
        } else if (step === 1 && /a1 (OK|NO|BAD)/.test(buffer)) {
          step = 2;
          if (!/a1 OK/.test(buffer)) reject(new Error(`IMAP login failed: ${buffer}`));
          socket.end('a2 LOGOUT\r\n');
        }
      });
      socket.on('close', () => resolve());
      socket.on('error', reject);
    });

  return {
    httpUrl,
    lmtpPort,
    dir,
    setPassword,
    async addUser(address, password) {
      await setPassword(address, password);
      await imapLogin(address, password);
    },
    jwt(address, issuedAt = Math.floor(Date.now() / 1000)) {
      const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub: address, iat: issuedAt })}`;
      return `${unsigned}.${createHmac('sha256', jwtKey).update(unsigned).digest('base64url')}`;
    },
    index() {
      const result = spawnSync(SQUATTER, ['-C', conf, '-i'], { uid, gid, encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`squatter failed: ${result.stderr}`);
    },
    async stop() {
      await proc.stop(3_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
