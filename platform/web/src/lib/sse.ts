/**
 * Reads a Server-Sent Events body into the JSON of each `data:` frame (comments such as `: keep-alive` are
 * skipped). Works in browsers and Node. The caller validates the shape.
 */
export async function* readSseJson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  let buffer = '';
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      finished = done;
      buffer += decoder.decode(value, { stream: !done });
      buffer = buffer.replace(/\r\n?/g, '\n');
      let boundary = buffer.indexOf('\n\n');
      while (boundary !== -1) {
        const frame = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        const data = frame
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
          .join('\n');
        if (data) yield JSON.parse(data);
        boundary = buffer.indexOf('\n\n');
      }
      if (done) {
        const rest = buffer.trim();
        if (rest.startsWith('data:')) yield JSON.parse(rest.slice(5).trim());
        return;
      }
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
