/**
 * The OpenAI error shape and the one error class that carries it through the code.
 *
 * Deep code throws {@link ApiError}; the request pipeline turns it into a response in one place
 * ({@link finalError}, then `errorResponse` in `response.ts`).
 * @module
 */
import type { Logger } from "./logger.ts";

/** The status this proxy answers when the client itself went away (nginx's convention). */
export const CLIENT_CLOSED = 499;

/** The body of every error this server answers: OpenAI's `{"error":{…}}`. */
export interface OpenAIErrorBody {
  /** The error object itself. */
  error: {
    /** A human-readable message. */
    message: string;
    /** The error category, e.g. `invalid_request_error`. */
    type: string;
    /** The request field the error is about, or `null`. */
    param: string | null;
    /** A machine-readable code, or `null`. */
    code: string | null;
  };
}

/** Options for {@link ApiError}. */
export interface ApiErrorOptions {
  /** OpenAI error `type`; derived from the status when omitted. */
  type?: string;
  /** The request field at fault. */
  param?: string | null;
  /** Machine-readable code. */
  code?: string | null;
  /** Extra response headers, e.g. `Retry-After`. */
  headers?: Record<string, string>;
  /** What caused it (a network error, say), kept for logs; never shown to the client. */
  cause?: unknown;
}

const TYPE_BY_STATUS: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  429: "rate_limit_error",
  502: "upstream_error",
  503: "service_unavailable_error",
  504: "timeout_error",
};

/** An error that becomes an OpenAI-shaped response with a given HTTP status. */
export class ApiError extends Error {
  /** HTTP status of the response. */
  readonly status: number;
  /** OpenAI error `type`. */
  readonly type: string;
  /** The request field at fault, or `null`. */
  readonly param: string | null;
  /** Machine-readable code, or `null`. */
  readonly code: string | null;
  /** Extra response headers. */
  readonly headers: Record<string, string>;

  /** Creates an error answered with `status` and `message`. */
  constructor(status: number, message: string, options: ApiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ApiError";
    this.status = status;
    this.type = options.type ?? TYPE_BY_STATUS[status] ??
      (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }

  /** The same error in other words (a new message, or another `param`), caused by this one. */
  with(changes: { message: string; param?: string }): ApiError {
    const { status, type, param, code, headers } = this;
    return new ApiError(status, changes.message, {
      type,
      param: changes.param ?? param,
      code,
      headers,
      cause: this,
    });
  }

  /** The OpenAI error body for this error. */
  toJSON(): OpenAIErrorBody {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

/** A 400 about one request field. */
export function invalidParam(param: string, message: string, code = "invalid_value"): ApiError {
  return new ApiError(400, message, { param, code });
}

/** Turns any thrown value into an {@link ApiError}; unknown errors become a 500. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  return new ApiError(500, "Internal error. This is a bug in the proxy; please report it.", {
    code: "internal_error",
  });
}

/** A 400 for a body that is not a JSON object. */
export function notAnObject(): ApiError {
  return invalidParam("body", "The request body must be a JSON object");
}

/**
 * The error to answer for a failure, with the request id at the end of its message, so users can
 * quote it. A call cut short by the server's shutdown is told apart from a client that left;
 * anything that is not an {@link ApiError} is a bug, logged and answered as a 500.
 */
export function finalError(
  err: unknown,
  scope: { requestId: string; shutdownSignal: AbortSignal; logger: Logger },
): ApiError {
  if (scope.shutdownSignal.aborted && err instanceof ApiError && err.status === CLIENT_CLOSED) {
    err = new ApiError(503, "The server is restarting and stopped this generation; please retry", {
      code: "server_shutting_down",
    });
  }
  if (!(err instanceof ApiError)) {
    scope.logger({ level: "error", msg: "unhandled error", req: scope.requestId, error: `${err}` });
  }
  const error = toApiError(err);
  if (error.message.includes(scope.requestId)) return error;
  return error.with({ message: `${error.message} (request id: ${scope.requestId})` });
}
