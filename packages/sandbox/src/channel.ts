import type { Duplex } from 'node:stream';

/** A message from the in-sandbox agent (see agent/agent.mjs for the protocol). */
export interface AgentMessage {
  t: string;
  id?: string;
  [key: string]: unknown;
}

/**
 * The host end of the agent's control socket: newline-delimited JSON both ways. Replies to a request are
 * routed by id; everything else goes to `onEvent`.
 */
export class AgentChannel {
  private buffered = '';
  private readonly waiters = new Map<string, { resolve: (m: AgentMessage) => void; reject: (e: Error) => void }>();
  private readonly streams = new Map<string, (message: AgentMessage) => void>();
  private closed = false;
  private readonly closeListeners: (() => void)[] = [];

  constructor(
    private readonly socket: Duplex,
    private readonly onEvent: (message: AgentMessage) => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    const end = () => this.close();
    socket.on('close', end);
    socket.on('end', end);
    socket.on('error', end);
  }

  private receive(chunk: Buffer): void {
    this.buffered += chunk.toString('utf8');
    // A runaway agent cannot make the host buffer without bound.
    if (this.buffered.length > 64 * 1024 * 1024) {
      this.socket.destroy();
      return;
    }
    let newline = this.buffered.indexOf('\n');
    while (newline >= 0) {
      const line = this.buffered.slice(0, newline);
      this.buffered = this.buffered.slice(newline + 1);
      newline = this.buffered.indexOf('\n');
      if (!line) continue;
      let message: AgentMessage;
      try {
        message = JSON.parse(line) as AgentMessage;
      } catch {
        continue;
      }
      this.dispatch(message);
    }
  }

  private dispatch(message: AgentMessage): void {
    const id = message.id;
    if (id !== undefined && message.t === 'out') {
      this.streams.get(id)?.(message);
      return;
    }
    if (id !== undefined && (message.t === 'exit' || message.t === 'before-exit')) {
      const stream = this.streams.get(id);
      if (stream) {
        this.streams.delete(id);
        stream(message);
        return;
      }
      const waiter = this.waiters.get(id);
      if (waiter) {
        this.waiters.delete(id);
        waiter.resolve(message);
        return;
      }
    }
    this.onEvent(message);
  }

  send(message: Record<string, unknown>): void {
    if (this.closed) throw new Error('the sandbox agent is not connected');
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  /** Sends a request and resolves with its `exit` reply (rejects if the agent goes away first). */
  request(message: Record<string, unknown> & { id: string }): Promise<AgentMessage> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error('the sandbox is not running'));
        return;
      }
      this.waiters.set(message.id, { resolve, reject });
      this.send(message);
    });
  }

  /** Routes `out` and the final `exit` of a streaming request to `listener`. */
  stream(id: string, listener: (message: AgentMessage) => void): void {
    if (this.closed) listener({ t: 'exit', id, code: null, signal: 'SIGKILL', error: 'sandbox stopped' });
    else this.streams.set(id, listener);
  }

  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    // Whatever was still running inside died with the sandbox.
    for (const [id, waiter] of this.waiters) {
      this.waiters.delete(id);
      waiter.reject(new Error('the sandbox stopped before the command finished'));
    }
    for (const [id, listener] of this.streams) {
      this.streams.delete(id);
      listener({ t: 'exit', id, code: null, signal: 'SIGKILL', error: 'sandbox stopped' });
    }
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}
