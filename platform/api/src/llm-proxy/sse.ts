/**
 * Server-sent events, as the WHATWG spec reads them: lines end in CRLF, LF or CR; `:` starts a comment;
 * `data:` lines of one event are joined with LF; a blank line dispatches; a trailing event without its blank
 * line is still dispatched when the stream ends (some servers close right after the last `data:`).
 */
export interface SseEvent {
  event: string | undefined;
  data: string;
}

export async function* parseSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event: string | undefined;
  let data: string[] = [];
  let sawData = false;
  // A CR at the very end of a read may be the first half of a CRLF: hold it until the next read.
  let pendingCr = false;

  function* lines(final: boolean): Generator<string> {
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const ch = buffer.charCodeAt(i);
      if (ch === 10 || ch === 13) {
        if (ch === 13 && i === buffer.length - 1 && !final) {
          pendingCr = true;
          yield buffer.slice(start, i);
          start = i + 1;
          break;
        }
        yield buffer.slice(start, i);
        if (ch === 13 && buffer.charCodeAt(i + 1) === 10) i++;
        start = i + 1;
      }
    }
    buffer = buffer.slice(start);
  }

  function* take(line: string): Generator<SseEvent> {
    if (line === '') {
      if (sawData) yield { event, data: data.join('\n') };
      event = undefined;
      data = [];
      sawData = false;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      data.push(value);
      sawData = true;
    } else if (field === 'event') {
      event = value;
    }
  }

  for await (const bytes of body) {
    let text = decoder.decode(bytes, { stream: true });
    if (pendingCr) {
      pendingCr = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    buffer += text;
    for (const line of lines(false)) yield* take(line);
  }
  buffer += decoder.decode();
  for (const line of lines(true)) yield* take(line);
  if (buffer !== '') yield* take(buffer);
  if (sawData) yield { event, data: data.join('\n') };
}

/** One SSE `data:` event as bytes-ready text (JSON payloads never contain raw newlines). */
export const sseData = (payload: unknown): string => `data: ${JSON.stringify(payload)}\n\n`;
export const SSE_DONE = 'data: [DONE]\n\n';
