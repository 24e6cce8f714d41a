import { CompiledQuery, type Compilable, type Kysely } from 'kysely';

/** A query Kysely built and compiled once, run again with new values for its parameters. */
export interface PreparedQuery<A extends readonly unknown[], R> {
  /** Every row the query returns. */
  execute(...args: A): Promise<R[]>;
  /** How many rows an insert, update or delete touched. */
  executeCount(...args: A): Promise<bigint>;
}

/**
 * Builds `build`'s query once with stand-in values, compiles it, and remembers where each argument
 * lands among the bound parameters; each run then only swaps the values in. The SQL text is
 * Kysely's and the values stay bound parameters: nothing is spliced into SQL. Building and
 * compiling a Kysely query costs tens of microseconds, which the token path would otherwise pay
 * on every request (docs/performance.md).
 *
 * Every argument must reach the query as a bound value (not through sql.raw or a conditional
 * that changes the query's shape); `prepareQuery` checks that each stand-in shows up.
 *
 * @example
 * const findUser = prepareQuery(db, 1, (id: string) => db.selectFrom('users').selectAll().where('id', '=', id));
 * const [user] = await findUser.execute(userId);
 */
export function prepareQuery<D, A extends readonly unknown[], R>(
  db: Kysely<D>,
  arity: A['length'],
  build: (...args: A) => Compilable<R>,
): PreparedQuery<A, R> {
  const standIns = Array.from({ length: arity }, (_, index) => `\u0000prepared-argument-${index}\u0000`);
  const compiled = build(...(standIns as unknown as A)).compile();
  const template = [...compiled.parameters];
  // slots[i] lists the parameter positions argument i fills (an upsert binds a value twice).
  const slots = standIns.map((standIn) => template.flatMap((value, position) => (value === standIn ? [position] : [])));
  const missing = slots.findIndex((positions) => positions.length === 0);
  if (missing !== -1) throw new TypeError(`prepareQuery: argument ${missing} does not reach the query as a bound value`);

  const toQuery = (args: A) => {
    const parameters = [...template];
    slots.forEach((positions, index) => {
      for (const position of positions) parameters[position] = args[index];
    });
    return CompiledQuery.raw(compiled.sql, parameters) as CompiledQuery<R>;
  };

  return {
    async execute(...args) {
      return (await db.executeQuery(toQuery(args))).rows;
    },
    async executeCount(...args) {
      return (await db.executeQuery(toQuery(args))).numAffectedRows ?? 0n;
    },
  };
}
