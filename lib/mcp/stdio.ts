/**
 * MCP over stdio, for desktop clients that launch their servers as processes (`deno task mcp`,
 * or the binary with `--mcp`): each line of stdin is a JSON-RPC message, answered on stdout as
 * the HTTP endpoint answers it (its event stream's messages, one per line). Messages are handled
 * at once, so a cancellation reaches a tool call that is still running. Nothing else is written
 * to stdout: the log goes to stderr.
 * @module
 */

/** Reads newline-delimited JSON-RPC from `input` and writes the answers to `write`. */
export async function serveStdio(
  handler: (request: Request) => Promise<Response>,
  options: {
    /** Where the MCP endpoint is, for the requests' URL (and the links the tools answer). */
    endpoint: string;
    input: ReadableStream<Uint8Array>;
    write: (line: string) => void;
  },
): Promise<void> {
  const pending = new Set<Promise<void>>();
  const answer = async (line: string) => {
    const response = await handler(
      new Request(options.endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          host: new URL(options.endpoint).host,
        },
        body: line,
      }),
    );
    if (response.status === 202 || !response.body) return void await response.body?.cancel();
    if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      return options.write(JSON.stringify(await response.json()));
    }
    // One message per `data:` line of the event stream; comments (keep-alives) are dropped.
    for await (const line of lines(response.body)) {
      if (line.startsWith("data: ")) options.write(line.slice(6));
    }
  };
  for await (const line of lines(options.input)) {
    if (!line.trim()) continue;
    const task = answer(line).catch((err) => {
      options.write(JSON.stringify({
        jsonrpc: "2.0",
        id: null,
        error: { code: -32603, message: `Internal error: ${(err as Error).message}` },
      }));
    }).finally(() => pending.delete(task));
    pending.add(task);
  }
  await Promise.all(pending);
}

/**
 * The lines of a byte stream, without their line ends (`\n` or `\r\n`), in time linear in its
 * length.
 */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    // Only the new text is searched: a long line arriving in many chunks is scanned once.
    const from = buffer.length;
    buffer += text;
    let start = 0;
    for (let end = buffer.indexOf("\n", from); end >= 0; end = buffer.indexOf("\n", start)) {
      yield buffer.slice(start, end).replace(/\r$/, "");
      start = end + 1;
    }
    buffer = buffer.slice(start);
  }
  if (buffer) yield buffer;
}

/** What {@link runStdio} needs of a booted server. */
export interface StdioServer {
  config: { port: number };
  handler: ((request: Request) => Promise<Response>) & {
    handOver(): Promise<void>;
    close(): Promise<void>;
  };
  say(msg: string): void;
}

/**
 * `--mcp`: the protocol on stdin and stdout until stdin closes (the client is gone). Stored images
 * and videos are served on loopback at `PORT` (another free port when it is taken) so that the
 * links the tools answer load; nothing else is served there.
 */
export async function runStdio(server: StdioServer): Promise<void> {
  const { handler } = server;
  const media = (request: Request) =>
    request.method === "GET" && /^\/(images|videos)\/[\w.-]+$/.test(new URL(request.url).pathname)
      ? handler(request)
      : Promise.resolve(new Response("Not found", { status: 404 }));
  const listen = (port: number) =>
    Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, media);
  let listener: Deno.HttpServer<Deno.NetAddr>;
  try {
    listener = listen(server.config.port);
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    listener = listen(0);
  }
  const origin = `http://127.0.0.1:${listener.addr.port}`;
  server.say(`siliconflow-image-proxy: MCP on stdio; stored images at ${origin}/images/`);
  const out = new TextEncoder();
  await serveStdio(handler, {
    endpoint: `${origin}/mcp`,
    input: Deno.stdin.readable,
    write: (line) => {
      const bytes = out.encode(line + "\n");
      for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
    },
  });
  await listener.shutdown();
  await handler.handOver().catch(() => {});
  await handler.close().catch(() => {});
}
