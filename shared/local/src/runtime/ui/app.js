// The ops page of `payops up`: reads /ops/executions and /ops/executions/{id}. Every value from
// the server is put in the page with textContent (never parsed as HTML).
'use strict';

/** Rows shown at once in the timeline and history tables; "Show more" adds as many again. */
const PAGE_ROWS = 500;
/** How often the list (and a running execution) refreshes itself. */
const REFRESH_MS = 3000;
/** Most executions the list asks for. */
const LIST_LIMIT = 200;

const $ = (id) => document.getElementById(id);

/** Builds an element: el('td', {class: 'x'}, 'text', child…). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') node.className = v;
    // Through the CSSOM: the Content-Security-Policy forbids inline style attributes.
    else if (k === 'style') Object.assign(node.style, v);
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function badge(status) {
  return el('span', { class: `badge status-${status}`, 'data-testid': 'status' }, status);
}

/** `2026-11-22T03:04:05.123456Z` → `2026-11-22 03:04:05.123`. */
function time(t) {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString().replace('T', ' ').slice(0, 23);
}

function duration(ms) {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : `${m} min ${s % 60} s`;
}

function json(v) {
  return v === undefined ? '' : JSON.stringify(v, null, 2);
}

function say(text) {
  $('status-line').textContent = text;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const reason = body.error || body.message || JSON.stringify(body);
    throw new Error(`${response.status}: ${reason}`);
  }
  return body;
}

// ---- routing: #/ (list, with ?state_machine=&status=) and #/executions/{id} ----

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  if (path.startsWith('/executions/')) {
    return { view: 'detail', id: decodeURIComponent(path.slice('/executions/'.length)) };
  }
  return { view: 'list', params: new URLSearchParams(query || '') };
}

let timer = null;
let generation = 0;

function schedule(fn) {
  clearTimeout(timer);
  timer = setTimeout(fn, REFRESH_MS);
}

async function render() {
  clearTimeout(timer);
  const r = route();
  const mine = ++generation;
  $('list-view').hidden = r.view !== 'list';
  $('detail-view').hidden = r.view !== 'detail';
  try {
    if (r.view === 'list') await renderList(r.params, mine);
    else await renderDetail(r.id, mine);
  } catch (e) {
    if (mine === generation) say(`Cannot load: ${e.message}`);
  }
}

// ---- list ----

let machinesLoaded = false;

async function loadMachines() {
  if (machinesLoaded) return;
  const { state_machines: names } = await getJson('/ops/state-machines');
  const select = $('filter-machine');
  for (const name of names) select.append(el('option', { value: name }, name));
  machinesLoaded = true;
}

async function renderList(params, mine) {
  await loadMachines();
  const machine = params.get('state_machine') || '';
  const status = params.get('status') || '';
  $('filter-machine').value = machine;
  $('filter-status').value = status;
  const query = new URLSearchParams({ limit: String(LIST_LIMIT) });
  if (machine) query.set('state_machine', machine);
  if (status) query.set('status', status);
  const { executions } = await getJson(`/ops/executions?${query}`);
  if (mine !== generation) return;
  const body = $('executions');
  body.replaceChildren(...executions.map(executionRow));
  $('no-executions').hidden = executions.length > 0;
  say(`${executions.length} execution(s) · ${time(new Date().toISOString())} UTC`);
  if ($('auto-refresh').checked) schedule(render);
}

function executionRow(x) {
  const stop = x.stop_time ? Date.parse(x.stop_time) : null;
  const ms = stop !== null ? stop - Date.parse(x.start_time) : null;
  const href = `#/executions/${encodeURIComponent(x.id)}`;
  const row = el(
    'tr',
    { class: 'execution', 'data-testid': 'execution-row', 'data-status': x.status, 'data-name': x.name, 'data-state-machine': x.state_machine },
    el('td', {}, el('a', { href }, x.name)),
    el('td', {}, x.state_machine),
    el('td', {}, badge(x.status)),
    el('td', {}, time(x.start_time)),
    el('td', {}, time(x.stop_time)),
    el('td', {}, duration(ms)),
    el('td', { class: 'error', title: x.error || '' }, x.error || ''),
  );
  row.addEventListener('click', (e) => {
    if (e.target.tagName !== 'A') location.hash = href;
  });
  return row;
}

function applyFilters() {
  const q = new URLSearchParams();
  if ($('filter-machine').value) q.set('state_machine', $('filter-machine').value);
  if ($('filter-status').value) q.set('status', $('filter-status').value);
  const s = q.toString();
  location.hash = s ? `#/?${s}` : '#/';
}

// ---- one execution ----

let timelineShown = PAGE_ROWS;
let historyShown = PAGE_ROWS;
let shownId = null;
/** Visits whose details are open, by entered event id (kept across refreshes). */
const openVisits = new Set();

