// The ops page of `payops up` in headless Chromium: the list shows executions with their
// status and filters them; one failed execution shows its timeline with the failed state
// highlighted and its error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, launchBrowser, startExecution, startPayops, stop, waitFinished } from './lib.mjs';

const TEST_TIMEOUT_MS = 120_000;

/** Succeeds: a Pass, an EventBridge putEvents task on the local bus, a Succeed. */
const GREETING = {
  Comment: 'Browser test: succeeds',
  StartAt: 'Prepare',
  States: {
    Prepare: { Type: 'Pass', Parameters: { 'greeting.$': "States.Format('hello {}', $.who)" }, Next: 'Announce' },
    Announce: {
      Type: 'Task',
      Resource: 'arn:aws:states:::events:putEvents',
      Parameters: { Entries: [{ Source: 'payops.browser-tests', DetailType: 'Greeting', 'Detail.$': '$' }] },
      ResultPath: null,
      Next: 'Done',
    },
    Done: { Type: 'Succeed' },
  },
};

/** Fails at its second state: sqs:sendMessage to a queue that does not exist. */
const NOTIFY = {
  Comment: 'Browser test: fails at Notify',
  StartAt: 'Prepare',
  States: {
    Prepare: { Type: 'Pass', Result: { ok: true }, ResultPath: '$.prepared', Next: 'Notify' },
    Notify: {
      Type: 'Task',
      Resource: 'arn:aws:states:::sqs:sendMessage',
      Parameters: { QueueUrl: 'http://127.0.0.1/000000000000/no-such-queue', 'MessageBody.$': '$' },
      Next: 'Done',
    },
    Done: { Type: 'Succeed' },
  },
};

test('the ops page lists executions and highlights the failed state', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const server = await startPayops({ stateMachines: { Greeting: GREETING, Notify: NOTIFY } });
  let browser;
  t.after(() => stop(browser, server));

  const ok = await startExecution(server, 'Greeting', { who: 'ops' }, 'greeting-1');
  const bad = await startExecution(server, 'Notify', { batch: 7 }, 'notify-1');
  assert.equal((await waitFinished(server, ok)).status, 'SUCCEEDED');
  const failed = await waitFinished(server, bad);
  assert.equal(failed.status, 'FAILED');
  assert.equal(failed.error, 'States.TaskFailed');

  browser = await launchBrowser();
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(e.message));

  // /ops redirects to the page, which lists both executions with their status.
  await page.goto(`${server.url}/ops`);
  assert.match(page.url(), /\/ops\/ui$/);
  const rows = page.getByTestId('execution-row');
  await eventually('both executions listed', async () => (await rows.count()) === 2);
  const row = (name) => page.locator(`[data-testid="execution-row"][data-name="${name}"]`);
  assert.equal(await row('greeting-1').getAttribute('data-status'), 'SUCCEEDED');
  assert.equal(await row('notify-1').getAttribute('data-status'), 'FAILED');
  assert.equal((await row('greeting-1').getByTestId('status').textContent()).trim(), 'SUCCEEDED');
  assert.equal((await row('notify-1').getByTestId('status').textContent()).trim(), 'FAILED');
  assert.match(await row('notify-1').textContent(), /Notify/);
  assert.match(await row('notify-1').textContent(), /States\.TaskFailed/);

  // The status filter keeps the failed one only; the state machine filter the other.
  await page.selectOption('#filter-status', 'FAILED');
  await eventually('the status filter applied', async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-name')) === 'notify-1');
  await page.selectOption('#filter-status', '');
  await page.selectOption('#filter-machine', 'Greeting');
  await eventually('the state machine filter applied', async () => (await rows.count()) === 1 && (await rows.first().getAttribute('data-name')) === 'greeting-1');
  await page.selectOption('#filter-machine', '');
  await eventually('the filters cleared', async () => (await rows.count()) === 2);

  // The failed execution: its timeline, the failed state highlighted, its error shown.
  await row('notify-1').getByRole('link').click();
  await page.getByTestId('visit-row').first().waitFor();
  assert.match(page.url(), /#\/executions\//);
  assert.match(await page.locator('#detail-error').textContent(), /States\.TaskFailed/);
  const visits = page.getByTestId('visit-row');
  assert.equal(await visits.count(), 2);
  const prepare = page.locator('[data-testid="visit-row"][data-state="Prepare"]');
  const notify = page.locator('[data-testid="visit-row"][data-state="Notify"]');
  assert.equal(await prepare.getAttribute('data-status'), 'SUCCEEDED');
  assert.equal(await notify.getAttribute('data-status'), 'FAILED');
  assert.match(await notify.getAttribute('class'), /\bfailed\b/);
  assert.doesNotMatch(await prepare.getAttribute('class'), /\bfailed\b/);
  // Highlighted for real: the computed background differs from a succeeded row's.
  const background = (locator) => locator.evaluate((e) => getComputedStyle(e).backgroundColor);
  assert.notEqual(await background(notify), await background(prepare));

  // A click opens the state's details: its error (with the cause) and its input.
  const detail = notify.locator('xpath=following-sibling::tr[1]');
  assert.equal(await detail.isVisible(), false);
  await notify.click();
  await detail.getByTestId('visit-error').waitFor();
  const error = await detail.getByTestId('visit-error').textContent();
  assert.match(error, /States\.TaskFailed/);
  assert.match(error, /no-such-queue/);
  assert.deepEqual(JSON.parse(await detail.getByTestId('visit-input').textContent()), { batch: 7, prepared: { ok: true } });

  // The succeeded one: every state succeeded, with outputs.
  await page.goto(`${server.url}/ops/ui#/executions/${encodeURIComponent(ok)}`);
  await page.locator('[data-testid="visit-row"][data-state="Done"]').waitFor();
  for (const state of ['Prepare', 'Announce', 'Done']) {
    assert.equal(await page.locator(`[data-testid="visit-row"][data-state="${state}"]`).getAttribute('data-status'), 'SUCCEEDED', state);
  }
  assert.equal(await page.locator('tr.visit.failed').count(), 0);
  assert.equal(await page.locator('#detail-error').isVisible(), false);
  assert.deepEqual(consoleErrors, []);
});
