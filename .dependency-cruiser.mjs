/**
 * The import boundaries of src/, checked by `npm run lint` (depcruise, after eslint).
 *
 * The layers of STYLE.md, lowest first: a module imports only from its own folder and the layers
 * before it, never from a later layer nor from another folder of its own layer. oidc/upstream.ts,
 * which names every reliance on oidc-provider's internals, is a layer of its own between services/
 * and oidc/adapters/: the adapters use it, and it uses nothing else of oidc/.
 *
 * And beyond the order: the CLI and the admin API never load oidc-provider (nor oidc/ or
 * interactions/, which do), and nothing below oidc/ does; a type-only import is not a load.
 */

/** Each element of the layout, as a pattern of the paths it holds. */
const ELEMENTS = {
  config: '^src/config/',
  observability: '^src/observability/',
  ui: '^src/ui/',
  registry: '^src/registry/',
  store: '^src/store/',
  mail: '^src/mail/',
  keys: '^src/keys/',
  accounts: '^src/accounts/',
  audit: '^src/audit/',
  services: '^src/services/',
  upstream: '^src/oidc/upstream[.]ts$',
  'oidc-adapters': '^src/oidc/adapters/',
  oidc: '^src/oidc/(?!adapters/|upstream[.]ts$)',
  interactions: '^src/interactions/',
  admin: '^src/admin/',
  cli: '^src/cli/',
  http: '^src/http/',
  server: '^src/(server|cluster|runtime)[.]ts$',
  main: '^src/main[.]ts$',
};

/** The layers, lowest first; elements of one layer do not import each other. */
const LAYERS = [
  ['config'],
  ['observability', 'ui'],
  ['registry', 'store', 'keys', 'mail'],
  ['accounts'],
  ['audit'],
  ['services'],
  ['upstream'],
  ['oidc-adapters'],
  ['oidc'],
  ['interactions'],
  ['admin', 'cli'],
  ['http'],
  ['server'],
  ['main'],
];

const anyOf = (names) => names.map((name) => `(${ELEMENTS[name]})`).join('|');

const layerRules = LAYERS.flatMap((layer, index) =>
  layer.flatMap((name) => {
    const below = LAYERS.slice(0, index).flat();
    const forbidden = LAYERS.slice(index).flat().filter((other) => other !== name);
    // The top layer may import anything (an empty pattern would match every path).
    if (forbidden.length === 0) return [];
    return {
      name: `layer-order:${name}`,
      comment: `${name} imports only from ${below.length > 0 ? below.join(', ') : 'nothing else in src/'} (STYLE.md, the layers of src/)`,
      severity: 'error',
      from: { path: ELEMENTS[name] },
      to: { path: anyOf(forbidden) },
    };
  }),
);

/** Where oidc-provider must never be loaded: below oidc/ (upstream.ts and the adapters are its users), and the CLI and the admin API. */
const WITHOUT_PROVIDER = ['config', 'observability', 'ui', 'mail', 'registry', 'store', 'keys', 'accounts', 'audit', 'services', 'admin', 'cli'];

export default {
  forbidden: [
    ...layerRules,
    {
      name: 'unlayered',
      comment: 'every module of src/ belongs to a layer of STYLE.md: add a new folder to ELEMENTS and LAYERS',
      severity: 'error',
      from: { path: '^src/', pathNot: anyOf(Object.keys(ELEMENTS)) },
      to: {},
    },
    {
      name: 'no-oidc-provider-here',
      comment: 'only oidc/ (with upstream.ts and the adapters), interactions/, http/ and the server load oidc-provider; elsewhere import its types only',
      severity: 'error',
      from: { path: anyOf(WITHOUT_PROVIDER) },
      to: { path: '(^|/)node_modules/oidc-provider/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'cli-and-admin-without-provider',
      comment: 'the CLI and the admin API never load oidc-provider: not through oidc/ or interactions/ either (types only)',
      severity: 'error',
      from: { path: anyOf(['admin', 'cli']) },
      to: { path: anyOf(['upstream', 'oidc-adapters', 'oidc', 'interactions']), dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-provider-internals',
      comment: "oidc-provider only through its package entry: what Gatehouse relies on inside it goes through oidc/upstream.ts's named functions",
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '(^|/)node_modules/oidc-provider/', pathNot: '(^|/)node_modules/oidc-provider/lib/index[.]js$' },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles in src/',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    includeOnly: '^src/|(^|/)node_modules/oidc-provider/',
    // node_modules may be a link (a git worktree sharing another's): keep the paths under it.
    preserveSymlinks: true,
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
    },
  },
};
