import type { Context } from 'koa';

/**
 * Refuses bodies over the limit: by Content-Length before anything reads them (`before`), and (for
 * chunked bodies, which oidc-provider reads itself, 56 KiB at most) when the provider found one too
 * large (`after`). Either way 413, in the OAuth error format. `before` answers true when it refused.
 * The connection stays open while the rest of the body is discarded (see unread-body.ts), so that
 * the client reads the 413 instead of a reset.
 */
export function bodyLimit(limitBytes: number): { before(ctx: Context): boolean; after(ctx: Context): void } {
  const tooLarge = { error: 'invalid_request', error_description: `request body is larger than ${limitBytes} bytes` };
  const refuse = (ctx: Context) => {
    ctx.status = 413;
    ctx.body = tooLarge;
  };
  return {
    before(ctx) {
      const length = ctx.get('Content-Length');
      if (!(Number(length) > limitBytes)) return false;
      refuse(ctx);
      return true;
    },
    after(ctx) {
      if (ctx.state.entityTooLarge) refuse(ctx);
    },
  };
}
