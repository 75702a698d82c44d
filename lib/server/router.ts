/**
 * The route table's types and the match: method and path pattern to a handler, with its decoded
 * path parameters. `HEAD` takes the `GET` route of its path (the pipeline sends no body). A path
 * that matches with another method is a 405 naming the methods it takes (`Allow`); no match is a
 * 404.
 * @module
 */
import { ApiError } from "./errors.ts";

/** One route; `C` is the context its handler takes. */
export interface Route<C> {
  /** HTTP method; `OPTIONS` routes answer preflight and never make a 405 of another method. */
  method: string;
  /** Path pattern. */
  pattern: PathPattern;
  /** The handler, with the decoded named groups of the pattern. */
  handle: (ctx: C, params: Readonly<Record<string, string | undefined>>) => Promise<Response>;
}

/**
 * A path pattern in `URLPattern` syntax. A plain path, with or without an optional `{/v1}?` in
 * front, is compared as text. Any other is compiled when first matched (compiling the whole
 * table at once took 12 ms, a third of the server's start-up), and only tried on paths that start
 * with its plain beginning: a poll of `/v1/images/tasks/{id}` runs no `URLPattern` of the routes
 * before it.
 */
export class PathPattern {
  #source: string;
  #literals: readonly string[] | undefined;
  #prefixes: readonly string[];
  #compiled: URLPattern | undefined;

  /** A pattern of the path alone. */
  constructor(source: string) {
    this.#source = source;
    const rest = source.replace(/^\{\/v1\}\?/, "");
    const plain = /^[\w./-]*/.exec(rest)![0];
    this.#prefixes = rest === source ? [plain] : [plain, `/v1${plain}`];
    if (plain === rest) this.#literals = this.#prefixes;
  }

  /** The named groups of a match (raw, not decoded), or null. */
  exec(pathname: string): Record<string, string | undefined> | null {
    if (this.#literals) return this.#literals.includes(pathname) ? {} : null;
    if (!this.#prefixes.some((prefix) => pathname.startsWith(prefix))) return null;
    this.#compiled ??= new URLPattern({ pathname: this.#source });
    return this.#compiled.exec({ pathname })?.pathname.groups ?? null;
  }
}

/** A pattern of a path alone. */
export function path(pathname: string): PathPattern {
  return new PathPattern(pathname);
}

/** A route that matched, with its decoded path parameters. */
export interface RouteMatch<C> {
  /** The route. */
  route: Route<C>;
  /** Its decoded params (shared between requests: never changed). */
  params: Readonly<Record<string, string | undefined>>;
}

/** The route for a method and path, with its decoded params; throws a 404 or 405. */
export function matchRoute<C>(
  routes: readonly Route<C>[],
  method: string,
  pathname: string,
): RouteMatch<C> {
  const wanted = method === "HEAD" ? "GET" : method;
  // Only the routes of the request's method are matched (a pattern costs microseconds); the
  // others are looked at only to tell a 405 from a 404.
  for (const route of routes) {
    if (route.method !== wanted) continue;
    const groups = route.pattern.exec(pathname);
    if (!groups) continue;
    const params: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(groups)) {
      try {
        params[k] = v === undefined ? undefined : decodeURIComponent(v);
      } catch {
        params[k] = v;
      }
    }
    return { route, params: Object.freeze(params) };
  }
  const allowed = new Set<string>();
  for (const route of routes) {
    if (route.method !== wanted && route.pattern.exec(pathname)) allowed.add(route.method);
  }
  if (allowed.has("GET")) allowed.add("HEAD");
  if (allowed.size === 0 || (allowed.size === 1 && allowed.has("OPTIONS"))) {
    throw noRoute(method, pathname);
  }
  throw new ApiError(405, `${method} is not allowed on ${pathname}`, {
    code: "method_not_allowed",
    headers: { allow: [...allowed].sort().join(", ") },
  });
}

/** The 404 for a path no route serves (also for routes that are switched off). */
export function noRoute(method: string, pathname: string): ApiError {
  return new ApiError(404, `No route for ${method} ${pathname}`, { code: "not_found" });
}