async function renderDetail(id, mine) {
  if (shownId !== id) {
    shownId = id;
    timelineShown = PAGE_ROWS;
    historyShown = PAGE_ROWS;
    openVisits.clear();
  }
  const data = await getJson(`/ops/executions/${encodeURIComponent(id)}`);
  if (mine !== generation) return;
  const x = data.execution;
  $('detail-title').replaceChildren(`${x.state_machine} · ${x.name} `, badge(x.status));
  const stop = x.stop_time ? Date.parse(x.stop_time) : null;
  const facts = [
    ['Execution', x.id],
    ['State machine', x.state_machine],
    ['Status', x.status],
    ['Started (UTC)', time(x.start_time)],
    ['Stopped (UTC)', time(x.stop_time)],
    ['Duration', stop !== null ? duration(stop - Date.parse(x.start_time)) : 'running'],
  ];
  $('detail-summary').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  const failed = Boolean(x.error || x.cause);
  $('detail-error').hidden = !failed;
  $('detail-error-name').textContent = x.error || '';
  $('detail-error-cause').textContent = x.cause || '';
  $('detail-input').textContent = json(x.input);
  $('detail-output').textContent = x.output === null || x.output === undefined ? '(none yet)' : json(x.output);
  renderTimeline(data.timeline, x);
  renderHistory(data.history);
  say(`${data.timeline.length} state visit(s), ${data.history.length} event(s)`);
  if (x.status === 'RUNNING') schedule(render);
}

function total(visits, x) {
  const stop = x.stop_time ? Date.parse(x.stop_time) : Date.now();
  let end = Math.max(1, stop - Date.parse(x.start_time));
  for (const v of visits) end = Math.max(end, v.entered_ms + (v.duration_ms || 0));
  return end;
}

function renderTimeline(visits, x) {
  const span = total(visits, x);
  const rows = [];
  for (const v of visits.slice(0, timelineShown)) {
    const depth = v.scope ? v.scope.split('/').length / 2 : 0;
    const left = (100 * v.entered_ms) / span;
    const width = v.duration_ms === null ? 100 - left : (100 * v.duration_ms) / span;
    const classes = ['visit'];
    if (v.status === 'FAILED') classes.push('failed');
    if (v.status === 'CAUGHT') classes.push('caught');
    const row = el(
      'tr',
      { class: classes.join(' '), 'data-testid': 'visit-row', 'data-state': v.state, 'data-scope': v.scope, 'data-status': v.status },
      el(
        'td',
        { style: { paddingLeft: `${0.6 + depth * 1.2}rem` } },
        v.state,
        v.scope ? el('span', { class: 'scope' }, v.scope) : null,
      ),
      el('td', {}, v.type),
      el('td', {}, badge(v.status), v.retries ? ` ${v.retries} retr${v.retries === 1 ? 'y' : 'ies'}` : ''),
      el('td', {}, `+${duration(v.entered_ms)}`),
      el('td', {}, duration(v.duration_ms)),
      el('td', {}, el('div', { class: 'bar-track' }, el('div', { class: `bar ${v.status}`, style: { left: `${left}%`, width: `${Math.max(0, width)}%` } }))),
    );
    const detail = visitDetail(v);
    detail.hidden = !openVisits.has(v.entered_event);
    row.addEventListener('click', () => {
      detail.hidden = !detail.hidden;
      if (detail.hidden) openVisits.delete(v.entered_event);
      else openVisits.add(v.entered_event);
    });
    rows.push(row, detail);
  }
  $('timeline').replaceChildren(...rows);
  const more = $('timeline-more');
  more.hidden = visits.length <= timelineShown;
  more.textContent = `Show more (${visits.length - timelineShown} more state visits)`;
}

function visitDetail(v) {
  const parts = [];
  if (v.error || v.cause) {
    parts.push(el('div', { class: 'visit-error', 'data-testid': 'visit-error' }, `${v.error || ''}${v.cause ? `: ${v.cause}` : ''}`));
  }
  parts.push(el('div', {}, el('strong', {}, 'Input'), el('pre', { 'data-testid': 'visit-input' }, json(v.input))));
  if (v.output !== null && v.output !== undefined) {
    parts.push(el('div', {}, el('strong', {}, 'Output'), el('pre', { 'data-testid': 'visit-output' }, json(v.output))));
  }
  parts.push(el('div', { class: 'scope' }, `Events ${v.entered_event}${v.exited_event ? `–${v.exited_event}` : ''} · entered ${time(v.entered)}${v.exited ? ` · exited ${time(v.exited)}` : ''}`));
  return el('tr', { class: 'visit-detail', 'data-testid': 'visit-detail' }, el('td', { colSpan: 6 }, ...parts));
}

function renderHistory(events) {
  $('history-count').textContent = String(events.length);
  const rows = events.slice(0, historyShown).map((e) =>
    el(
      'tr',
      { class: e.type.endsWith('Failed') || e.type.endsWith('TimedOut') ? 'failed' : '' },
      el('td', {}, e.id),
      el('td', {}, e.type),
      el('td', {}, e.scope),
      el('td', {}, `+${duration(e.elapsed_ms)}${e.duration_ms !== undefined ? ` (${duration(e.duration_ms)})` : ''}`),
      el('td', {}, el('pre', {}, json(e.event && e.event.details))),
    ),
  );
  $('history').replaceChildren(...rows);
  const more = $('history-more');
  more.hidden = events.length <= historyShown;
  more.textContent = `Show more (${events.length - historyShown} more events)`;
}

// ---- wiring ----

document.addEventListener('DOMContentLoaded', () => {
  $('filter-machine').addEventListener('change', applyFilters);
  $('filter-status').addEventListener('change', applyFilters);
  $('refresh').addEventListener('click', render);
  $('auto-refresh').addEventListener('change', () => {
    if ($('auto-refresh').checked) render();
    else clearTimeout(timer);
  });
  $('timeline-more').addEventListener('click', () => {
    timelineShown += PAGE_ROWS;
    render();
  });
  $('history-more').addEventListener('click', () => {
    historyShown += PAGE_ROWS;
    render();
  });
  window.addEventListener('hashchange', render);
  render();
});
