// HR's payroll page: plain DOM, data from the payroll API of the same origin, built with
// textContent only (file contents never become HTML).
'use strict';

const API = '/payroll/batches';
const REFRESH_MS = 1000;

const state = { batchId: null, batch: null, sort: {} };

const $ = (id) => document.getElementById(id);

function text(el, value) { el.textContent = value === undefined || value === null ? '' : String(value); }

function cell(row, value, className) {
  const td = document.createElement('td');
  text(td, value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

async function api(path, init) {
  const response = await fetch(path, init);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.message || `HTTP ${response.status}`;
    throw new Error(body.field ? `${body.field}: ${message}` : message);
  }
  return body;
}

// Amounts are decimal strings; sorting compares them as numbers only for ordering.
function amountKey(s) { return Number(s || 0); }

function groupRows(batch, kind) {
  const summary = (batch.summary && batch.summary[kind === 'source' ? 'by_source' : 'by_branch']) || [];
  const progress = batch.progress ? batch.progress[kind === 'source' ? 'by_source' : 'by_branch'] : [];
  const paid = new Map((progress || []).map((g) => [g.id, g.paid_total]));
  return summary.map((g) => ({
    id: kind === 'source' ? g.source_id : g.branch_id,
    count: g.count,
    total: g.total,
    paid: paid.has(kind === 'source' ? g.source_id : g.branch_id) ? paid.get(kind === 'source' ? g.source_id : g.branch_id) : '',
  }));
}

function renderGroups(tableId, rows) {
  const table = $(tableId);
  const sort = state.sort[tableId] || { key: 'id', dir: 1 };
  rows.sort((a, b) => {
    const key = sort.key;
    const va = key === 'id' ? a.id : key === 'count' ? a.count : amountKey(a[key]);
    const vb = key === 'id' ? b.id : key === 'count' ? b.count : amountKey(b[key]);
    return (va < vb ? -1 : va > vb ? 1 : 0) * sort.dir;
  });
  for (const th of table.querySelectorAll('th[data-key]')) {
    th.setAttribute('aria-sort', th.dataset.key === sort.key ? (sort.dir > 0 ? 'ascending' : 'descending') : 'none');
  }
  const tbody = table.querySelector('tbody');
  tbody.replaceChildren();
  for (const r of rows) {
    const tr = document.createElement('tr');
    cell(tr, r.id);
    cell(tr, r.count, 'num');
    cell(tr, r.total, 'num');
    cell(tr, r.paid, 'num');
    tbody.appendChild(tr);
  }
}

function renderFindings(batch) {
  const tbody = $('findings-table').querySelector('tbody');
  tbody.replaceChildren();
  const s = batch.summary || { errors: [], warnings: [] };
  const all = s.errors.map((f) => ({ ...f, level: 'error' }))
    .concat(s.warnings.map((f) => ({ ...f, level: 'warning' })))
    .sort((a, b) => a.row - b.row);
  $('no-findings').hidden = all.length > 0;
  // The batch lists the first 1,000 of each level; every one is in findings.csv.
  $('findings-more').hidden = !s.findings_truncated;
  if (s.findings_truncated) {
    const total = (batch.error_count || 0) + (batch.warning_count || 0);
    text($('findings-more-text'), `Showing ${all.length} of ${total} findings.`);
    const a = $('dl-findings');
    a.href = `${API}/${encodeURIComponent(batch.batch_id)}/reports/findings.csv`;
    a.setAttribute('download', `${batch.batch_id}-findings.csv`);
  }
  for (const f of all) {
    const tr = document.createElement('tr');
    tr.className = `finding-${f.level}`;
    cell(tr, f.row);
    cell(tr, f.level, `level-${f.level}`);
    cell(tr, f.field);
    cell(tr, f.reason);
    tbody.appendChild(tr);
  }
}

function renderBatch(batch) {
  state.batch = batch;
  $('batch-section').hidden = false;
  text($('batch-id'), batch.batch_id);
  text($('batch-status'), batch.status);
  text($('batch-file'), batch.file_name || '');
  text($('batch-rows'), batch.rows);
  text($('batch-total'), batch.total);
  text($('batch-errors'), batch.error_count);
  text($('batch-warnings'), batch.warning_count);
  const dup = $('duplicate-note');
  dup.hidden = !batch.duplicate_of;
  if (batch.duplicate_of) text(dup, `The same file was uploaded before as batch ${batch.duplicate_of}.`);
  $('approve-box').hidden = batch.status !== 'AWAITING_APPROVAL';
  $('allow-duplicate-label').hidden = !batch.duplicate_of;
  const p = batch.progress;
  $('progress-box').hidden = !p;
  if (p) {
    $('progress-bar').max = Math.max(p.payments, 1);
    $('progress-bar').value = p.done;
    text($('progress-text'), `${p.done} of ${p.payments} final; ${p.paid_count} paid (${p.paid_total} of ${p.owed_total})`);
  }
  // FAILED: its workflow stopped on an error; payments already sent go on, and a resume
  // starts it again where it stopped.
  const failed = batch.status === 'FAILED';
  $('failure-box').hidden = !failed;
  if (failed && batch.failure) {
    text($('failure-note'), `The batch stopped on an error (${batch.failure.error}): ${batch.failure.cause}`);
  }
  const approved = ['APPROVED', 'PROCESSING', 'COMPLETED', 'FAILED'].includes(batch.status);
  $('downloads').hidden = !approved;
  for (const name of ['payments', 'sources', 'branches']) {
    const a = $(`dl-${name}`);
    a.href = `${API}/${encodeURIComponent(batch.batch_id)}/reports/${name}.csv`;
    a.setAttribute('download', `${batch.batch_id}-${name}.csv`);
  }
  renderGroups('sources-table', groupRows(batch, 'source'));
  renderGroups('branches-table', groupRows(batch, 'branch'));
  renderFindings(batch);
}

async function loadBatch(id) {
  state.batchId = id;
  renderBatch(await api(`${API}/${encodeURIComponent(id)}`));
}

async function refreshList() {
  const list = await api(`${API}?limit=50`);
  const tbody = $('batches-table').querySelector('tbody');
  tbody.replaceChildren();
  for (const b of list.batches) {
    const tr = document.createElement('tr');
    tr.dataset.batchId = b.batch_id;
    if (b.batch_id === state.batchId) tr.className = 'selected';
    cell(tr, b.batch_id);
    cell(tr, b.file_name || '');
    cell(tr, b.created_at);
    cell(tr, b.status, 'status');
    cell(tr, b.rows, 'num');
    cell(tr, b.total, 'num');
    cell(tr, b.progress ? `${b.progress.done}/${b.progress.payments}` : '');
    tr.addEventListener('click', () => loadBatch(b.batch_id).catch(showError));
    tbody.appendChild(tr);
  }
}

function showError(e) { text($('approve-status'), e.message); $('approve-status').className = 'error'; }

async function upload(event) {
  event.preventDefault();
  const file = $('file').files[0];
  if (!file) return;
  const status = $('upload-status');
  text(status, 'Uploading…');
  status.className = '';
  $('upload-button').disabled = true;
  try {
    const batch = await api(`${API}?name=${encodeURIComponent(file.name)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: file,
    });
    state.batchId = batch.batch_id;
    text($('approve-status'), '');
    renderBatch(batch);
    text(status, `Uploaded: batch ${batch.batch_id}, ${batch.status}`);
    await refreshList();
  } catch (e) {
    text(status, e.message);
    status.className = 'error';
  } finally {
    $('upload-button').disabled = false;
  }
}

/**
 * A POST about the current batch from `buttonId`: the button is disabled meanwhile, the
 * answer's status line comes from `say(outcome)`, and the batch is shown again after it.
 */
async function batchAction(buttonId, path, init, say) {
  if (!state.batchId) return;
  const button = $(buttonId);
  button.disabled = true;
  try {
    const outcome = await api(`${API}/${encodeURIComponent(state.batchId)}/${path}`, { method: 'POST', ...init });
    text($('approve-status'), say(outcome));
    $('approve-status').className = '';
    await loadBatch(state.batchId);
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

function resume() {
  return batchAction('resume-button', 'resume', {}, () => 'Resumed.');
}

function approve() {
  const init = {
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ allow_duplicate: $('allow-duplicate').checked }),
  };
  return batchAction('approve-button', 'approve', init, (outcome) => {
    const eta = outcome.estimate ? ` Estimated time at the provider: ${outcome.estimate.seconds} s.` : '';
    return (outcome.already_approved ? 'Already approved.' : 'Approved.') + eta;
  });
}

function setUpSorting() {
  for (const tableId of ['sources-table', 'branches-table']) {
    for (const th of $(tableId).querySelectorAll('th[data-key]')) {
      th.querySelector('button').addEventListener('click', () => {
        const current = state.sort[tableId] || { key: 'id', dir: 1 };
        const dir = current.key === th.dataset.key ? -current.dir : 1;
        state.sort[tableId] = { key: th.dataset.key, dir };
        if (state.batch) renderBatch(state.batch);
      });
    }
  }
}

async function tick() {
  try {
    await refreshList();
    if (state.batchId && state.batch && state.batch.status !== 'COMPLETED') await loadBatch(state.batchId);
  } catch (e) {
    // The next tick tries again; the page stays usable.
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('upload-form').addEventListener('submit', upload);
  $('approve-button').addEventListener('click', approve);
  $('resume-button').addEventListener('click', resume);
  setUpSorting();
  tick();
  setInterval(tick, REFRESH_MS);
});
