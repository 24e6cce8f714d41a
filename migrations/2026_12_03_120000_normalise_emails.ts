import { sql, type Kysely } from 'kysely';

/**
 * Frozen copy of src/registry/email.ts's normaliseEmail as of this migration (a migration must do
 * the same thing whenever it runs): trim, NFKC, lower case, NFKC.
 */
function normalise(email: string): string {
  return email.normalize('NFKC').toLowerCase().normalize('NFKC').trim();
}

/**
 * Stores every email in its normalised form and makes that form the unique key (lookups compare it
 * with `=` instead of PostgreSQL's locale-dependent `lower()`). Two users whose emails become the
 * same address cannot both keep it: the migration then changes nothing and fails, naming them, so
 * that an administrator decides (delete one, or give it another address) and runs it again.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ id: string; email: string }>`select id, email from users order by id`.execute(db);
  const byAddress = new Map<string, Array<{ id: string; email: string }>>();
  for (const row of rows) {
    const address = normalise(row.email);
    const group = byAddress.get(address) ?? [];
    group.push(row);
    byAddress.set(address, group);
  }
  const clashes = [...byAddress].filter(([, group]) => group.length > 1);
  if (clashes.length > 0) {
    const described = clashes
      .map(([address, group]) => `${JSON.stringify(address)} ← ${group.map((row) => `user ${row.id} (${JSON.stringify(row.email)})`).join(', ')}`)
      .join('; ');
    throw new Error(
      `${clashes.length} email address(es) would belong to more than one user once normalised: ${described}. ` +
        'Delete one of each, or change its email, then run the migration again; nothing was changed',
    );
  }

  await sql`drop index users_email_lower_key`.execute(db);
  for (const [address, [row]] of byAddress) {
    if (row && row.email !== address) await sql`update users set email = ${address} where id = ${row.id}`.execute(db);
  }
  await sql`create unique index users_email_key on users (email)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // The emails stay normalised (their former spellings are gone); only the old index returns.
  await sql`drop index users_email_key`.execute(db);
  await sql`create unique index users_email_lower_key on users (lower(email))`.execute(db);
}
