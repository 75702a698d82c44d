/**
 * A streamed answer of one request: the endpoint's shape over the server's event stream.
 * @module
 */
import { type ApiError, CLIENT_CLOSED } from "../server/errors.ts";
import { type EventEncoder, type EventSink, eventStreamResponse } from "../server/event_stream.ts";
import { failure, type RequestContext } from "./context.ts";

/** What differs between the streamed answers of the endpoints. */
export interface StreamShape<E> {
  /** Turns events into frames. */
  encoder: EventEncoder<E>;
  /** The keep-alive event, given the seconds so far. */
  keepAlive: (elapsedS: number) => E;
  /** The last events for a failure the client is still there to hear. */
  failureEvents: (error: ApiError) => E[];
  /** Extra response headers. */
  headers?: Record<string, string>;
}

/**
 * A streamed answer of this request: keep-alives every `KEEPALIVE_MS`, the header hold of
 * `STREAM_HOLD_MS`, failures turned into the endpoint's last events, and the final status handed
 * to the log line.
 */
export async function streamAnswer<E>(
  ctx: RequestContext,
  shape: StreamShape<E>,
  produce: (sink: EventSink<E>, signal: AbortSignal) => Promise<void>,
): Promise<Response> {
  const { app } = ctx;
  const { response, done } = await eventStreamResponse<E>(produce, {
    encoder: shape.encoder,
    keepAliveMs: app.config.keepAliveMs,
    keepAlive: shape.keepAlive,
    owner: ctx,
    shutdownSignal: app.shutdownSignal,
    onError: (err) => {
      const error = failure(ctx, err);
      ctx.log.outcome = error.code ?? undefined;
      const events = error.status === CLIENT_CLOSED ? [] : shape.failureEvents(error);
      return { events, status: error.status };
    },
    now: app.now,
    open: app.streams,
    headers: shape.headers,
    holdMs: app.config.streamHoldMs,
  });
  ctx.streamDone = done;
  return response;
}
