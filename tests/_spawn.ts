/**
 * Runs `main.ts` as a child process, the way `deno task start` and the compiled binary run it.
 * Shared by the entry-module tests, the shutdown tests and the benchmark.
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** The permissions `deno task start` runs with: deno.json's "server" set, quietly. */
export const TASK_PERMISSIONS: readonly string[] = ["-q", "-P=server", "--config", CONFIG];

/** The V8 flags `deno task start` runs with (see "V8 flags" in BENCHMARKS.md). */
export const TASK_V8_FLAGS: readonly string[] = ["--max-semi-space-size=2"];

/** How a child is started, besides its arguments and environment. */
export interface SpawnOptions {
  /** V8 flags instead of the tasks' ({@link TASK_V8_FLAGS}). */
  v8Flags?: readonly string[];
  /** Run it under `ulimit -n` of this many open files (through bash). */
  maxOpenFiles?: number;
  /** Permission flags beyond the tasks', e.g. `--allow-write=/tmp/x` for an image store. */
  permissions?: string[];
}

/** Deno's arguments that run main.ts with `args`, as the tasks do (for a client that spawns it). */
export function mainArgs(args: string[], options: SpawnOptions = {}): string[] {
  return [
    "run",
    ...(options.v8Flags ?? TASK_V8_FLAGS).map((flag) => `--v8-flags=${flag}`),
    "--unstable-no-legacy-abort",
    // The tasks' permissions: the "server" set of deno.json, and only what a test adds to it.
    ...TASK_PERMISSIONS,
    ...(options.permissions ?? []),
    MAIN,
    ...args,
  ];
}

/** The command that runs main.ts with `args`, in exactly the environment `env`. */
export function mainCommand(
  args: string[],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Deno.Command {
  const deno = [Deno.execPath(), ...mainArgs(args, options)];
  const [command, ...rest] = options.maxOpenFiles === undefined
    ? deno
    : ["/bin/bash", "-c", `ulimit -n ${options.maxOpenFiles} && exec "$0" "$@"`, ...deno];
  return new Deno.Command(command, {
    args: rest,
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  });
}

/** A running server process. */
export interface SpawnedServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** The process. */
  child: Deno.ChildProcess;
  /** Everything it printed: stdout and stderr, complete once it has exited. */
  output: Promise<string>;
  /** Kills it (SIGKILL unless told otherwise) and waits until it and its pipes are done. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

async function drain(stream: ReadableStream<Uint8Array>, seen = ""): Promise<string> {
  let out = seen;
  for await (const text of stream.pipeThrough(new TextDecoderStream())) out += text;
  return out;
}

/** Starts main.ts on a free loopback port and waits until it listens. */
export async function spawnMain(
  args: string[] = [],
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Promise<SpawnedServer> {
  const child = mainCommand(["--port", "0", "--host", "127.0.0.1", ...args], env, options)
    .spawn();
  const stderr = drain(child.stderr);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let port = "";
  while (!port) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`main.ts exited before listening: ${seen}${await stderr}`);
    seen += value;
    port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(seen)?.[1] ?? "";
  }
  // Keep reading, so that the child never blocks on a full pipe.
  const stdout = (async () => {
    let out = seen;
    while (true) {
      const { value, done } = await reader.read();
      if (done) return out;
      out += value;
    }
  })();
  const output = Promise.all([stdout, stderr]).then(([o, e]) => o + e);
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    output,
    async stop(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
      const status = await child.status;
      await output;
      return status;
    },
  };
}
