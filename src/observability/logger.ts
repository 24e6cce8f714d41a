import { pino, type DestinationStream, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

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
  'logout_token',
  '*.logout_token',
  'code',
  '*.code',
  'client_assertion',
  '*.client_assertion',
  'subject_token',
  '*.subject_token',
  'api_key',
  '*.api_key',
  'apiKey',
  '*.apiKey',
];

/** Pretty, coloured lines instead of JSON: for a person watching a terminal in development. */
export function wantsPrettyLogs(nodeEnv: string, stdout: { isTTY?: boolean }): boolean {
  return nodeEnv === 'development' && stdout.isTTY === true;
}

/**
 * JSON logger (one object per line) that redacts secrets; with `pretty`, the same entries as
 * readable lines (pino-pretty), for a terminal in development.
 *
 * @example
 * const logger = createLogger({ logLevel: 'info', pretty: wantsPrettyLogs(config.nodeEnv, process.stdout) });
 */
export function createLogger(options: { logLevel: string; pretty?: boolean }, destination?: DestinationStream): Logger {
  if (options.pretty) {
    destination = pinoPretty({
      destination: destination ?? 1,
      colorize: destination === undefined,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,service',
      sync: true,
    });
  }
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
