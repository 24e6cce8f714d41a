import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { envSchema } from '../../../src/config/schema.js';

const DEPLOY = path.resolve(import.meta.dirname, '../../../deploy');
const KNOWN_ENV = new Set(Object.keys(envSchema.shape));
/** Names the manifests may set besides Gatehouse's own variables. */
const OTHER_ENV = new Set(['MIGRATION_DATABASE_URL']);

type Json = Record<string, unknown>;
type Container = {
  name: string;
  image: string;
  command?: string[];
  ports?: Array<{ name: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }>;
  envFrom?: Array<{ secretRef: { name: string } }>;
  readinessProbe?: { httpGet: { path: string; port: string | number } };
  livenessProbe?: { httpGet: { path: string; port: string | number } };
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
};

const documents: Json[] = readdirSync(path.join(DEPLOY, 'kubernetes'))
  .filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml')
  .flatMap((name) => parseAllDocuments(readFileSync(path.join(DEPLOY, 'kubernetes', name), 'utf8')).map((doc) => doc.toJSON() as Json));
const byKind = (kind: string) => documents.filter((doc) => doc.kind === kind) as Array<Json & { metadata: { name: string }; spec: Json }>;
const podSpec = (doc: { spec: Json }) => (doc.spec.template as { spec: { containers: Container[]; volumes?: Json[] } }).spec;

function envValue(container: Container, name: string): string | undefined {
  return container.env?.find((entry) => entry.name === name)?.value;
}

