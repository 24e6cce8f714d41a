import type { MessageKey, Translate } from '../ui/i18n.js';

/** Plain words for what a scope lets an app do, as the consent page shows it (catalogue keys). */
const OIDC_SCOPE_WORDS: Record<string, MessageKey> = {
  openid: 'scope.openid',
  profile: 'scope.profile',
  email: 'scope.email',
  offline_access: 'scope.offline_access',
};

export interface ScopeLine {
  name: string;
  description: string;
}

export function describeScopes(t: Translate, oidcScopes: readonly string[], resourceScopes: Record<string, readonly string[]>, names: Record<string, string | null>): ScopeLine[] {
  const lines: ScopeLine[] = oidcScopes.map((scope) => {
    const key = Object.hasOwn(OIDC_SCOPE_WORDS, scope) ? OIDC_SCOPE_WORDS[scope] : undefined;
    return { name: scope, description: key ? t(key) : scope };
  });
  for (const [resource, scopes] of Object.entries(resourceScopes)) {
    const api = names[resource] ?? resource;
    for (const scope of scopes) lines.push({ name: scope, description: t('scope.use_api', { api }) });
  }
  return lines;
}
