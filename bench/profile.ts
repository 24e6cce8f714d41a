// Reads a V8 .cpuprofile (node --cpu-prof) and lists where the main thread spent its own time.

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function where(url: string): string {
  const trimmed = url.replace(/^file:\/\//, '');
  const modules = trimmed.lastIndexOf('node_modules/');
  if (modules >= 0) return trimmed.slice(modules + 'node_modules/'.length);
  const dist = trimmed.indexOf('/dist/');
  if (dist >= 0) return trimmed.slice(dist + 1);
  return trimmed || '(native)';
}

/** The owner of a frame: an npm package, node itself, or the app (dist/…). */
function owner(url: string): string {
  const trimmed = url.replace(/^file:\/\//, '');
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(trimmed);
  if (match) return match[1]!;
  if (trimmed.startsWith('node:') || trimmed === '') return trimmed === '' ? '(V8 / native)' : 'node core';
  if (trimmed.includes('/dist/src/')) return 'gatehouse (dist/src)';
  return trimmed;
}

/** Self time in µs by frame and by owner (package). */
function selfTimes(profile: CpuProfile): { frames: Map<string, number>; owners: Map<string, number>; total: number } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const frames = new Map<string, number>();
  const owners = new Map<string, number>();
  for (const [id, micros] of self) {
    const frame = byId.get(id)!.callFrame;
    const name = frame.functionName || '(anonymous)';
    const key = frame.url ? `${name} ${where(frame.url)}:${frame.lineNumber + 1}` : name;
    frames.set(key, (frames.get(key) ?? 0) + micros);
    const who = name === '(idle)' || name === '(program)' || name === '(garbage collector)' ? name : name === 'run' && !frame.url ? 'crypto job run (RSA on the pool, see above)' : owner(frame.url);
    owners.set(who, (owners.get(who) ?? 0) + micros);
  }
  return { frames, owners, total };
}

/** Two profiles of the same request side by side: main-thread µs per request, by package and by frame. */
export function compareProfiles(a: { label: string; profile: CpuProfile; requests: number }, b: { label: string; profile: CpuProfile; requests: number }, top = 30): string {
  const ta = selfTimes(a.profile);
  const tb = selfTimes(b.profile);
  const per = (micros: number | undefined, requests: number) => (micros ?? 0) / Math.max(1, requests);
  const table = (title: string, ma: Map<string, number>, mb: Map<string, number>, rows: number) => {
    const keys = [...new Set([...ma.keys(), ...mb.keys()])]
      .filter((key) => key !== '(idle)')
      .map((key) => ({ key, x: per(ma.get(key), a.requests), y: per(mb.get(key), b.requests) }))
      .sort((p, q) => Math.max(q.x, q.y) - Math.max(p.x, p.y))
      .slice(0, rows);
    const lines = [`| ${title} | ${a.label} µs/req | ${b.label} µs/req | difference |`, '|---|---:|---:|---:|'];
    for (const { key, x, y } of keys) lines.push(`| \`${key}\` | ${x.toFixed(1)} | ${y.toFixed(1)} | ${(x - y >= 0 ? '+' : '') + (x - y).toFixed(1)} |`);
    return lines.join('\n');
  };
  const busy = (t: ReturnType<typeof selfTimes>, requests: number) => per(t.total - (t.owners.get('(idle)') ?? 0), requests);
  return [
    `Main thread, not idle: ${a.label} ${busy(ta, a.requests).toFixed(0)} µs per request, ${b.label} ${busy(tb, b.requests).toFixed(0)} µs per request.`,
    '',
    table('by package', ta.owners, tb.owners, 25),
    '',
    table('by frame', ta.frames, tb.frames, top),
  ].join('\n');
}

/** A Markdown summary: top frames by self time, and self time by package. */
export function summarizeProfile(profile: CpuProfile, top = 25): string {
  const { frames, owners, total } = selfTimes(profile);
  const pct = (micros: number) => `${((micros / total) * 100).toFixed(1)}%`;
  const lines = [
    `Profile of the main thread over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s of wall time. On one pinned CPU, time the main thread spent preempted ` +
      "is charged to the frame it was in: the libuv pool's RSA signing mostly to `run` (the crypto job that wakes it), PostgreSQL and Redis (when scheduled on that CPU) to `writev`.",
    '',
  ];
  lines.push('| self time | frame |', '|---:|---|');
  for (const [key, micros] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`| ${pct(micros)} | \`${key}\` |`);
  lines.push('', '| self time | by package |', '|---:|---|');
  for (const [key, micros] of [...owners].sort((a, b) => b[1] - a[1]).slice(0, 20)) lines.push(`| ${pct(micros)} | ${key} |`);
  return lines.join('\n');
}
