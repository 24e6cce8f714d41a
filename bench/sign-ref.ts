// The signing reference: how many RS256 JWTs of an access token's shape one thread signs per
// second with jose (what the token endpoint would reach if signing were all it did), and with
// node:crypto.sign for comparison. Prints one JSON line. argv[2]: seconds per measurement.
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';

const seconds = Number(process.argv[2] ?? '2');
const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const kid = 'reference-key-00';
const nodeKey = createPrivateKey({ key: (await exportJWK(privateKey)) as never, format: 'jwk' });

// The claims Gatehouse puts in a client-credentials access token, same lengths.
function payload() {
  const now = Math.floor(Date.now() / 1000);
  return {
    jti: randomBytes(32).toString('base64url'),
    sub: 'OULjeQvAAJzd38eZFWM7Zw',
    iat: now,
    exp: now + 600,
    scope: 'read',
    client_id: 'OULjeQvAAJzd38eZFWM7Zw',
    iss: 'http://127.0.0.1:40000',
    aud: 'https://api.bench.test',
  };
}

async function rate(signOnce: () => Promise<unknown> | unknown): Promise<number> {
  // A short warm-up, then as many as fit in the time, one after the other.
  const warmUntil = performance.now() + 300;
  while (performance.now() < warmUntil) await signOnce();
  let count = 0;
  const started = performance.now();
  const until = started + seconds * 1000;
  while (performance.now() < until) {
    await signOnce();
    count += 1;
  }
  return count / ((performance.now() - started) / 1000);
}

const jose = await rate(() => new SignJWT(payload()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid }).sign(privateKey));
const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'at+jwt', kid })).toString('base64url');
const node = await rate(() => {
  const input = `${header}.${Buffer.from(JSON.stringify(payload())).toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), nodeKey).toString('base64url')}`;
});
process.stdout.write(`${JSON.stringify({ jose_rs256_sign_per_s: jose, node_crypto_rs256_sign_per_s: node })}\n`);
