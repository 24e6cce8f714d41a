import { z } from 'zod';
import { getSigningKey, keyRotateSchema, KeysNotWritableError, listSigningKeys, rotateSigningKeysAsked, signingKeyToJson } from '../services/signing-keys.service.js';
import { idParam } from './params.js';
import { ApiError } from './problem.js';
import { AUTH_ERRORS, BODY_ERRORS, defineRoute, type AdminRoute, type AdminRouteDeps } from './route.js';
import { signingKeyList, signingKeyOut, signingKeyRotation } from './schemas.js';

const keyParams = z.object({ kid: idParam("the key's kid") });

/**
 * Signing keys (KEYS_DIR): list, get, rotate with an activation delay. Only public facts about a
 * key are ever answered, never its private material. A rotation writes KEYS_DIR, so it needs the
 * directory writable by the server (shared by every node, as docs/scaling.md says); it is recorded
 * as `keys.rotate` with the caller as actor, after the files are written (services/keys.service.ts).
 */
export function keyRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const { config, by } = deps;
  // Two rotations asked of this node at once run one after the other (each reads the keys the last wrote).
  let rotating: Promise<unknown> = Promise.resolve();
  return [
    defineRoute({
      method: 'get',
      path: '/keys',
      operationId: 'listSigningKeys',
      tag: 'keys',
      summary: 'List the signing keys',
      description:
        'Every signing key in KEYS_DIR, each published in the JWKS, in signing order: active keys (the one that signs first), then pending ones (published, signing from `activates_at`), then retired ones (published until 48 hours after `retired_at`). Never private key material.',
      responses: { 200: { description: 'The keys', body: signingKeyList }, ...AUTH_ERRORS },
      async handler(ctx) {
        ctx.body = { data: (await listSigningKeys(config.keysDir)).map(signingKeyToJson) };
      },
    }),
    defineRoute({
      method: 'get',
      path: '/keys/:kid',
      operationId: 'getSigningKey',
      tag: 'keys',
      summary: 'Get a signing key',
      description: 'One signing key, by kid (never private key material).',
      params: keyParams,
      responses: { 200: { description: 'Found', body: signingKeyOut }, 404: 'No such key in KEYS_DIR', ...AUTH_ERRORS },
      async handler(ctx, { params }) {
        ctx.body = signingKeyToJson(await getSigningKey(config.keysDir, params.kid));
      },
    }),
    defineRoute({
      method: 'post',
      path: '/keys/rotate',
      operationId: 'rotateSigningKeys',
      tag: 'keys',
      summary: 'Rotate the signing keys',
      description:
        'Makes a new signing key (and a new FAPI 2.0 profile key, if one is in use). It is published in the JWKS at once (by this node at once, by every node within KEYS_POLL_MS) and signs from `activate_in` seconds later (300 unless said; 0: at once, as after a leak), when the current keys retire; retired keys stay published for 48 hours. Recorded in the audit log as `keys.rotate`.',
      body: keyRotateSchema,
      responses: {
        201: { description: 'Rotated: the new key (pending until activates_at), and the keys it retires', body: signingKeyRotation, headers: ['Location'] },
        400: 'Invalid body: errors[] names each field; nothing was changed',
        409: 'KEYS_DIR is not writable by the server (mounted read-only): nothing was changed; rotate with the CLI where it is writable',
        ...BODY_ERRORS,
        ...AUTH_ERRORS,
      },
      async handler(ctx, { body }) {
        const rotation = rotating.then(() => rotateSigningKeysAsked(deps.signingKeys.deps, by(ctx), body));
        rotating = rotation.catch(() => undefined);
        let result;
        try {
          result = await rotation;
        } catch (error) {
          // The server's KEYS_DIR path stays in the log, not in the answer.
          if (error instanceof KeysNotWritableError) throw new ApiError(409, 'conflict', 'the keys directory is not writable by this server: rotate with "gatehouse keys rotate" where it is');
          throw error;
        } finally {
          // This node publishes what is on disk now (the new key, even when a later step failed); the others when they next look (KEYS_POLL_MS).
          await deps.signingKeys.reload();
        }
        const keys = await listSigningKeys(config.keysDir);
        const view = (kid: string) => {
          const found = keys.find((key) => key.kid === kid);
          if (!found) throw new Error(`the new key ${kid} is not in KEYS_DIR`);
          return signingKeyToJson(found);
        };
        ctx.status = 201;
        ctx.set('Location', `/admin/v1/keys/${result.created.kid}`);
        ctx.body = {
          key: view(result.created.kid),
          retired: [...result.retired, ...(result.profile?.retired ?? [])],
          removed: result.removed,
          profile_key: result.profile ? view(result.profile.created.kid) : null,
        };
      },
    }),
  ];
}
