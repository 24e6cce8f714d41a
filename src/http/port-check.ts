import net from 'node:net';

/**
 * Why the server could not listen on `port` (the words that follow "PORT: 3000 is"), or undefined
 * when it can. Tried by listening on it as the server will (every interface) and closing again at
 * once, so that a port another process holds is reported before anything is opened. A process
 * quicker than the server can still take the port in between; the server's own listen reports
 * that, only later.
 *
 * @example
 * const problem = await portProblem(config.port); // 'already in use by another process'
 */
export async function portProblem(port: number): Promise<string | undefined> {
  if (port === 0) return undefined;
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, () => resolve());
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') return 'already in use by another process';
    if (code === 'EACCES') return 'not open to this user (ports below 1024 need privileges)';
    return `not available (${(error as Error).message})`;
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return undefined;
}
