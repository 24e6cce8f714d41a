/** Plain words for what a scope lets an app do, as the consent page shows it. */
const OIDC_SCOPE_WORDS: Record<string, string> = {
  openid: 'Know who you are (your account identifier)',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Keep access while you are not using it',
};

export interface ScopeLine {
  name: string;
  description: string;
}

export function describeScopes(oidcScopes: readonly string[], resourceScopes: Record<string, readonly string[]>, names: Record<string, string | null>): ScopeLine[] {
  const lines: ScopeLine[] = oidcScopes.map((scope) => ({ name: scope, description: OIDC_SCOPE_WORDS[scope] ?? scope }));
  for (const [resource, scopes] of Object.entries(resourceScopes)) {
    const api = names[resource] ?? resource;
    for (const scope of scopes) lines.push({ name: scope, description: `Use ${api}` });
  }
  return lines;
}
