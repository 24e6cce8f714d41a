import { render } from 'preact';
import './styles.css';
import { App } from './app.js';
import { startSession } from './auth.js';
import { navigate } from './router.js';
import { BASE, readSettings } from './settings.js';

/** Starts the console: the session first (sign-in or its callback), then the page it was opened on. */
async function main(): Promise<void> {
  const root = document.getElementById('app');
  if (!root) return;
  render(<App />, root);
  const returnTo = await startSession(readSettings());
  if (returnTo) navigate(returnTo.slice(BASE.length) || '/', { replace: true });
}

void main();
