import type { Context } from 'koa';

/** One piece of the edge middleware (see app.ts): runs once the request's answer is built, before it is sent. */
export interface EdgeStep {
  after(ctx: Context): void;
}
