// The upstream reference: bare oidc-provider with its in-memory adapter and one static client,
// configured for the same RS256 JWT access tokens as Gatehouse. Reads a JSON config from argv[2]
// ({ port, clientId, clientSecret, resource, scope }), prints {"event":"listening"} when it serves.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { exportJWK, generateKeyPair } from 'jose';
import { Provider, type JWK } from 'oidc-provider';

const options = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as {
  port: number;
  clientId: string;
  clientSecret: string;
  resource: string;
  scope: string;
};

const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'upstream' } as JWK;

const provider = new Provider(`http://127.0.0.1:${options.port}`, {
  clients: [
    {
      client_id: options.clientId,
      client_secret: options.clientSecret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [jwk] },
  ttl: { ClientCredentials: 600 },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => options.resource,
      getResourceServerInfo: () => ({
        scope: options.scope,
        audience: options.resource,
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
      useGrantedResource: () => true,
    },
  },
});

const server = http.createServer(provider.callback());
server.keepAliveTimeout = 65_000;
server.listen(options.port, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ event: 'listening' })}\n`));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
