/**
 * Hostile traffic: connection floods, inputs shaped to cost more than linear time, clients that
 * stall their bodies, and one client's failure spilling over onto others.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import { spawnMain } from "./_spawn.ts";

const encoder = new TextEncoder();

async function healthy(url: string, timeoutMs = 2_000): Promise<boolean> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
    await response.body?.cancel();
    return response.ok;
  } catch {
    return false;
  }
}

Deno.test("a connection flood past the open-file limit does not end the process; it serves again by itself", async () => {
  const server = await spawnMain(["--demo"], {}, { maxOpenFiles: 96 });
  const conns: Deno.TcpConn[] = [];
  try {
    const port = Number(new URL(server.url).port);
    // Idle sockets and headers sent one byte at a time, until the server cannot take more.
    for (let i = 0; i < 400; i++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conns.push(conn);
        if (i % 2) await conn.write(encoder.encode("G")).catch(() => {});
      } catch {
        break; // refused: the listener is down for now
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const conn of conns.splice(0)) {
      try {
        conn.close();
      } catch { /* closed by the server */ }
    }
    let back = false;
    for (let i = 0; i < 50 && !back; i++) {
      back = await healthy(server.url, 500);
      if (!back) await new Promise((r) => setTimeout(r, 200));
    }
    assert(back, "the server did not serve again after the flood");
    const response = await fetch(`${server.url}/v1/models`);
    assertEquals(response.status, 200);
    await response.body?.cancel();
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    await server.stop("SIGTERM");
  }
  const output = await server.output;
  assert(!/Uncaught/.test(output), output);
  const failures = output.match(/accept loop failed/g) ?? [];
  assertEquals(failures.length, 1, `one log line per burst:\n${output}`);
  assertMatch(output, /listening again after accept failures/);
});
