/**
 * The route table's types and the match: method and `URLPattern` to a handler, with its decoded
 * path parameters. A path that matches with another method is a 405; no match is a 404.
 * @module
 */
import { ApiError } from "./errors.ts";

/** One route; `C` is the context its handler takes. */
export interface Route<C> {
  /** HTTP method; `OPTIONS` routes answer preflight and never make a 405 of another method. */
  method: string;
  /** Path pattern. */
  pattern: URLPattern;
  /** The handler, with the decoded named groups of the pattern. */
  handle: (ctx: C, params: Readonly<Record<string, string | undefined>>) => Promise<Response>;
}

/** A `URLPattern` of a path alone. */
export function path(pathname: string): URLPattern {
  return new URLPattern({ pathname });
}

/** The route for a method and path, with its decoded params; throws a 404 or 405. */
export function matchRoute<C>(
  routes: readonly Route<C>[],
  method: string,
  pathname: string,
): { route: Route<C>; params: Record<string, string | undefined> } {
  // Only the routes of the request's method are matched (a pattern costs microseconds); the
  // others are looked at only to tell a 405 from a 404.
  for (const route of routes) {
    if (route.method !== method) continue;
    const match = route.pattern.exec({ pathname });
    if (!match) continue;
    const params: Record<string, string | undefined> = {};
    for (const [k, v] of Object.entries(match.pathname.groups)) {
      try {
        params[k] = v === undefined ? undefined : decodeURIComponent(v);
      } catch {
        params[k] = v;
      }
    }
    return { route, params };
  }
  const elsewhere = routes.some((route) =>
    route.method !== method && route.method !== "OPTIONS" && route.pattern.test({ pathname })
  );
  throw elsewhere
    ? new ApiError(405, `${method} is not allowed on ${pathname}`, { code: "method_not_allowed" })
    : noRoute(method, pathname);
}

/** The 404 for a path no route serves (also for routes that are switched off). */
export function noRoute(method: string, pathname: string): ApiError {
  return new ApiError(404, `No route for ${method} ${pathname}`, { code: "not_found" });
}
