import type { Adapter } from 'oidc-provider';
import type { EphemeralStore } from '../../store/ephemeral-store.js';
import { currentProviderRequest, providerRequestClient, sessionAuthorizations, sessionFields } from '../upstream.js';

/*
 * The browser sessions of one account (the account page's "Sessions"). oidc-provider keeps a
 * Session under its cookie value and knows no sessions by account, so the Session adapter also
 * sets the session in the store index `account-sessions:<account id>` whenever it saves one signed
 * in (with the browser's User-Agent and address when saved in a request), and the index lives as
 * long as the longest of them. A session the provider destroys (sign-out, the id change at a
 * sign-in) leaves the index at once; one that expires stays until a reader finds it gone and drops it.
 */

/** The store index of an account's browser sessions. */
export const accountSessionsIndex = (accountId: string) => `account-sessions:${accountId}`;

/** A live browser session of an account. `id` is its cookie value: never shown, never logged. */
export interface AccountBrowserSession {
  id: string;
  uid: string;
  /** When its person signed in (epoch seconds); undefined if the session does not say. */
  loginTs: number | undefined;
  userAgent: string | null;
  ip: string | null;
  /** The clients the session signed in to, with the session's `sid` for each (back-channel logout). */
  apps: ReadonlyArray<{ clientId: string; sid: string | undefined }>;
}

interface IndexValue {
  uid?: unknown;
  userAgent?: unknown;
  ip?: unknown;
}

const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : null);

/**
 * The Session model's adapter, with every save of a signed-in session also set in its account's
 * index. Outside a request (a tool, a test) what the index knows of the session's browser stays.
 */
export function indexSessions(adapter: Adapter, store: EphemeralStore, currentRequest: () => object | undefined = currentProviderRequest): Adapter {
  return {
    ...adapter,
    async upsert(id, payload, expiresIn) {
      await adapter.upsert(id, payload, expiresIn);
      const fields = sessionFields(payload);
      if (!fields) return;
      const index = accountSessionsIndex(fields.accountId);
      const client = providerRequestClient(currentRequest());
      if (!client) {
        const known = (await store.indexList(index)).get(id);
        if (known !== undefined) {
          await store.indexSet(index, id, known, expiresIn);
          return;
        }
      }
      await store.indexSet(index, id, JSON.stringify({ uid: fields.uid, userAgent: client?.userAgent ?? null, ip: client?.ip ?? null }), expiresIn);
    },
    // A sign-out, or the id change at a sign-in, destroys the session: it leaves its account's index too.
    async destroy(id) {
      const fields = sessionFields((await adapter.find(id)) ?? undefined);
      await adapter.destroy(id);
      if (fields) await store.indexRemove(accountSessionsIndex(fields.accountId), [id]);
    },
  };
}

/**
 * The account's live browser sessions, newest sign-in first. Index members whose session is gone
 * (or now belongs to someone else) are dropped from the index on the way.
 */
export async function listAccountSessions(store: EphemeralStore, accountId: string): Promise<AccountBrowserSession[]> {
  const index = accountSessionsIndex(accountId);
  const members = [...(await store.indexList(index))];
  const found = await Promise.all(
    members.map(async ([id]) => {
      const payload = await store.find('Session', id);
      const fields = sessionFields(payload);
      return fields && { ...fields, apps: sessionAuthorizations(payload) };
    }),
  );
  const live: AccountBrowserSession[] = [];
  const gone: string[] = [];
  members.forEach(([id, raw], position) => {
    const fields = found[position];
    if (!fields || fields.accountId !== accountId) {
      gone.push(id);
      return;
    }
    let value: IndexValue = {};
    try {
      value = JSON.parse(raw) as IndexValue;
    } catch {
      // An unreadable value says nothing about the browser; the session is still listed.
    }
    live.push({ id, uid: fields.uid, loginTs: fields.loginTs, userAgent: text(value.userAgent), ip: text(value.ip), apps: fields.apps });
  });
  if (gone.length > 0) await store.indexRemove(index, gone);
  return live.sort((a, b) => (b.loginTs ?? 0) - (a.loginTs ?? 0));
}

/** Ends the account's sessions that `which` picks (deletes them from the store); answers them. */
export async function takeAccountSessions(store: EphemeralStore, accountId: string, which: (session: AccountBrowserSession) => boolean): Promise<AccountBrowserSession[]> {
  const ending = (await listAccountSessions(store, accountId)).filter(which);
  await Promise.all(ending.map((session) => store.destroy('Session', session.id)));
  if (ending.length > 0) await store.indexRemove(accountSessionsIndex(accountId), ending.map((session) => session.id));
  return ending;
}

/** Ends the account's sessions that `which` picks (deletes them from the store); answers how many. */
export async function endAccountSessions(store: EphemeralStore, accountId: string, which: (session: AccountBrowserSession) => boolean): Promise<number> {
  return (await takeAccountSessions(store, accountId, which)).length;
}
