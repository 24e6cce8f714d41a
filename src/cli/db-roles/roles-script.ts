import { compileStatements, type DatabaseRolesPlan, type Db } from '../../services/database-roles.plan.js';

/**
 * The plan as a SQL script for psql (`psql -v ON_ERROR_STOP=1 -f roles.sql`): the very statements
 * applyDatabaseRolesPlan runs, each under a comment saying why, in one transaction.
 */
export function databaseRolesScript(db: Db, plan: DatabaseRolesPlan): string {
  const header = [
    `-- Gatehouse database roles: owner ${plan.owner}, runtime ${plan.runtime}`,
    // JSON-quoted: a name from the catalog cannot end the comment.
    `-- database ${JSON.stringify(plan.database)}, schema ${JSON.stringify(plan.schema)}, as its catalog stood when this was written.`,
    '-- Written by `gatehouse db roles --sql`; `gatehouse db roles` runs the same statements (and records',
    '-- the change in the audit log, which this script does not). Run it as a superuser:',
    '--   psql -v ON_ERROR_STOP=1 -f roles.sql',
  ];
  // Comments name tables from the catalog: a line break in a name must not end the comment.
  const body = compileStatements(db, plan).map(({ comment, text }) => `-- ${comment.replace(/[\p{Cc}\u2028\u2029]/gu, ' ')}\n${text};`);
  return `${header.join('\n')}\n\nBEGIN;\n\n${body.join('\n\n')}\n\nCOMMIT;\n`;
}
