import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { adminApiTypes, GENERATED_TYPES } from '../../../console/scripts/types.js';

/**
 * The console is typed by the admin API's own OpenAPI document: the committed types must be what
 * `npm run console:types` makes of the document now, so a change to the API that the console does
 * not follow fails here (and then in `tsc -p console`), never in a browser.
 */
describe('the console types of the admin API', () => {
  it('are generated from the current OpenAPI document (run `npm run console:types` after changing the API)', async () => {
    const committed = readFileSync(path.resolve(import.meta.dirname, '../../..', GENERATED_TYPES), 'utf8');
    expect(committed === (await adminApiTypes()), 'console/src/generated/admin-api.d.ts is stale: run npm run console:types').toBe(true);
  });
});