describe('deploy/kubernetes', () => {
  it('has a Deployment, Service, Secret, migration Job, PodDisruptionBudget and HorizontalPodAutoscaler', () => {
    for (const kind of ['Deployment', 'Service', 'Secret', 'Job', 'PodDisruptionBudget', 'HorizontalPodAutoscaler']) {
      expect(byKind(kind).length, kind).toBeGreaterThan(0);
    }
    const kustomization = parse(readFileSync(path.join(DEPLOY, 'kubernetes/kustomization.yaml'), 'utf8')) as { resources: string[] };
    const files = readdirSync(path.join(DEPLOY, 'kubernetes')).filter((name) => name.endsWith('.yaml') && name !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it('probes /readyz for readiness and /healthz for liveness on the port Gatehouse listens on', () => {
    const [deployment] = byKind('Deployment');
    const [container] = podSpec(deployment!).containers;
    const http = container!.ports?.find((port) => port.name === 'http');
    expect(http?.containerPort).toBe(Number(envValue(container!, 'PORT')));
    expect(container!.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(container!.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    const metrics = container!.ports?.find((port) => port.name === 'metrics');
    expect(metrics?.containerPort).toBe(Number(envValue(container!, 'METRICS_PORT')));
    expect(envValue(container!, 'NODE_ENV')).toBe('production');
  });

  it('routes the Service to the named ports, and the budget and autoscaler to the Deployment', () => {
    const [deployment] = byKind('Deployment');
    const labels = (deployment!.spec.selector as { matchLabels: Record<string, string> }).matchLabels;
    const [service] = byKind('Service');
    expect(service!.spec.selector).toEqual(labels);
    const containerPorts = new Set(podSpec(deployment!).containers[0]!.ports?.map((port) => port.name));
    for (const port of service!.spec.ports as Array<{ targetPort: string }>) expect(containerPorts.has(port.targetPort)).toBe(true);
    const [pdb] = byKind('PodDisruptionBudget');
    expect((pdb!.spec.selector as { matchLabels: Json }).matchLabels).toEqual(labels);
    expect(pdb!.spec.minAvailable as number).toBeLessThan(deployment!.spec.replicas as number);
    const [hpa] = byKind('HorizontalPodAutoscaler');
    expect(hpa!.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment!.metadata.name });
    expect(hpa!.spec.minReplicas as number).toBeGreaterThanOrEqual(pdb!.spec.minAvailable as number);
  });

  it('sets only variables Gatehouse knows, and takes every secret one from a Secret', () => {
    const secrets = new Map(byKind('Secret').map((secret) => [secret.metadata.name, Object.keys((secret.stringData ?? secret.data ?? {}) as Json)]));
    for (const workload of [...byKind('Deployment'), ...byKind('Job')]) {
      for (const container of podSpec(workload).containers) {
        for (const entry of container.env ?? []) {
          expect(KNOWN_ENV.has(entry.name), `${workload.metadata.name}: ${entry.name}`).toBe(true);
          if (entry.valueFrom) expect(secrets.get(entry.valueFrom.secretKeyRef.name)).toContain(entry.valueFrom.secretKeyRef.key);
        }
        for (const from of container.envFrom ?? []) {
          const keys = secrets.get(from.secretRef.name);
          expect(keys, from.secretRef.name).toBeDefined();
          for (const key of keys!) expect(KNOWN_ENV.has(key) || OTHER_ENV.has(key), key).toBe(true);
          for (const needed of ['COOKIE_KEYS', 'DATABASE_URL', 'REDIS_URL']) expect(keys).toContain(needed);
        }
        expect(container.env?.some((entry) => ['COOKIE_KEYS', 'DATABASE_URL', 'REDIS_URL'].includes(entry.name) && entry.value !== undefined)).toBe(false);
      }
    }
  });

  it('mounts the keys read-only where KEYS_DIR points, and migrates as the schema owner in a Job', () => {
    const [deployment] = byKind('Deployment');
    const spec = podSpec(deployment!);
    const container = spec.containers[0]!;
    const mount = container.volumeMounts?.find((entry) => entry.mountPath === envValue(container, 'KEYS_DIR'));
    expect(mount?.readOnly).toBe(true);
    expect(spec.volumes?.find((volume) => volume.name === mount?.name)).toMatchObject({ secret: { secretName: 'gatehouse-keys' } });
    const [job] = byKind('Job');
    const migrate = podSpec(job!).containers[0]!;
    expect(migrate.command).toEqual(['node', 'bin/gatehouse.js', 'migrate', '--json']);
    expect(migrate.env?.find((entry) => entry.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef.key).toBe('MIGRATION_DATABASE_URL');
    expect(migrate.image).toBe(container.image);
  });
});

describe('deploy/docker-compose.yml', () => {
  const compose = parse(readFileSync(path.join(DEPLOY, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { environment?: Record<string, string>; ports?: string[]; healthcheck?: { test: string[] }; command?: string[]; depends_on?: Record<string, { condition: string }> }>;
  };

  it('runs Gatehouse with PostgreSQL and Redis, migrated first, health-checked on /readyz', () => {
    expect(Object.keys(compose.services)).toEqual(expect.arrayContaining(['gatehouse', 'postgres', 'redis', 'setup']));
    const gatehouse = compose.services.gatehouse!;
    expect(gatehouse.ports).toContain('3000:3000');
    expect(gatehouse.healthcheck?.test.join(' ')).toContain('/readyz');
    expect(gatehouse.depends_on?.setup?.condition).toBe('service_completed_successfully');
    expect(compose.services.setup!.command?.join(' ')).toContain('bin/gatehouse.js migrate');
    for (const name of Object.keys(gatehouse.environment ?? {})) expect(KNOWN_ENV.has(name), name).toBe(true);
    expect(gatehouse.environment?.PORT).toBe('3000');
    expect(gatehouse.environment?.NODE_ENV).toBe('production');
    expect(gatehouse.environment?.DATABASE_URL).toMatch(/@postgres:5432\//);
    expect(gatehouse.environment?.REDIS_URL).toBe('redis://redis:6379');
    // Production requires METRICS_PORT; it is published on the host's loopback only, not to the world.
    expect(gatehouse.environment?.METRICS_PORT).toBe('9464');
    expect(gatehouse.ports).toContain('127.0.0.1:9464:9464');
    expect(gatehouse.ports?.filter((port) => String(port).endsWith(':9464'))).toEqual(['127.0.0.1:9464:9464']);
  });
});
