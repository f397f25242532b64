// HR's payroll page of `payops up` in headless Chromium: upload the real 426-row sample, see
// the summary by source (sortable) and by branch, approve, watch the status move to
// COMPLETED as the provider sandbox settles the payments, download the sources CSV and check
// that its totals add up to the file's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT, eventually, launchBrowser, startPayops, stop } from './lib.mjs';

const TEST_TIMEOUT_MS = 120_000;
const FIXTURE = join(REPO_ROOT, '../shared/fixtures/payroll/payroll-426-rows.xml');

/** Cents of a decimal string like "1234.56" (exact: integers only). */
function cents(text) {
  const [whole, frac = ''] = text.trim().split('.');
  return BigInt(whole) * 100n + BigInt((frac + '00').slice(0, 2));
}

/** A `payops up` of its own and HR's page in Chromium, both stopped when `t` ends. */
async function openHrPage(t) {
  const server = await startPayops();
  let browser;
  t.after(() => stop(browser, server));
  browser = await launchBrowser();
  const page = await browser.newPage({ acceptDownloads: true });
  await page.goto(`${server.url}/hr/payroll`);
  return page;
}

test('HR uploads, sorts, approves, follows and downloads a payroll batch', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const page = await openHrPage(t);

  await page.setInputFiles('#file', FIXTURE);
  await page.click('#upload-button');
  await page.waitForFunction(() => document.getElementById('batch-status').textContent === 'AWAITING_APPROVAL');
  assert.equal(await page.textContent('#batch-rows'), '426');
  assert.equal(await page.textContent('#batch-errors'), '0');
  const fileTotal = cents(await page.textContent('#batch-total'));
  assert.equal(await page.locator('#sources-table tbody tr').count(), 5);
  assert.equal(await page.locator('#branches-table tbody tr').count(), 30);
  // Warnings (8-digit EINs, an employee with two rows) are listed as bad rows.
  assert.ok((await page.locator('#findings-table tbody tr.finding-warning').count()) > 0);

  // Sorting by total, then the other way.
  await page.click('#sources-table th[data-key="total"] button');
  const ascending = (await page.locator('#sources-table tbody tr td:nth-child(3)').allTextContents()).map(cents);
  assert.deepEqual([...ascending].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), ascending);
  await page.click('#sources-table th[data-key="total"] button');
  const descending = (await page.locator('#sources-table tbody tr td:nth-child(3)').allTextContents()).map(cents);
  assert.deepEqual([...ascending].reverse(), descending);
  assert.equal(await page.getAttribute('#sources-table th[data-key="total"]', 'aria-sort'), 'descending');

  // The batch is in the list.
  const id = await page.textContent('#batch-id');
  await eventually('the batch in the list', async () =>
    (await page.locator(`#batches-table tbody tr[data-batch-id="${id}"]`).count()) === 1);

  await page.click('#approve-button');
  await page.waitForFunction(() => document.getElementById('approve-status').textContent.startsWith('Approved.'));
  await page.waitForFunction(
    () => document.getElementById('batch-status').textContent === 'COMPLETED',
    null,
    { timeout: 60_000 },
  );
  assert.match(await page.textContent('#progress-text'), /^426 of 426 final; 426 paid/);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-sources')]);
  const csv = await readFile(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  const header = lines[0].split(',');
  const [count, owed, paid] = ['payments', 'owed', 'paid'].map((c) => header.indexOf(c));
  let payments = 0;
  let owedTotal = 0n;
  let paidTotal = 0n;
  for (const line of lines.slice(1)) {
    const f = line.split(',');
    payments += Number(f[count]);
    owedTotal += cents(f[owed]);
    paidTotal += cents(f[paid]);
  }
  assert.equal(lines.length, 6);
  assert.equal(payments, 426);
  assert.equal(owedTotal, fileTotal);
  assert.equal(paidTotal, fileTotal);
});

test('a file with more findings than the page lists links to every one of them', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const page = await openHrPage(t);

  // The sample's first row 1,100 times after itself: each copy repeats an employee's loan.
  const xml = await readFile(FIXTURE, 'utf8');
  const end = xml.indexOf('</row>') + '</row>'.length;
  const firstRow = xml.slice(xml.indexOf('<row>'), end);
  const many = xml.slice(0, end) + firstRow.repeat(1100) + xml.slice(end);
  await page.setInputFiles('#file', { name: 'many.xml', mimeType: 'application/xml', buffer: Buffer.from(many) });
  await page.click('#upload-button');
  await page.waitForFunction(() => document.getElementById('batch-status').textContent === 'AWAITING_APPROVAL');
  const warnings = Number(await page.textContent('#batch-warnings'));
  assert.ok(warnings > 1100, `${warnings} warnings`);
  assert.equal(await page.locator('#findings-table tbody tr').count(), 1000);
  assert.ok(await page.isVisible('#findings-more'));
  assert.equal(await page.textContent('#findings-more-text'), `Showing 1000 of ${warnings} findings.`);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#dl-findings')]);
  const csv = await readFile(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  assert.equal(lines[0], 'level,row,field,reason');
  assert.equal(lines.length, 1 + warnings);
});
