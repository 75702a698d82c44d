import { assertEquals, assertRejects } from "@std/assert";
import { ApiError } from "../server/errors.ts";
import { isPrivateAddress, Webhooks } from "./webhook.ts";

Deno.test("webhooks: which addresses are private", () => {
  for (const ip of ["127.0.0.1", "10.2.3.4", "172.16.0.1", "192.168.1.1", "169.254.169.254"]) {
    assertEquals(isPrivateAddress(ip), true, ip);
  }
  for (const ip of ["100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "::", "fc00::1", "fe80::1"]) {
    assertEquals(isPrivateAddress(ip), true, ip);
  }
  assertEquals(isPrivateAddress("::ffff:127.0.0.1"), true);
  for (const ip of ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"]) {
    assertEquals(isPrivateAddress(ip), false, ip);
  }
});

Deno.test("webhooks: a name is judged by what it resolves to", async () => {
  const names: Record<string, string[]> = {
    "hooks.example.com": ["93.184.216.34"],
    "inside.example.com": ["93.184.216.34", "10.0.0.7"],
  };
  const webhooks = new Webhooks({
    secret: "s",
    allowPrivate: false,
    fetch,
    logger: () => {},
    now: Date.now,
    resolve: (host) => Promise.resolve(names[host] ?? []),
  });
  assertEquals(
    await webhooks.checkUrl("https://hooks.example.com/x?t=1"),
    "https://hooks.example.com/x?t=1",
  );
  await assertRejects(
    () => webhooks.checkUrl("https://inside.example.com/x"),
    ApiError,
    "loopback, private or link-local",
  );
  await assertRejects(
    () => webhooks.checkUrl("https://nowhere.example.com/x"),
    ApiError,
    "does not resolve",
  );
});
