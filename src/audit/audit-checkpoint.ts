import { decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import type { Kysely, Transaction } from 'kysely';
import type { AuditKeyring } from '../keys/audit-key.js';
import type { Database } from '../registry/tables.js';
import { AUDIT_GENESIS_HASH, verifyAuditChain, type AuditVerification } from './audit-log.js';

type Db = Kysely<Database> | Transaction<Database>;

/** The JWS `typ` of a checkpoint: it is no token, and no token is a checkpoint. */
export const AUDIT_CHECKPOINT_TYP = 'gatehouse-audit-checkpoint+jwt';

/** What a checkpoint says: the chain's head at `iat`. */
export interface AuditCheckpoint {
  /** The last row's seq (0: the log was empty). */
  seq: number;
  /** The last row's hash (the genesis hash for an empty log). */
  hash: string;
  /** The last row's time, ISO 8601 (null for an empty log). */
  at: string | null;
  /** When the checkpoint was made, ISO 8601. */
  createdAt: string;
  /** The audit key that signed it. */
  kid: string;
  /** The compact JWS (HS256 with the audit key) that carries all of the above. */
  jws: string;
}

export class AuditChainBrokenError extends Error {
  constructor(
    readonly brokenAt: number,
    readonly reason: string,
  ) {
    super(`audit chain broken at seq ${brokenAt}: ${reason}`);
    this.name = 'AuditChainBrokenError';
  }
}

/** A checkpoint that is not one this keys directory signed (or not a checkpoint at all). */
export class InvalidCheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCheckpointError';
  }
}

/**
 * Verifies the whole chain, then signs its head (seq, hash, time) as a compact JWS, HS256 with the
 * newest audit key. Kept outside the database (another system, a write-once bucket), it lets
 * `verify --checkpoint` see the newest rows removed or a row before it rewritten, which the chain
 * alone cannot show to whoever holds only the database. A broken chain is refused, never signed.
 *
 * The audit key signs rather than the server's signing key: signing keys are deleted 48 hours after
 * they retire, audit keys are kept as long as the rows they keyed, so a checkpoint stays verifiable.
 *
 * @example
 * const checkpoint = await createAuditCheckpoint(db, auditKeys, config.issuer);
 */
export async function createAuditCheckpoint(db: Db, keyring: AuditKeyring, issuer: string): Promise<AuditCheckpoint> {
  const result = await verifyAuditChain(db, keyring);
  if (!result.ok) throw new AuditChainBrokenError(result.brokenAt, result.reason);
  // Signed with the key of the chain's newest row (or newer): reload when another process has rotated.
  await keyring.reload();
  const keys = keyring.keys();
  const key = keys[keys.length - 1];
  if (!key) throw new Error('audit checkpoint: no audit key');
  const seq = result.head?.seq ?? 0;
  const hash = result.head?.hash ?? AUDIT_GENESIS_HASH;
  const at = result.head?.at.toISOString() ?? null;
  const now = new Date();
  const jws = await new SignJWT({ seq, hash, at })
    .setProtectedHeader({ alg: 'HS256', kid: key.kid, typ: AUDIT_CHECKPOINT_TYP })
    .setIssuer(issuer)
    .setIssuedAt(Math.floor(now.getTime() / 1000))
    .sign(key.secret);
  return { seq, hash, at, createdAt: now.toISOString(), kid: key.kid, jws };
}

/** The JWS of a checkpoint file: the JWS itself, or the JSON that `audit checkpoint --json` prints. */
export function checkpointJwsFromFile(text: string): string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new InvalidCheckpointError('the checkpoint file is neither a JWS nor the JSON of "audit checkpoint --json"');
    }
    const jws = (parsed as { checkpoint?: unknown } | null)?.checkpoint;
    if (typeof jws !== 'string') throw new InvalidCheckpointError('the checkpoint file\'s JSON has no "checkpoint" (the JWS)');
    return jws;
  }
  return trimmed;
}

/** Checks a checkpoint's signature against the audit keys and reads what it says. */
export async function readAuditCheckpoint(keyring: AuditKeyring, jws: string): Promise<{ seq: number; hash: string; kid: string }> {
  let kid: unknown;
  try {
    kid = decodeProtectedHeader(jws).kid;
  } catch {
    throw new InvalidCheckpointError('the checkpoint is not a JWS');
  }
  const key = keyring.keys().find((candidate) => candidate.kid === kid);
  if (!key) throw new InvalidCheckpointError(`the checkpoint is signed with audit key ${String(kid)}, which is not in KEYS_DIR`);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(jws, key.secret, { algorithms: ['HS256'], typ: AUDIT_CHECKPOINT_TYP }));
  } catch {
    throw new InvalidCheckpointError('the checkpoint\'s signature does not verify (it was altered, or is not a Gatehouse audit checkpoint)');
  }
  const { seq, hash } = payload;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0 || typeof hash !== 'string') {
    throw new InvalidCheckpointError('the checkpoint names no seq and hash');
  }
  return { seq, hash, kid: key.kid };
}

/** What `verify --checkpoint` found. */
export type CheckpointVerification =
  | (Extract<AuditVerification, { ok: true }> & { checkpoint?: { seq: number; hash: string } | undefined })
  | { ok: false; brokenAt: number; reason: string; truncated?: boolean | undefined };

/**
 * Verifies the chain, then that it still holds the checkpoint's head: the row at the checkpoint's
 * seq exists with the hash it had. A log that now ends before that seq was truncated (its newest
 * rows removed); a row there with another hash was rewritten (with its hashes recomputed).
 */
export async function verifyAuditChainAgainst(db: Db, keyring: AuditKeyring, jws: string): Promise<CheckpointVerification> {
  const checkpoint = await readAuditCheckpoint(keyring, jws);
  const chain = await verifyAuditChain(db, keyring);
  if (!chain.ok) return chain;
  const lastSeq = chain.head?.seq ?? 0;
  if (checkpoint.seq === 0) {
    return { ...chain, checkpoint: { seq: 0, hash: checkpoint.hash } };
  }
  const row = await db.selectFrom('audit_log').select(['seq', 'hash']).where('seq', '=', checkpoint.seq).executeTakeFirst();
  if (!row) {
    if (checkpoint.seq > lastSeq) {
      return {
        ok: false,
        brokenAt: checkpoint.seq,
        truncated: true,
        reason: `truncated: the checkpoint names seq ${checkpoint.seq}, the log ends at ${chain.head ? `seq ${lastSeq}` : 'no row'} (its newest rows were removed)`,
      };
    }
    return { ok: false, brokenAt: checkpoint.seq, reason: `the row at the checkpoint's seq ${checkpoint.seq} is missing (removed)` };
  }
  if (row.hash !== checkpoint.hash) {
    return { ok: false, brokenAt: checkpoint.seq, reason: `the row at the checkpoint's seq ${checkpoint.seq} no longer has the checkpoint's hash (it or a row before it was rewritten)` };
  }
  return { ...chain, checkpoint: { seq: checkpoint.seq, hash: checkpoint.hash } };
}
