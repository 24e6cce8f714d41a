import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

/** PostgreSQL's default (scram_iterations). */
const SCRAM_ITERATIONS = 4096;
const SCRAM_SALT_BYTES = 16;

/**
 * A SCRAM-SHA-256 verifier (RFC 5802, RFC 7677) in PostgreSQL's format, what `psql \password`
 * sends: `ALTER ROLE … PASSWORD '<verifier>'` stores it as it is, so the password itself never
 * reaches the server, its statement log or pg_stat_activity. For printable ASCII passwords
 * (runtimePasswordProblem) SASLprep changes nothing, so this equals what the server would compute.
 *
 * @example
 * scramSha256Verifier('correct horse'); // 'SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>'
 */
export function scramSha256Verifier(password: string, options: { salt?: Buffer; iterations?: number } = {}): string {
  const salt = options.salt ?? randomBytes(SCRAM_SALT_BYTES);
  const iterations = options.iterations ?? SCRAM_ITERATIONS;
  const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
