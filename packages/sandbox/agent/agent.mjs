// The in-sandbox agent. bwrap starts it as the sandbox's first process (pid 2 inside; bwrap's reaper is
// pid 1), so everything it starts inherits the sandbox's uid, namespaces, seccomp filter and cgroups.
//
// It talks to the host over fd 3 (a socketpair the host made), one JSON object per line:
//   host → agent: start, exec, stdin, signal, shutdown
//   agent → host: hello, ready, out, exit, main-exit, error
// and serves the forwarded sockets the host passed in as listening fds.
//
// Plain JavaScript on purpose: it runs on the host's node binary with no loader, no dependencies.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';

const control = new net.Socket({ fd: 3, readable: true, writable: true });
/** Environment every child gets (what bwrap set for the sandbox), without the agent's own variables. */
const baseEnv = { ...process.env };
delete baseEnv.NODE_OPTIONS;

/** @type {Map<string, import('node:child_process').ChildProcess>} */
const running = new Map();
let main;
let shuttingDown = false;

function send(message) {
  if (!control.destroyed) control.write(`${JSON.stringify(message)}\n`);
}

/** User processes are the OOM killer's first choice, so a memory bomb never takes the agent down first. */
function preferForOom(pid) {
  try {
    writeFileSync(`/proc/${pid}/oom_score_adj`, '500');
  } catch {
    // the process already exited
  }
}

function killGroup(child, signal) {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  }
}

/**
 * Starts a process in its own process group. Streams its output to the host (`stream`) or collects it
 * (`collect`, capped at maxOutputBytes per stream), and reports its end once.
 */
