import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
// @node-rs/argon2 rather than `argon2`: a prebuilt N-API binary (no node-gyp compile step in
// the image or on CI), and faster at the same parameters (docs/performance.md).
import { hash, parseOptions, verify, type Algorithm, type Options, type Version } from '@node-rs/argon2';

/** argon2id parameters: OWASP's recommended minimum (m=19456 KiB, t=2, p=1). Raise, never lower. */
export const PASSWORD_HASH_PARAMS = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 1024;

// Algorithm.Argon2id and Version.V0x13: both are ambient const enums, which isolatedModules cannot read.
const ARGON2ID: Algorithm = 2;
const VERSION_0X13: Version = 1;

const HASH_OPTIONS: Options = { ...PASSWORD_HASH_PARAMS, algorithm: ARGON2ID };

/** Characters as a person counts them (code points, not UTF-16 units); stops counting past the maximum. */
function characterCount(password: string): number {
  // A code point is one or two UTF-16 units: a string this long has more than the maximum either way.
  if (password.length > 2 * MAX_PASSWORD_LENGTH) return password.length;
  let count = 0;
  for (const _ of password) count += 1;
  return count;
}

/** True when the password is longer than any we accept: refuse it without spending a hash on it. */
export function isOverlongPassword(password: string): boolean {
  return characterCount(password) > MAX_PASSWORD_LENGTH;
}

let commonPasswords: Set<string> | undefined;

/** The ~49k most common breached passwords shipped with zxcvbn-ts, lower-cased, loaded on first use. */
function commonPasswordSet(): Set<string> {
  if (!commonPasswords) {
    // Loaded on demand (it decompresses a word list): only processes that check passwords pay for it.
    const require = createRequire(import.meta.url);
    const { dictionary } = require('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common');
    commonPasswords = new Set(dictionary['passwords-common'].map((word) => word.toLowerCase()));
  }
  return commonPasswords;
}

/** Which rule a new password breaks (pages word it from the message catalogue), or undefined when it is fine. */
export type PasswordProblemKind = 'too_short' | 'too_long' | 'common';

/** The rule a new password breaks, by kind: what passwordProblem words, for callers with their own words (the reset page). */
export function passwordProblemKind(password: string): PasswordProblemKind | undefined {
  const length = characterCount(password);
  if (length < MIN_PASSWORD_LENGTH) return 'too_short';
  if (length > MAX_PASSWORD_LENGTH) return 'too_long';
  if (commonPasswordSet().has(password.toLowerCase())) return 'common';
  return undefined;
}

/** Why a new password is unacceptable, in words for the person choosing it, or undefined when it is fine. */
export function passwordProblem(password: string): string | undefined {
  const kind = passwordProblemKind(password);
  if (kind === 'too_short') return `must be at least ${MIN_PASSWORD_LENGTH} characters`;
  if (kind === 'too_long') return `must be at most ${MAX_PASSWORD_LENGTH} characters`;
  if (kind === 'common') return 'is too common: it appears in lists of breached passwords';
  return undefined;
}

/**
 * At most one argon2id computation per CPU this process may use: each holds 19 MiB while it runs,
 * and more at once than there are cores only adds memory, not sign-ins per second.
 */
const MAX_CONCURRENT_HASHES = Math.max(1, availableParallelism());
let running = 0;
const waiting: Array<() => void> = [];

/** How many argon2id computations run right now (for tests and metrics). */
export function hashesInFlight(): number {
  return running;
}

async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (running >= MAX_CONCURRENT_HASHES) await new Promise<void>((resolve) => waiting.push(resolve));
  running += 1;
  try {
    return await work();
  } finally {
    running -= 1;
    waiting.shift()?.();
  }
}

/** An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) at the current parameters. */
export function hashPassword(password: string): Promise<string> {
  return limited(() => hash(password, HASH_OPTIONS));
}

/** Constant-time check of a password against a stored hash; false (never a throw) when the hash is malformed. */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await limited(() => verify(passwordHash, password));
  } catch {
    return false;
  }
}

/** True when the stored hash is not argon2id v1.3 or is weaker than the current parameters in m, t or p. */
export function needsRehash(passwordHash: string): boolean {
  let options;
  try {
    options = parseOptions(passwordHash);
  } catch {
    return true;
  }
  return (
    options.algorithm !== ARGON2ID ||
    options.version !== VERSION_0X13 ||
    options.memoryCost < PASSWORD_HASH_PARAMS.memoryCost ||
    options.timeCost < PASSWORD_HASH_PARAMS.timeCost ||
    options.parallelism < PASSWORD_HASH_PARAMS.parallelism
  );
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the same work as verifying a real user's password, against a hash of a random value made
 * once (per process) at the current parameters: an unknown email then costs what a known one does.
 */
export async function verifyDummy(password: string): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(32).toString('base64url')).catch((error: unknown) => {
    dummyHash = undefined;
    throw error;
  });
  await verifyPassword(await dummyHash, password);
}
