import { mkdtemp, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAuditKeyring } from '../../src/keys/audit-key.js';
import { loadDigestKey } from '../../src/keys/key-store.js';
import { MINIMUM_NODE_VERSION, SERVER_NODE_OPTIONS } from '../../src/runtime.js';
import { freePort } from '../fixtures/ports.js';
import { BIN, MAIN, runNode, SERVER } from '../fixtures/process.js';

// The real entry point: a bad environment stops start-up with one line per problem, naming the variable.
describe('start-up configuration errors', () => {
  let cwd: string;
  let metricsPort: number;
  beforeAll(async () => {
    cwd = await mkdtemp(path.join(os.tmpdir(), 'gatehouse-config-'));
    metricsPort = await freePort();
  });
  afterAll(() => rm(cwd, { recursive: true, force: true }));

  it.each([
    ['PORT', 'abc'],
    ['DATABASE_URL', 'nonsense'],
    ['ISSUER', 'not-a-url'],
  ])('refuses %s=%s with one line naming it', async (name, value) => {
    const { code, stdout, stderr } = await runNode(SERVER, { cwd, env: { [name]: value } });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^gatehouse: configuration error: ${name}: `));
  });

  it('refuses production on embedded defaults, without COOKIE_KEYS, METRICS_PORT and with a remote http issuer, one line each', async () => {
    const { code, stderr } = await runNode(SERVER, { cwd, env: { NODE_ENV: 'production', ISSUER: 'http://auth.example.com' } });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(5);
    expect(lines.some((line) => line.includes('DATABASE_URL: required in production'))).toBe(true);
    expect(lines.some((line) => line.includes('REDIS_URL: required in production'))).toBe(true);
    expect(lines.some((line) => line.includes('COOKIE_KEYS: required in production'))).toBe(true);
    expect(lines.some((line) => line.includes('ISSUER: must use https in production'))).toBe(true);
    expect(lines.some((line) => line.includes('METRICS_PORT: required in production'))).toBe(true);
  });

  it('refuses several workers on the embedded database', async () => {
    const { code, stderr } = await runNode(SERVER, { cwd, env: { GATEHOUSE_WORKERS: '2' } });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^gatehouse: configuration error: GATEHOUSE_WORKERS: /);
  });

  const withoutKeys = () => ({
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
    REDIS_URL: 'redis://127.0.0.1:6379',
    COOKIE_KEYS: 'a-cookie-key-that-is-long-enough-0123456789',
    KEYS_DIR: path.join(cwd, 'no-keys-here'),
    // The ports are checked before the keys: free ones, so that the keys are what is missing.
    PORT: '0',
    METRICS_PORT: String(metricsPort),
  });

  it('refuses production without METRICS_PORT (GET /metrics is never served on the public port there), in one line naming it', async () => {
    const { METRICS_PORT: _metricsPort, ...env } = withoutKeys();
    const { code, stdout, stderr } = await runNode(SERVER, { cwd, env });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toEqual(['gatehouse: configuration error: METRICS_PORT: required in production (GET /metrics is served only on that port there, never on the public one)']);
  });

  it('refuses production without signing keys', async () => {
    const { code, stdout, stderr } = await runNode(SERVER, { cwd, env: withoutKeys() });
    expect(code).toBe(1);
    expect(stderr).toMatch(/client-secret\.key is missing|no signing keys/);
    expect(stderr).toContain('keys generate');
    expect(stdout).not.toContain('started without the Node.js options');
  });

  it('refuses production without a data key, naming the command that makes one, before opening the database', async () => {
    // The keys made before data keys existed (an upgrade), and no data-*.key.
    const keysDir = await mkdtemp(path.join(cwd, 'keys-without-data-'));
    await loadDigestKey(keysDir, { generateIfMissing: true });
    await loadAuditKeyring(keysDir, { generateIfMissing: true });
    const { code, stdout, stderr } = await runNode(SERVER, { cwd, env: { ...withoutKeys(), KEYS_DIR: keysDir } });
    expect(code).toBe(1);
    expect(stderr).toContain('no data key (data-*.key)');
    expect(stderr).toContain('keys generate');
    expect(stderr).toContain('keys rotate-data-key');
    expect(stdout).not.toContain('gatehouse listening');
    expect((await readdir(keysDir)).filter((name) => name.startsWith('data-'))).toEqual([]);
  });

  it('says so, naming them, when started without the Node.js options npm start passes', async () => {
    const { stdout } = await runNode([MAIN], { cwd, env: withoutKeys() });
    const warning = stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level?: string; msg?: string; missing?: string[] })
      .find((line) => line.msg?.startsWith('started without the Node.js options'));
    expect(warning, stdout).toBeDefined();
    expect(warning!.level).toBe('warn');
    expect(warning!.missing).toEqual([...SERVER_NODE_OPTIONS]);
  });

  /** A port this test holds, listening as the server would (every interface), while `run` runs. */
  async function holdingAPort<T>(run: (port: number) => Promise<T>): Promise<T> {
    const holder = net.createServer();
    await new Promise<void>((resolve, reject) => {
      holder.once('error', reject);
      holder.listen(0, () => resolve());
    });
    try {
      return await run((holder.address() as net.AddressInfo).port);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  }

  it.each(['PORT', 'METRICS_PORT'])('refuses a %s another process listens on, in one line, before opening the database or making keys', async (name) => {
    const fresh = await mkdtemp(path.join(cwd, 'taken-'));
    await holdingAPort(async (port) => {
      const { code, stdout, stderr } = await runNode(SERVER, { cwd: fresh, env: { PORT: '0', [name]: String(port) } });
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr.trim().split('\n')).toEqual([`gatehouse: could not start: ${name}: ${port} is already in use by another process`]);
    });
    // Nothing was opened or made: no embedded database (DATA_DIR, .data) and no keys (KEYS_DIR, keys).
    expect(await readdir(fresh)).toEqual([]);
  });

  const OLD_NODE = '20.11.1';
  // Node's own version string, made older for this process before anything else loads.
  const olderNode = ['--import', `data:text/javascript,Object.defineProperty(process.versions,"node",{value:"${OLD_NODE}"})`];

  it.each([
    ['the server', [...olderNode, ...SERVER]],
    ['the CLI', [...olderNode, BIN, 'clients', 'list']],
  ])('refuses a Node.js older than %s needs, in one line naming npx node', async (_what, args) => {
    const fresh = await mkdtemp(path.join(cwd, 'old-node-'));
    const { code, stdout, stderr } = await runNode(args, { cwd: fresh, env: {} });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(`gatehouse: Node.js ${MINIMUM_NODE_VERSION} or later is needed and this is ${OLD_NODE}: run it through npm (npm start, npx gatehouse …) or as npx node …, which use the project's Node 22 (the node devDependency)`);
    expect(await readdir(fresh)).toEqual([]);
  });
});