function run(request, report = send) {
  const { id, argv, env, cwd, stdin, timeoutMs, stream } = request;
  const maxOutput = request.maxOutputBytes ?? 1024 * 1024;
  let child;
  try {
    child = spawn(argv[0], argv.slice(1), {
      cwd: cwd ?? baseEnv.HOME,
      env: { ...baseEnv, ...(env ?? {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
  } catch (err) {
    report({ t: 'exit', id, code: null, signal: null, error: String(err?.message ?? err) });
    return;
  }
  let finished = false;
  const outputs = { 1: [], 2: [] };
  const sizes = { 1: 0, 2: 0 };
  let truncated = false;
  let timedOut = false;
  const onData = (fd) => (chunk) => {
    if (stream) {
      send({ t: 'out', id, fd, data: chunk.toString('base64') });
      return;
    }
    const room = maxOutput - sizes[fd];
    if (room <= 0) {
      truncated = true;
      return;
    }
    const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (piece.length < chunk.length) truncated = true;
    outputs[fd].push(piece);
    sizes[fd] += piece.length;
  };
  child.stdout.on('data', onData(1));
  child.stderr.on('data', onData(2));
  child.stdin.on('error', () => {});
  if (child.pid !== undefined) {
    running.set(id, child);
    preferForOom(child.pid);
  }
  if (typeof stdin === 'string') child.stdin.end(Buffer.from(stdin, 'base64'));
  else if (!stream) child.stdin.end();

  const timer =
    timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          killGroup(child, 'SIGKILL');
        }, timeoutMs)
      : undefined;

  const finish = (code, signal, error) => {
    if (finished) return;
    finished = true;
    if (timer) clearTimeout(timer);
    running.delete(id);
    const message = { t: 'exit', id, code, signal, timedOut, truncated };
    if (error) message.error = error;
    if (!stream) {
      message.stdout = Buffer.concat(outputs[1]).toString('base64');
      message.stderr = Buffer.concat(outputs[2]).toString('base64');
    }
    report(message);
  };
  child.on('error', (err) => finish(null, null, String(err?.message ?? err)));
  child.on('exit', (code, signal) => {
    // Background processes may keep the pipes open; give the output a moment to drain, then report.
    let closed = false;
    child.once('close', () => {
      closed = true;
      finish(code, signal);
    });
    setTimeout(() => {
      if (!closed) {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }
    }, 100);
  });
}

/** Bridges two sockets (half-closes pass through) and tears both down when either fails or closes. */
function bridge(a, b) {
  const close = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', close);
  b.on('error', close);
  a.on('close', close);
  b.on('close', close);
  a.pipe(b);
  b.pipe(a);
}

/**
 * A forwarded socket: the host passed a listening unix socket as an fd. `exec` runs a command per
 * connection with the connection on its stdin/stdout (inetd style); `tcp` bridges each connection to a
 * port on the sandbox's own loopback, `unix` to a unix socket path inside. (`fd` forwards are handed to the main command instead.)
 */
function serve(forward) {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (connection) => {
    if (shuttingDown) {
      connection.destroy();
      return;
    }
    if (forward.mode === 'tcp' || forward.mode === 'unix') {
      // The server inside may still be starting: retry a refused connection for a few seconds.
      const deadline = Date.now() + 5000;
      const target = forward.mode === 'tcp' ? { host: '127.0.0.1', port: forward.port } : { path: forward.path };
      const attempt = () => {
        const upstream = net.connect({ ...target, allowHalfOpen: true });
        const refused = (err) => {
          upstream.destroy();
          const notYet = err.code === 'ECONNREFUSED' || err.code === 'ENOENT';
          if (notYet && Date.now() < deadline && !connection.destroyed) setTimeout(attempt, 20);
          else connection.destroy();
        };
        upstream.once('error', refused);
        upstream.once('connect', () => {
          upstream.off('error', refused);
          bridge(connection, upstream);
          connection.resume();
        });
      };
      attempt();
      return;
    }
    // The command gets one bidirectional socket as both stdin and stdout (inetd daemons such as
    // `dropbear -i` read and write fd 0), a socketpair we bridge to the connection rather than the
    // connection itself: some daemons misbehave when their socket's address is a long unix path.
    const child = spawn('/bin/sh', ['-c', 'exec "$@" <&3 >&3 3<&-', 'sh', ...forward.argv], {
      cwd: baseEnv.HOME,
      env: baseEnv,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      detached: true,
    });
    const key = `conn:${forward.name}:${child.pid}`;
    if (child.pid !== undefined) {
      running.set(key, child);
      preferForOom(child.pid);
    }
    const socket = child.stdio[3];
    connection.on('error', () => killGroup(child, 'SIGHUP'));
    socket.on('error', () => {});
    connection.pipe(socket);
    socket.pipe(connection);
    child.on('error', () => connection.destroy());
    // The connection ends when the command's side of the socket closes (its output is all read by then),
    // not when the command exits: output can still be in flight at that moment.
    child.on('exit', () => running.delete(key));
    connection.on('close', () => killGroup(child, 'SIGHUP'));
    connection.resume();
  });
  server.on('error', (err) => send({ t: 'error', message: `forward ${forward.name}: ${err.message}` }));
  server.listen({ fd: forward.fd });
}

function startMain(spec, fdForwards) {
  const extra = fdForwards.map((f) => f.fd);
  const env = { ...baseEnv, ...(spec.env ?? {}) };
  if (fdForwards.length > 0) {
    env.LISTEN_FDS = String(fdForwards.length);
    env.LISTEN_FDNAMES = fdForwards.map((f) => f.name).join(':');
  }
  // Listening sockets arrive at 3, 4, … in the order of LISTEN_FDNAMES (systemd's convention).
  main = spawn(spec.argv[0], spec.argv.slice(1), {
    cwd: spec.cwd ?? baseEnv.HOME,
    env,
    stdio: ['ignore', 'inherit', 'inherit', ...extra],
  });
  if (main.pid !== undefined) preferForOom(main.pid);
  main.on('error', (err) => {
    send({ t: 'main-exit', code: null, signal: null, error: err.message });
    exitSoon(127);
  });
  main.on('exit', (code, signal) => {
    // The sandbox lives as long as its main command: the host ends it on this message.
    send({ t: 'main-exit', code, signal });
    exitSoon(code ?? 128);
  });
}

async function start(message) {
  if (message.before) {
    // The boot command runs to completion before anything is served; its result is reported apart.
    await new Promise((resolve) => {
      run(message.before, (result) => {
        send({ ...result, t: 'before-exit' });
        resolve();
      });
    });
  }
  for (const forward of message.forwards ?? []) if (forward.mode !== 'fd') serve(forward);
  if (message.main) {
    startMain(
      message.main,
      (message.forwards ?? []).filter((f) => f.mode === 'fd'),
    );
  }
  send({ t: 'ready', pid: process.pid });
}

async function shutdown(graceMs) {
  if (shuttingDown) return;
  shuttingDown = true;
  const children = [...running.values()];
  if (main) children.push(main);
  for (const child of children) killGroup(child, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && children.some((c) => c.exitCode === null && c.signalCode === null)) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  for (const child of children) killGroup(child, 'SIGKILL');
  send({ t: 'shutdown-done' });
  exitSoon(0);
}

/**
 * The host ends the sandbox by killing its init (bwrap, outside, then reaps it); exiting first would
 * leave that init to the host's pid 1 as a zombie. Only if the host does not act, leave on our own.
 */
function exitSoon(code) {
  setTimeout(() => process.exit(code), 5000).unref();
}

let buffered = '';
control.on('data', (chunk) => {
  buffered += chunk.toString('utf8');
  let newline = buffered.indexOf('\n');
  while (newline >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    newline = buffered.indexOf('\n');
    if (!line) continue;
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      send({ t: 'error', message: 'unparseable control message' });
      continue;
    }
    handle(message);
  }
});

function handle(message) {
  switch (message.t) {
    case 'start':
      start(message).catch((err) => send({ t: 'error', message: `start: ${err.message}` }));
      break;
    case 'exec':
      if (shuttingDown) send({ t: 'exit', id: message.id, code: null, signal: null, error: 'shutting down' });
      else run(message);
      break;
    case 'stdin': {
      const child = running.get(message.id);
      if (!child) break;
      if (message.data === null) child.stdin.end();
      else child.stdin.write(Buffer.from(message.data, 'base64'));
      break;
    }
    case 'signal': {
      const child = running.get(message.id);
      if (child) killGroup(child, message.signal);
      break;
    }
    case 'shutdown':
      shutdown(message.graceMs ?? 5000);
      break;
    default:
      send({ t: 'error', message: `unknown control message ${message.t}` });
  }
}

// The host went away: nothing left to serve (bwrap's --die-with-parent also ends us).
control.on('close', () => process.exit(0));
control.on('error', () => process.exit(0));
process.on('SIGTERM', () => shutdown(2000));

send({ t: 'hello', pid: process.pid });
