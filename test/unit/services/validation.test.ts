import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/services/errors.js';
import { parseInput, redirectUri, redirectUriProblem, resourceIdentifier, scopeString } from '../../../src/services/validation.js';
import { z } from 'zod';

describe('redirectUriProblem', () => {
  it.each([
    'https://app.example.com/callback',
    'https://app.example.com:8443/cb?x=1',
    'http://localhost/cb',
    'http://localhost:3000/callback',
    'http://127.0.0.1:8080/cb',
    'http://[::1]/cb',
    'http://[::1]:9000/cb',
  ])('accepts %s', (uri) => {
    expect(redirectUriProblem(uri)).toBeUndefined();
  });

  it.each(['http://example.com/cb', 'http://app.example.com:8080/cb', 'http://localhost.example.com/cb', 'http://127.0.0.1.nip.io/cb'])(
    'refuses plain http on %s, asking for https',
    (uri) => {
      expect(redirectUriProblem(uri)).toMatch(/must use https/);
    },
  );

  it.each(['https://app.example.com/cb#section', 'https://app.example.com/cb#', 'http://localhost/cb#x'])('refuses the fragment in %s', (uri) => {
    expect(redirectUriProblem(uri)).toBe('must not contain a fragment');
  });

  it.each(['https://*.example.com/cb', 'https://app.example.com/*', 'https://app.example.com/cb?next=*'])('refuses the wildcard in %s', (uri) => {
    expect(redirectUriProblem(uri)).toBe('must not contain a wildcard');
  });

  it.each(['/callback', 'callback', '//app.example.com/cb', ''])('refuses the relative reference %j', (uri) => {
    expect(redirectUriProblem(uri)).toBe('must be an absolute URI');
  });

  it.each(['com.example.app:/oauth2redirect', 'myapp://callback', 'ftp://files.example.com/cb', 'javascript:alert(1)'])(
    'refuses the custom scheme in %s',
    (uri) => {
      expect(redirectUriProblem(uri)).toBe('must use https (or http on a loopback address)');
    },
  );

  it('is what the redirectUri schema reports as its issue', () => {
    const result = redirectUri.safeParse('http://example.com/cb');
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([redirectUriProblem('http://example.com/cb')]);
    expect(redirectUri.safeParse('https://app.example.com/cb').success).toBe(true);
  });
});

describe('scopeString', () => {
  it('splits on spaces, drops empty tokens and duplicates, keeping first-seen order', () => {
    expect(scopeString.parse('read  write read   admin write')).toEqual(['read', 'write', 'admin']);
  });

  it('parses the empty string to no scopes', () => {
    expect(scopeString.parse('')).toEqual([]);
    expect(scopeString.parse('   ')).toEqual([]);
  });

  it('accepts every RFC 6749 scope-token character', () => {
    expect(scopeString.parse('read:orders api/v1.write urn:x-y!#$%&\'()*+,-.;<=>?@[]^_`{|}~')).toHaveLength(3);
  });

  it.each([
    ['a double quote', 'read "write"'],
    ['a backslash', 'read wr\\ite'],
    ['a tab (not a separator)', 'read\twrite'],
    ['a newline', 'read\nwrite'],
    ['a non-ASCII character', 'lecture écriture'],
    ['a control character', 'read\u0001'],
  ])('refuses a token with %s, naming the token', (_what, value) => {
    const result = scopeString.safeParse(value);
    expect(result.success).toBe(false);
    const messages = result.error?.issues.map((issue) => issue.message) ?? [];
    expect(messages.length).toBeGreaterThan(0);
    expect(messages.every((message) => /" is not a valid scope token$/.test(message))).toBe(true);
  });

  it('refuses a token longer than 128 characters', () => {
    expect(scopeString.safeParse('a'.repeat(128)).success).toBe(true);
    expect(scopeString.safeParse('a'.repeat(129)).success).toBe(false);
  });
});

describe('resourceIdentifier', () => {
  it('accepts absolute http(s) URIs without query or fragment', () => {
    expect(resourceIdentifier.safeParse('https://api.example.com').success).toBe(true);
    expect(resourceIdentifier.safeParse('https://api.example.com/v1').success).toBe(true);
  });

  it.each([
    ['urn:example:api', 'must be an absolute http(s) URI'],
    ['api', 'must be an absolute http(s) URI'],
    ['https://api.example.com#x', 'must not contain a fragment'],
    ['https://api.example.com?x=1', 'must not contain a query'],
  ])('refuses %s', (value, message) => {
    const result = resourceIdentifier.safeParse(value);
    expect(result.error?.issues.map((issue) => issue.message)).toEqual([message]);
  });
});

describe('parseInput', () => {
  const schema = z.strictObject({ redirect_uris: z.array(redirectUri), scope: scopeString.optional() });

  it('returns the parsed value', () => {
    expect(parseInput(schema, { redirect_uris: ['https://a.example/cb'], scope: 'a a b' })).toEqual({
      redirect_uris: ['https://a.example/cb'],
      scope: ['a', 'b'],
    });
  });

  it('throws a ValidationError naming each offending field by its path', () => {
    let caught: unknown;
    try {
      parseInput(schema, { redirect_uris: ['https://a.example/cb', 'http://example.com/cb'], scope: 'ok "bad"' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const errors = (caught as ValidationError).errors;
    expect(errors).toContainEqual({ field: 'redirect_uris.1', message: redirectUriProblem('http://example.com/cb') });
    expect(errors).toContainEqual({ field: 'scope', message: '""bad"" is not a valid scope token' });
    expect(errors).toHaveLength(2);
  });

  it('names the body when the input is not an object', () => {
    try {
      parseInput(schema, 'nope');
      expect.unreachable('parseInput accepted a string');
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).errors[0]?.field).toBe('body');
    }
  });
});
