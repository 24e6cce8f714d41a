import { sql, type Kysely } from 'kysely';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { prepareQuery } from '../../registry/prepared.js';
import type { Database } from '../../registry/tables.js';
import { hasNul } from '../../registry/text.js';
import type { AccountRecord } from '../../accounts/account-record.js';
import {
  deferCommit,
  deferConsume,
  deferredConsume,
  inTokenRequest,
  keepReadAhead,
  takeReadAheadGrant,
  type CurrentRequest,
} from './rotation-scope.js';
import { DIGESTED_MODELS, digestTokenValue, withoutTokenValue } from '../../registry/token-digest.js';
import { currentProviderRequest, refreshTokenReused, rethrowUnreachable } from '../upstream.js';

/** The account columns read with a refresh token (a left join: all null when the account is gone). */
interface AccountColumns {
  user_id: string | null;
  email: string | null;
  email_verified: boolean | null;
  name: string | null;
  disabled: boolean | null;
  updated_at: Date | null;
}
const accountOf = (row: AccountColumns): AccountRecord | undefined =>
  row.user_id === null || row.email === null || row.updated_at === null
    ? undefined
    : { id: row.user_id, email: row.email, emailVerified: row.email_verified === true, name: row.name, disabled: row.disabled !== false, updatedAt: row.updated_at };

/**
 * Models that must survive a Redis flush: a consent (Grant) and the refresh tokens issued under it,
 * and the tokens of dynamic registration (an initial access token the CLI minted, the registration
 * access token a registered client manages itself with).
 */
export const DURABLE_MODELS = new Set(['Grant', 'RefreshToken', 'InitialAccessToken', 'RegistrationAccessToken']);

const epoch = (date: Date) => Math.floor(date.getTime() / 1000);

/** A row (or, with a table alias, that table's row) that has no expiry or has not reached it. */
const notExpired = (column: string) => sql<boolean>`(${sql.ref(column)} is null or ${sql.ref(column)} > now())`;

/** A stored payload as oidc-provider reads it: `consumed` (epoch seconds) once spent. */
const withConsumed = (payload: AdapterPayload, consumedAt: Date | null): AdapterPayload =>
  consumedAt ? { ...payload, consumed: epoch(consumedAt) } : payload;

/** A stored token's payload as oidc-provider reads it: with its value (`jti`), which is not stored. */
const asToken = (payload: AdapterPayload, consumedAt: Date | null, value: string): AdapterPayload =>
  consumedAt ? { ...payload, jti: value, consumed: epoch(consumedAt) } : { ...payload, jti: value };

/** id, grant_id, account_id, client_id, payload (JSON text), expires_at, consumed_at */
type UpsertArgs = [string, string | null, string | null, string | null, string, Date | null, Date | null];

/**
 * oidc-provider adapter for one durable model, in the registry's `oidc_durable` table.
 * `consume` is atomic: of two requests presenting the same refresh token at once, one wins and the
 * other is told the token was already used, and the whole family is revoked (reuse detection).
 * A token model (DIGESTED_MODELS) is stored under the digest of the token's value and without it:
 * every method digests the id oidc-provider passes, and `find` gives the value back as `jti`.
 */
