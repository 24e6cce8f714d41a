import { randomUUID } from 'node:crypto';
import { createRemoteJWKSet, customFetch, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACR_BASIC, ACR_MFA } from '../../src/accounts/authentication-context.js';
import { Agent, codeFlow } from '../fixtures/flow.js';
import { recordSecret } from '../fixtures/log-capture.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

/*
 * How a sign-in's strength reaches the apps (acr, amr), and the apps (or the server) that require a
 * second factor (docs/design/sign-in-methods.md §3, steps 1 and 2 of §10). In process: t.fetch.
 */

const REDIRECT_URI = 'http://127.0.0.1:8765/callback';

describe('acr and amr', () => {
  let t: TestServer;
  let person: { id: string; email: string; password: string };

  beforeAll(async () => {
    t = await startTestServer({ name: 'step-up-acr', listen: false });
    person = await t.build.person({ email: `amr-${randomUUID()}@example.test` });
  });
  afterAll(() => t.close());

  it('discovery lists both acr values, and acr and amr among the claims', async () => {
    const discovery = (await (await t.fetch('/.well-known/openid-configuration')).json()) as Record<string, unknown>;
    expect(discovery.acr_values_supported).toEqual([ACR_BASIC, ACR_MFA]);
    expect(discovery.claims_supported).toEqual(expect.arrayContaining(['acr', 'amr']));
  });

  it('a password sign-in gives an ID token with acr basic and amr pwd (verified against the JWKS); userinfo carries neither', async () => {
    const client = await t.build.client({ client_name: 'Acr App', redirect_uris: [REDIRECT_URI], first_party: true });
    const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), {
      client,
      redirectUri: REDIRECT_URI,
      email: person.email,
      password: person.password,
      params: { scope: 'openid email' },
    });
    expect(status).toBe(200);
    const jwks = createRemoteJWKSet(new URL(`${t.server.url}/jwks`), { [customFetch]: t.fetch });
    const { payload } = await jwtVerify(String(body.id_token), jwks, { issuer: t.config.issuer, audience: client.clientId });
    expect(payload).toMatchObject({ sub: person.id, acr: ACR_BASIC, amr: ['pwd'], email: person.email });

    const userinfo = await t.fetch('/me', { headers: { authorization: `Bearer ${String(body.access_token)}` } });
    expect(userinfo.status).toBe(200);
    const claims = (await userinfo.json()) as Record<string, unknown>;
    expect(claims.sub).toBe(person.id);
    expect(claims).not.toHaveProperty('acr');
    expect(claims).not.toHaveProperty('amr');
  });

  it('a third-party client gets them too, after consent, and acr_values naming basic changes nothing', async () => {
    const client = await t.build.client({ client_name: 'Third Party Acr', redirect_uris: [REDIRECT_URI] });
    const { status, body } = await codeFlow(new Agent(t.server.url, t.fetch), {
      client,
      redirectUri: REDIRECT_URI,
      email: person.email,
      password: person.password,
      params: { acr_values: ACR_BASIC },
    });
    expect(status).toBe(200);
    recordSecret(String(body.id_token));
    const jwks = createRemoteJWKSet(new URL(`${t.server.url}/jwks`), { [customFetch]: t.fetch });
    const { payload } = await jwtVerify(String(body.id_token), jwks, { issuer: t.config.issuer, audience: client.clientId });
    expect(payload).toMatchObject({ acr: ACR_BASIC, amr: ['pwd'] });
  });
});
