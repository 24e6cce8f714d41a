import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths pino replaces with "[redacted]" wherever they appear in a log object. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  'client_secret',
  '*.client_secret',
  'clientSecret',
  '*.clientSecret',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers.cookie',
  'cookie',
  '*.cookie',
  'token',
  '*.token',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'id_token',
  '*.id_token',
  'code',
  '*.code',
  'client_assertion',
  '*.client_assertion',
];

/**
 * JSON logger (one object per line) that redacts secrets.
 *
 * @example
 * const logger = createLogger({ logLevel: 'info' });
 */
export function createLogger(options: { logLevel: string }, destination?: DestinationStream): Logger {
  return pino(
    {
      level: options.logLevel,
      base: { service: 'gatehouse', pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
