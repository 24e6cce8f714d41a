import { existsSync } from 'node:fs';
import path from 'node:path';

/** The folder holding package.json: views/ sits beside it, from src/ and from dist/ alike. */
function packageRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + import.meta.dirname);
    dir = parent;
  }
  return dir;
}

/** The folder holding package.json (dist/ is beside it after `npm run build`). */
export const PACKAGE_ROOT = packageRoot();

/** views/: the page templates (oidc/pages.ts) and the mail templates (views/mail/, mail/compose.ts). */
export const VIEWS_DIR = path.join(PACKAGE_ROOT, 'views');
