// Harness for browser tests of `payops up`: starts the real binary on 127.0.0.1 with a fresh
// data directory, launches Debian's headless Chromium through playwright-core (never a
// downloaded browser), and stops both, bounded in time, whatever happens in the test.
//
//   import { startPayops, launchBrowser, stop } from './lib.mjs';
//   const server = await startPayops({ stateMachines: { Demo: definition } });
//   const browser = await launchBrowser();
//   t.after(() => stop(browser, server));
//   const page = await browser.newPage();
//   await page.goto(`${server.url}/ops/ui`);
//
// The binary is target/debug/payops (built by `cargo test` in scripts/test.sh); override with
// PAYOPS_BIN. The browser is /usr/bin/chromium; override with PAYOPS_CHROMIUM.

import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const PAYOPS_BIN = process.env.PAYOPS_BIN || join(REPO_ROOT, 'target/debug/payops');
export const CHROMIUM_BIN = process.env.PAYOPS_CHROMIUM || '/usr/bin/chromium';

/** How long `payops up` may take to print its address. */
export const SERVER_START_TIMEOUT_MS = 30_000;
/** How long a stopped server may take to exit before it is killed. */
export const SERVER_STOP_TIMEOUT_MS = 10_000;
/** How long Chromium may take to start. */
export const BROWSER_LAUNCH_TIMEOUT_MS = 30_000;
/** Default for page actions and assertions (Playwright's own default is 30 s). */
export const PAGE_TIMEOUT_MS = 10_000;
/** How long `eventually` polls, and how often. */
export const SETTLE_TIMEOUT_MS = 30_000;
export const SETTLE_POLL_MS = 50;
/** The webhook secret the server runs with (the e2e tests use the same). */
export const TEST_SECRET = 'whsec_browser_tests';

/** Where local-only state machines go in a data directory (the runtime's LOCAL_STATE_MACHINES_DIR). */
const STATE_MACHINES_DIR = 'statemachines';

/** Every process started here, killed if the test process exits without stopping them. */
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/**
 * Starts `payops up --port 0 --data DIR` on 127.0.0.1 and waits for its address.
 *
 * options.dataDir: an existing data directory (default: a fresh temporary one, removed at stop).
 * options.stateMachines: { Name: definitionObject } written to DIR/statemachines/Name.asl.json,
 *   which `payops up` registers next to the template's state machines.
 * options.env: extra environment variables.
 *
 * Returns { url, dataDir, child, stop(), fetchJson(path, init), stderr() }.
 */
export async function startPayops(options = {}) {
  if (!existsSync(PAYOPS_BIN)) {
    throw new Error(`${PAYOPS_BIN} is missing: run \`cargo build -p payops-local --bin payops\``);
  }
  const ownDir = !options.dataDir;
  const dataDir = options.dataDir || (await mkdtemp(join(tmpdir(), 'payops-browser-')));
  if (options.stateMachines) {
    const dir = join(dataDir, STATE_MACHINES_DIR);
    await mkdir(dir, { recursive: true });
    for (const [name, definition] of Object.entries(options.stateMachines)) {
      const text = typeof definition === 'string' ? definition : JSON.stringify(definition, null, 2);
      await writeFile(join(dir, `${name}.asl.json`), text);
    }
  }
  const child = spawn(PAYOPS_BIN, ['up', '--port', '0', '--data', dataDir], {
    env: { ...process.env, PAYOPS_WEBHOOK_SECRET: TEST_SECRET, RUST_LOG: 'warn', ...(options.env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let errors = '';
  child.stderr.on('data', (chunk) => {
    // Keep the tail only: enough to explain a failed start.
    errors = (errors + chunk.toString()).slice(-8192);
  });
  const exited = new Promise((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));
  const server = {
    url: null,
    dataDir,
    child,
    stderr: () => errors,
    async fetchJson(path, init = {}) {
      const headers = { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}) };
      const response = await fetch(`${server.url}${path}`, {
        ...init,
        headers: { ...headers, ...(init.headers || {}) },
        body: init.body && typeof init.body !== 'string' ? JSON.stringify(init.body) : init.body,
        signal: AbortSignal.timeout(PAGE_TIMEOUT_MS),
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Error(`${init.method || 'GET'} ${path}: ${response.status} ${JSON.stringify(body)}`);
      return body;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killed = setTimeout(() => child.kill('SIGKILL'), SERVER_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(killed);
      }
      live.delete(child);
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    server.url = await listeningUrl(child, exited);
  } catch (e) {
    await server.stop();
    throw new Error(`${e.message}\n--- payops stderr ---\n${errors}`);
  }
  return server;
}

/** Reads stdout for `payops up: listening on URL`, bounded by SERVER_START_TIMEOUT_MS. */
function listeningUrl(child, exited) {
  return new Promise((resolveUrl, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timeout = setTimeout(
      () => reject(new Error(`payops up did not print its address within ${SERVER_START_TIMEOUT_MS} ms`)),
      SERVER_START_TIMEOUT_MS,
    );
    lines.on('line', (line) => {
      const url = line.startsWith('payops up: listening on ') ? line.slice('payops up: listening on '.length).trim() : null;
      if (url) {
        clearTimeout(timeout);
        resolveUrl(url);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timeout);
      reject(new Error(`payops up exited before listening (code ${code}, signal ${signal})`));
    });
  });
}

/** Launches headless Chromium from the Debian package; pages default to PAGE_TIMEOUT_MS. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM_BIN)) {
    throw new Error(`${CHROMIUM_BIN} is missing: apt-get install chromium (scripts/test.sh does)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    timeout: BROWSER_LAUNCH_TIMEOUT_MS,
    // No setuid sandbox in containers and CI runners (often root); /dev/shm is small there.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const newPage = browser.newPage.bind(browser);
  browser.newPage = async (...args) => {
    const page = await newPage(...args);
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    return page;
  };
  return browser;
}

/** Stops whatever it is given (browsers, servers), each bounded, continuing past failures. */
export async function stop(...things) {
  const failures = [];
  for (const thing of things) {
    if (!thing) continue;
    try {
      if (typeof thing.stop === 'function') await thing.stop();
      else if (typeof thing.close === 'function') {
        await Promise.race([thing.close(), new Promise((r) => setTimeout(r, SERVER_STOP_TIMEOUT_MS))]);
      }
    } catch (e) {
      failures.push(e);
    }
  }
  if (failures.length) throw failures[0];
}

/** Polls `check` until it returns a truthy value (returned), or fails after SETTLE_TIMEOUT_MS. */
export async function eventually(what, check, timeoutMs = SETTLE_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
  }
}

/** Starts an execution through POST /ops/executions; returns its id (ARN). */
export async function startExecution(server, stateMachine, input = {}, name = undefined) {
  const body = await server.fetchJson('/ops/executions', {
    method: 'POST',
    body: { state_machine: stateMachine, input, ...(name ? { name } : {}) },
  });
  return body.execution_id;
}

/** Waits until an execution is no longer RUNNING; returns its record. */
export async function waitFinished(server, id) {
  return eventually(`execution ${id} to finish`, async () => {
    const { execution } = await server.fetchJson(`/ops/executions/${encodeURIComponent(id)}`);
    return execution.status !== 'RUNNING' ? execution : null;
  });
}