export function createDurableAdapter(model: string, db: Kysely<Database>, currentRequest: CurrentRequest = currentProviderRequest): Adapter {
  const digested = DIGESTED_MODELS.has(model);
  /** The stored id of what oidc-provider calls `id`. */
  const storedId = digested ? digestTokenValue : (id: string) => id;
  const found = (payload: AdapterPayload, consumedAt: Date | null, id: string) =>
    digested ? asToken(payload, consumedAt, id) : withConsumed(payload, consumedAt);
  const rows = () => db.selectFrom('oidc_durable').where('model', '=', model);
  // The per-request queries (refresh: find, find the grant, consume, save the next token) are
  // compiled once; see prepareQuery.
  const upsertRow = prepareQuery(db, 7, (...row: UpsertArgs) => {
    const [id, grantId, accountId, clientId, payload, expiresAt, consumedAt] = row;
    const values = { model, id, grant_id: grantId, account_id: accountId, client_id: clientId, payload, expires_at: expiresAt, consumed_at: consumedAt };
    return db
      .insertInto('oidc_durable')
      .values(values)
      .onConflict((oc) =>
        oc.columns(['model', 'id']).doUpdateSet({ grant_id: grantId, account_id: accountId, client_id: clientId, payload, expires_at: expiresAt }),
      );
  });
  const findRow = prepareQuery(db, 1, (id: string) =>
    rows()
      .select(['payload', 'consumed_at'])
      .where('id', '=', id)
      .where(notExpired('expires_at')),
  );
  // On the token endpoint a refresh token is always followed by a lookup of its grant and of its
  // account: all three are read in one statement (one round trip instead of three).
  const findWithFamily = model !== 'RefreshToken' ? undefined : prepareQuery(db, 1, (id: string) =>
    db
      .selectFrom('oidc_durable as token')
      .leftJoin('oidc_durable as consent', (join) =>
        join
          .on('consent.model', '=', 'Grant')
          .onRef('consent.id', '=', 'token.grant_id')
          .on(notExpired('consent.expires_at')),
      )
      .leftJoin('users', 'users.id', 'token.account_id')
      .select(['token.payload', 'token.consumed_at', 'token.grant_id', 'token.account_id', 'consent.payload as grant_payload', 'consent.consumed_at as grant_consumed_at'])
      // What the provider needs of the account (AccountRecord), not its password hash.
      .select(['users.id as user_id', 'users.email', 'users.email_verified', 'users.name', 'users.disabled', 'users.updated_at'])
      .where('token.model', '=', model)
      .where('token.id', '=', id)
      .where(notExpired('token.expires_at')),
  );
  const consumeRow = prepareQuery(db, 1, (id: string) =>
    db
      .updateTable('oidc_durable')
      .set({ consumed_at: sql<Date>`now()` })
      .where('model', '=', model)
      .where('id', '=', id)
      .where('consumed_at', 'is', null),
  );

  const rotateRow = prepareQuery(db, 8, (...args: [string, ...UpsertArgs]) => {
    const [spentId, id, grantId, accountId, clientId, payload, expiresAt, consumedAt] = args;
    return db
      .with('spent', (qb) =>
        qb.updateTable('oidc_durable').set({ consumed_at: sql<Date>`now()` }).where('model', '=', model).where('id', '=', spentId).where('consumed_at', 'is', null).returning('id'),
      )
      .insertInto('oidc_durable')
      .columns(['model', 'id', 'grant_id', 'account_id', 'client_id', 'payload', 'expires_at', 'consumed_at'])
      .expression((eb) =>
        eb
          .selectFrom('spent')
          .select([
            sql<string>`${model}::text`.as('model'),
            sql<string>`${id}::text`.as('id'),
            sql<string>`${grantId}::text`.as('grant_id'),
            sql<string>`${accountId}::text`.as('account_id'),
            sql<string>`${clientId}::text`.as('client_id'),
            sql<string>`${payload}::jsonb`.as('payload'),
            sql<Date>`${expiresAt}::timestamptz`.as('expires_at'),
            sql<Date>`${consumedAt}::timestamptz`.as('consumed_at'),
          ]),
      );
  });

  /** Someone spent the token between our read and this write: a concurrent reuse. Revokes the family. `id` is the stored id. */
  async function refuseReuse(id: string): Promise<never> {
    const row = await rows().select('grant_id').where('id', '=', id).executeTakeFirst();
    if (row?.grant_id) await db.deleteFrom('oidc_durable').where('grant_id', '=', row.grant_id).execute();
    throw refreshTokenReused();
  }

  // Writes deferred past the adapter call (rotation-scope.ts) are outside guardAdapter: guarded here.
  const databaseGone = rethrowUnreachable('database');

  /** `id` is the stored id. */
  async function consumeNow(id: string): Promise<void> {
    if ((await consumeRow.executeCount(id).catch(databaseGone)) === 0n) await refuseReuse(id).catch(databaseGone);
  }

  return {
    async upsert(id: string, payload: AdapterPayload, expiresIn?: number) {
      const request = currentRequest();
      // The stored id of the token this request consumed, if any (see consume).
      const spent = model === 'RefreshToken' ? deferredConsume(request) : undefined;
      const row: UpsertArgs = [
        storedId(id),
        // A Grant is its own family: its rows and its refresh tokens share one grant_id.
        model === 'Grant' ? id : (payload.grantId ?? null),
        payload.accountId ?? null,
        payload.clientId ?? null,
        JSON.stringify(digested ? withoutTokenValue(payload) : payload),
        expiresIn === undefined ? null : new Date(Date.now() + expiresIn * 1000),
        payload.consumed ? new Date(Number(payload.consumed) * 1000) : null,
      ];
      if (spent === undefined) {
        await upsertRow.execute(...row);
        return;
      }
      // Rotation: the old token is spent and its successor stored in one statement, or neither,
      // once the request has succeeded (see rotation-scope.ts).
      deferCommit(request, async () => {
        const written = await rotateRow.executeCount(spent, ...row).catch(databaseGone);
        if (written === 0n) await refuseReuse(spent).catch(databaseGone);
      });
    },

    async find(id: string) {
      // A token or grant id from a request: one with a NUL byte cannot be stored, so is none of ours.
      if (hasNul(id)) return undefined;
      const request = currentRequest();
      if (model === 'Grant') {
        const readAhead = takeReadAheadGrant(request, id);
        if (readAhead.found) return readAhead.payload;
      } else if (findWithFamily && inTokenRequest(request)) {
        const [row] = await findWithFamily.execute(storedId(id));
        if (!row) return undefined;
        keepReadAhead(request, {
          ...(row.grant_id ? { grant: { id: row.grant_id, payload: row.grant_payload ? withConsumed(row.grant_payload as AdapterPayload, row.grant_consumed_at) : undefined } } : {}),
          ...(row.account_id
            ? { account: { id: row.account_id, record: accountOf(row) } }
            : {}),
        });
        return found(row.payload as AdapterPayload, row.consumed_at, id);
      }
      const [row] = await findRow.execute(storedId(id));
      return row ? found(row.payload as AdapterPayload, row.consumed_at, id) : undefined;
    },

    findByUid: () => Promise.resolve(undefined),
    findByUserCode: () => Promise.resolve(undefined),

    async consume(id: string) {
      const stored = storedId(id);
      // A refresh token is spent together with the save of its successor (see rotation-scope.ts).
      if (model === 'RefreshToken' && deferConsume(currentRequest(), stored, () => consumeNow(stored))) return;
      await consumeNow(stored);
    },

    async destroy(id: string) {
      await db.deleteFrom('oidc_durable').where('model', '=', model).where('id', '=', storedId(id)).execute();
    },

    async revokeByGrantId(grantId: string) {
      // Every durable model shares the table: one delete revokes the grant and all its refresh tokens.
      await db.deleteFrom('oidc_durable').where('grant_id', '=', grantId).execute();
    },
  };
}

/** The newest unexpired Grant of an account for a client: consent remembered across sessions. */
export async function findLatestGrantId(db: Kysely<Database>, accountId: string, clientId: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('oidc_durable')
    .select('id')
    .where('model', '=', 'Grant')
    .where('account_id', '=', accountId)
    .where('client_id', '=', clientId)
    .where(notExpired('expires_at'))
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.id;
}

/**
 * Deletes durable rows (grants, refresh tokens, registration tokens) that expired more than
 * `graceSeconds` ago; `find` already ignores them. Returns how many went.
 */
export async function purgeExpiredDurableRows(db: Kysely<Database>, graceSeconds = 3600): Promise<number> {
  const result = await db
    .deleteFrom('oidc_durable')
    .where('expires_at', '<', sql<Date>`now() - make_interval(secs => ${graceSeconds})`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
