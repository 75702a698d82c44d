/**
 * Whether the paths and services a user configured can be used under the permissions this process
 * runs with. `main.ts` stops at start-up with the answer, naming the variable and the exact
 * permission to add, rather than falling back quietly (no image store) or answering every video
 * request 503 later (no job store). Only what the environment sets is checked: the defaults
 * (`./data`) are what the tasks grant.
 * @module
 */
import type { Config } from "./config.ts";

/** Asks whether a permission is granted (`Deno.permissions.querySync`, or a test's stand-in). */
export type PermissionQuery = (descriptor: Deno.PermissionDescriptor) => Deno.PermissionState;

const query: PermissionQuery = (descriptor) => Deno.permissions.querySync(descriptor).state;

/** The folder a file path is in (`.` for a bare name). */
function folderOf(path: string): string {
  const at = path.replace(/\/+$/, "").lastIndexOf("/");
  return at < 0 ? "." : at === 0 ? "/" : path.slice(0, at);
}

function folderMessage(variable: string, value: string, folder: string): string {
  return `${variable}=${value}: this process may not read and write ${folder} (the tasks grant ./data). ` +
    `Add ${
      JSON.stringify(folder)
    } to "read" and "write" of the "server" permission set in deno.json ` +
    `(and compile again, for the binary), or run main.ts with --allow-read=${folder} --allow-write=${folder}.`;
}

/**
 * What the configuration needs that is not granted, as one message, or undefined when all is
 * granted. `set(name)` says whether the environment (or a flag) set a variable.
 */
export function missingPermission(
  config: Pick<Config, "imageStore" | "kvPath">,
  set: (name: string) => boolean,
  granted: PermissionQuery = query,
): string | undefined {
  const rw = (path: string) =>
    granted({ name: "read", path }) === "granted" && granted({ name: "write", path }) === "granted";
  const store = config.imageStore;
  if (set("IMAGE_STORE") && store?.kind === "local" && !rw(store.root)) {
    return folderMessage("IMAGE_STORE", store.root, store.root);
  }
  const kv = config.kvPath;
  if (!set("KV_PATH") || kv === undefined || kv === ":memory:") return undefined;
  if (/^https?:\/\//i.test(kv)) {
    if (granted({ name: "env", variable: "DENO_KV_ACCESS_TOKEN" }) !== "granted") {
      return `KV_PATH is a KV Connect URL, and Deno reads its token from DENO_KV_ACCESS_TOKEN, ` +
        `which this process may not read: add it to "env" of the "server" permission set in ` +
        `deno.json, or run main.ts with --allow-env=DENO_KV_ACCESS_TOKEN (beside the others).`;
    }
    return undefined;
  }
  // SQLite writes the file and its journal beside it: the folder is what needs the grant.
  const folder = folderOf(kv);
  return rw(folder) ? undefined : folderMessage("KV_PATH", kv, folder);
}
