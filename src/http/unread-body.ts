import type { EdgeStep } from './edge-step.js';

/** How much of a body nobody read is read and discarded after the answer, at most. */
export const DISCARD_MAX_BYTES = 8 * 1024 * 1024;
/** How long that may take, at most, from the answer on. */
export const DISCARD_MAX_MS = 10_000;

/**
 * An answer given before the request's body was read (413 by Content-Length, 401 before a body is
 * parsed, oidc-provider refusing a body past its own 56 KiB) must not close the connection while the
 * client is still sending: the client's next write then meets a reset, and a client that writes its
 * whole body before it reads (Node's fetch) never sees the answer, only EPIPE. Node alone either
 * closes at once (`Connection: close`) or reads the rest without any bound.
 *
 * So the rest of the body is read and discarded, as nginx's lingering close does, but only up to
 * `maxBytes` or `maxMs`: past either, the connection is closed once the answer is out. The answer
 * keeps the connection open (a `Connection: close` would make Node close it at once); once the body
 * is read to its end, the connection serves the next request as any other.
 *
 * Runs on the way out (see requestLogging); a request whose body was read, or that had none, costs
 * one property read.
 *
 * @example
 * app.use(requestLogging(logger, metrics, [discardUnreadBody(), securityHeaders({ hsts })]));
 */
export function discardUnreadBody(options: { maxBytes?: number; maxMs?: number } = {}): EdgeStep {
  const maxBytes = options.maxBytes ?? DISCARD_MAX_BYTES;
  const maxMs = options.maxMs ?? DISCARD_MAX_MS;
  return {
    after(ctx) {
      const { req, res } = ctx;
      if (req.complete || req.readableEnded || req.destroyed) return;
      res.removeHeader('Connection');
      const { socket } = req;
      let discarded = 0;
      const cut = () => {
        stop();
        req.pause();
        // Once the answer is out (it is written when the middleware returns): closing before would lose it.
        if (res.writableFinished) socket.destroy();
        else res.once('finish', () => socket.destroy());
      };
      const timer = setTimeout(cut, maxMs);
      timer.unref();
      const count = (chunk: Buffer) => {
        discarded += chunk.length;
        if (discarded > maxBytes) cut();
      };
      function stop() {
        clearTimeout(timer);
        req.off('data', count);
        req.off('end', stop);
        socket.off('close', stop);
      }
      req.on('data', count);
      req.once('end', stop);
      socket.once('close', stop);
      req.resume();
    },
  };
}
