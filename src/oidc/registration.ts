import type { Context } from 'koa';
import type { Configuration, KoaContextWithOIDC } from 'oidc-provider';
import { generateClientSecret } from '../services/client-secrets.js';
import { newClientId } from '../services/clients.service.js';
import { PROVIDER_PROFILE_METADATA } from './adapters/client-adapter.js';
import { isClientSecretUpdateRefusal, issuedClientSecret } from './upstream.js';

type Features = NonNullable<Configuration['features']>;

/**
 * Dynamic client registration (RFC 7591) and its management (RFC 7592), off unless
 * REGISTRATION_ENABLED: registering needs an initial access token (`gatehouse registration token
 * create`); the registered client reads, updates and deletes itself with its registration access
 * token, which every update replaces. Client ids and secrets are made as the CLI makes them.
 */
export function registrationFeatures(enabled: boolean): Pick<Features, 'registration' | 'registrationManagement'> {
  if (!enabled) return { registration: { enabled: false }, registrationManagement: { enabled: false } };
  return {
    registration: {
      enabled: true,
      initialAccessToken: true,
      issueRegistrationAccessToken: true,
      idFactory: () => newClientId(),
      secretFactory: () => generateClientSecret(),
    },
    registrationManagement: { enabled: true, rotateRegistrationAccessToken: true },
  };
}

const REGISTRATION_ROUTES = new Set(['registration', 'client', 'client_update', 'client_delete']);

type Body = Record<string, unknown>;

/** The client as the registry now keeps it, for the answer; never its secret digest. */
async function registeredMetadata(ctx: KoaContextWithOIDC, body: Body): Promise<Body> {
  const stored = typeof body.client_id === 'string' ? await ctx.oidc.provider.Client.find(body.client_id) : undefined;
  if (!stored) return body;
  const metadata: Body = stored.metadata();
  delete metadata.client_secret;
  // The profile an administrator set, under the name the admin API gives it (oidc/fapi2.ts).
  const profile = metadata[PROVIDER_PROFILE_METADATA];
  delete metadata[PROVIDER_PROFILE_METADATA];
  if (profile !== undefined) metadata.profile = profile;
  // A secret appears only where oidc-provider just issued it (registration, or an update that needs one).
  const issued = issuedClientSecret(body);
  return {
    ...metadata,
    ...(stored.clientSecret ? { client_secret_expires_at: 0 } : {}),
    ...(issued ? { client_secret: issued } : {}),
    registration_client_uri: body.registration_client_uri,
    registration_access_token: body.registration_access_token,
  };
}

/**
 * Runs on the provider's answer (see provider-host.ts) for the registration endpoints. Answers show
 * the client as the registry keeps it (metadata Gatehouse does not keep is left out, as RFC 7591
 * §3.2.1 allows), never the stored secret digest: the secret itself only when it was just issued.
 */
export async function registrationAnswers(ctx: Context): Promise<void> {
  const { oidc } = ctx as unknown as Partial<KoaContextWithOIDC>;
  if (!oidc?.route || !REGISTRATION_ROUTES.has(oidc.route)) return;
  const body = ctx.body as Body | undefined;
  if (!body || typeof body !== 'object') return;

  if (oidc.route === 'client_update' && ctx.status === 400 && isClientSecretUpdateRefusal(body.error_description)) {
    ctx.body = {
      error: 'invalid_request',
      error_description: 'client_secret is not taken in an update: Gatehouse keeps only a digest of it to compare with. Leave it out (RFC 7592 §2.2 makes it optional)',
    };
    return;
  }
  if ((ctx.status === 200 || ctx.status === 201) && typeof body.client_id === 'string') {
    ctx.body = await registeredMetadata(ctx as unknown as KoaContextWithOIDC, body);
  }
}
