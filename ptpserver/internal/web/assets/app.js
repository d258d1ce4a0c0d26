// ptpserver mesh analytics page: plain DOM and SVG, no dependencies. Every value from the
// server is inserted as text (textContent), never as markup.
'use strict';

const SVGNS = 'http://www.w3.org/2000/svg';
const PATHS = ['direct', 'lan', 'hairpin', 'relay', 'none'];
const RANGES = ['1h', '6h', '24h', '7d', '30d'];
const state = { mesh: null, src: '', dst: '', range: '1h', timer: null, busy: false };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}
function short(u) { return u.length > 8 ? u.slice(0, 8) : u; }
function fmtMs(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
function fmtTime(s) { return new Date(s).toISOString().replace('T', ' ').slice(0, 19); }

async function getJSON(url) {
  const r = await fetch(url, { credentials: 'same-origin' });
  if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
  return r.json();
}
function setStatus(text, err) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.classList.toggle('err', !!err);
}

async function loadMeshes() {
  const meshes = await getJSON('api/meshes');
  const sel = document.getElementById('mesh');
  const want = new URLSearchParams(location.search).get('mesh');
  sel.replaceChildren();
  for (const m of meshes) {
    sel.append(el('option', { value: m.name, text: (m.name || '(default)') + ' — ' + m.online + ' online' }));
  }
  if (want !== null && meshes.some(m => m.name === want)) state.mesh = want;
  else if (state.mesh === null || !meshes.some(m => m.name === state.mesh)) state.mesh = meshes.length ? meshes[0].name : '';
  sel.value = state.mesh;
}

function renderLegend() {
  const l = document.getElementById('legend');
  l.replaceChildren(...PATHS.map(p => el('span', { class: 'p-' + p, text: p })),
    el('span', { class: 'lossy', text: 'loss ≥ 5 %' }));
}

function cellTitle(c) {
  const lines = [c.from + ' → ' + c.to, 'path: ' + c.path];
  if (c.reason) lines.push('why: ' + c.reason);
  lines.push('RTT ms: min ' + fmtMs(c.rtt_ms.min) + ' / avg ' + fmtMs(c.rtt_ms.avg) + ' / p50 ' + fmtMs(c.rtt_ms.p50) +
    ' / p99 ' + fmtMs(c.rtt_ms.p99) + ' / max ' + fmtMs(c.rtt_ms.max));
  lines.push('jitter ' + fmtMs(c.jitter_ms) + ' ms; loss ' + c.loss_pct.toFixed(2) + ' % (' + c.lost + ' of ' + c.sent + ')');
  lines.push('reported ' + fmtTime(c.time) + ' UTC');
  return lines.join('\n');
}

function renderMatrix(m) {
  const t = document.getElementById('matrix');
  const cells = new Map(m.cells.map(c => [c.from + ' ' + c.to, c]));
  document.getElementById('matrix-empty').hidden = m.peers.length > 0;
  const head = el('tr', {}, el('th', { text: 'from \\ to' }));
  for (const p of m.peers) head.append(el('th', { title: p, text: short(p) }));
  const rows = [head];
  for (const a of m.peers) {
    const tr = el('tr', {}, el('th', { title: a, text: short(a) }));
    for (const b of m.peers) {
      if (a === b) { tr.append(el('td', { class: 'self', text: '·' })); continue; }
      const c = cells.get(a + ' ' + b);
      if (!c) {
        tr.append(el('td', { class: 'missing', 'data-from': a, 'data-to': b, 'data-path': '', title: a + ' → ' + b + '\nno report yet', text: '–' }));
        continue;
      }
      let cls = 'p-' + c.path + (c.loss_pct >= 5 ? ' lossy' : '');
      if (a === state.src && b === state.dst) cls += ' sel';
      const td = el('td', { class: cls, title: cellTitle(c), 'data-from': a, 'data-to': b, 'data-path': c.path,
        'data-rtt-avg-ms': String(c.rtt_ms.avg), 'data-loss-pct': String(c.loss_pct) },
        el('span', { class: 'path', text: c.path }),
        el('span', { class: 'fig', text: c.received > 0 ? fmtMs(c.rtt_ms.avg) + ' ms' : '— ms' }),
        el('br'),
        el('span', { class: 'fig', text: c.loss_pct.toFixed(1) + ' %' }));
      td.addEventListener('click', () => { selectPair(a, b); });
      tr.append(td);
    }
    rows.push(tr);
  }
  t.replaceChildren(...rows);
}

function portMapText(pm) {
  if (!Array.isArray(pm) || pm.length === 0) return [el('span', { class: 'pm-none', text: 'not tried' })];
  const out = [];
  for (const r of pm) {
    let cls = 'pm-none', txt = r.protocol + ': ';
    if (r.external) { cls = 'pm-ok'; txt += r.external + (r.lifetime_s ? ' (' + r.lifetime_s + ' s)' : ''); }
    else if (!r.gateway) { txt += 'no gateway' + (r.error ? ' (' + r.error + ')' : ''); }
    else { cls = 'pm-fail'; txt += (r.error || 'refused'); }
    if (out.length) out.push(el('br'));
    out.push(el('span', { class: cls, text: txt }));
  }
  return out;
}

function renderClients(cs) {
  const tb = document.querySelector('#clients tbody');
  tb.replaceChildren(...cs.map(c => el('tr', { 'data-uuid': c.uuid },
    el('td', { class: 'mono', title: c.uuid, text: short(c.uuid) }),
    el('td', { text: c.online ? 'online' : 'gone' }),
    el('td', { class: 'mono', text: c.address }),
    el('td', { class: 'mono', text: c.public || '?' }),
    el('td', { text: String(c.version) }),
    el('td', { text: c.nat.mapping || '?' }),
    el('td', { text: c.nat.filtering || '?' }),
    el('td', { text: c.nat.hairpin || '?' }),
    el('td', {}, ...portMapText(c.port_mapping)),
    el('td', { text: fmtTime(c.seen) })
  )));
}

function renderEvents(es, now) {
  const tb = document.querySelector('#events tbody');
  const recent = es.slice(-50).reverse();
  tb.replaceChildren(...recent.map(e => el('tr', {},
    el('td', { text: fmtTime(e.time) }), el('td', { class: 'mono', title: e.uuid, text: short(e.uuid) }),
    el('td', { text: e.kind }), el('td', { class: 'mono', text: e.address }), el('td', { text: e.detail || '' }))));
  // Timeline: one lane per client, a mark per event over the last 24 hours.
  const lanes = [...new Set(es.map(e => e.uuid))].sort();
  const W = 900, L = 80, lane = 18, H = Math.max(1, lanes.length) * lane + 24;
  const end = now, start = end - 24 * 3600e3; // the server's clock, not the browser's
  const x = t => L + (W - L - 10) * (t - start) / (end - start);
  const s = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H });
  lanes.forEach((u, i) => {
    const y = 12 + i * lane;
    s.append(svg('line', { class: 'grid', x1: L, x2: W - 10, y1: y, y2: y }));
    const lbl = svg('text', { x: 4, y: y + 3 }); lbl.textContent = short(u); s.append(lbl);
  });
  for (let h = 0; h <= 24; h += 6) {
    const t = start + h * 3600e3, lbl = svg('text', { x: x(t) - 14, y: H - 4 });
    lbl.textContent = new Date(t).toISOString().slice(11, 16); s.append(lbl);
  }
  for (const e of es) {
    const c = svg('circle', { class: 'ev-' + e.kind, cx: x(Date.parse(e.time)), cy: 12 + lanes.indexOf(e.uuid) * lane, r: 4 });
    const tt = svg('title', {}); tt.textContent = fmtTime(e.time) + ' ' + e.kind + ' ' + e.uuid + ' ' + e.address + (e.detail ? ' ' + e.detail : '');
    c.append(tt); s.append(c);
  }
  document.getElementById('timeline').replaceChildren(s);
}

function fillPairSelects(peers) {
  for (const [id, key] of [['hsrc', 'src'], ['hdst', 'dst']]) {
    const sel = document.getElementById(id);
    const cur = state[key];
    sel.replaceChildren(el('option', { value: '', text: '—' }), ...peers.map(p => el('option', { value: p, text: short(p) })));
    sel.value = peers.includes(cur) ? cur : '';
    state[key] = sel.value;
  }
}

function selectPair(a, b) {
  state.src = a; state.dst = b;
  document.getElementById('hsrc').value = a;
  document.getElementById('hdst').value = b;
  document.querySelectorAll('#matrix td.sel').forEach(td => td.classList.remove('sel'));
  document.querySelectorAll('#matrix td').forEach(td => {
    if (td.dataset.from === a && td.dataset.to === b) td.classList.add('sel');
  });
  loadHistory();
}

function renderRanges() {
  const r = document.getElementById('ranges');
  r.replaceChildren(...RANGES.map(v => {
    const b = el('button', { type: 'button', class: v === state.range ? 'on' : '', 'data-range': v, text: v });
    b.addEventListener('click', () => { state.range = v; renderRanges(); loadHistory(); });
    return b;
  }));
}

async function loadHistory() {
  const plot = document.getElementById('plot'), info = document.getElementById('hinfo');
  if (!state.src || !state.dst || state.src === state.dst) {
    plot.replaceChildren(el('p', { class: 'empty', text: 'Pick a pair (or click a matrix cell).' }));
    info.textContent = '';
    return;
  }
  const q = new URLSearchParams({ mesh: state.mesh, src: state.src, dst: state.dst, range: state.range });
  const h = await getJSON('api/history?' + q);
  info.textContent = h.points.length + ' points, ' + (h.resolution_s / 60) + ' min each';
  plot.replaceChildren(drawHistory(h));
}

function drawHistory(h) {
  const W = 900, H = 260, L = 50, R = 50, T = 10, B = 24;
  const s = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, 'data-points': String(h.points.length) });
  const t0 = Date.parse(h.from), t1 = Date.parse(h.to);
  const x = t => L + (W - L - R) * (t - t0) / (t1 - t0);
  const pts = h.points.filter(p => p.reports > 0);
  const rttMax = Math.max(1, ...pts.map(p => p.rtt_max_ms));
  const lossMax = Math.max(1, ...pts.map(p => p.loss_pct));
  const y = v => H - B - (H - B - T) * v / rttMax;
  const yl = v => H - B - (H - B - T) * v / lossMax;
  for (let i = 0; i <= 4; i++) {
    const v = rttMax * i / 4;
    s.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    const a = svg('text', { x: 2, y: y(v) + 3 }); a.textContent = fmtMs(v) + ' ms'; s.append(a);
    const b = svg('text', { x: W - R + 4, y: yl(lossMax * i / 4) + 3 }); b.textContent = (lossMax * i / 4).toFixed(1) + ' %'; s.append(b);
  }
  for (let i = 0; i <= 6; i++) {
    const t = t0 + (t1 - t0) * i / 6;
    const iso = new Date(t).toISOString();
    const a = svg('text', { x: x(t) - 16, y: H - 6 });
    a.textContent = (t1 - t0 > 2 * 86400e3) ? iso.slice(5, 10) : iso.slice(11, 16);
    s.append(a);
  }
  s.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const bw = Math.max(1, (W - L - R) * h.resolution_s * 1000 / (t1 - t0) - 1);
  for (const p of pts) {
    const xs = x(Date.parse(p.time));
    if (p.loss_pct > 0) s.append(svg('rect', { class: 'loss', x: xs, y: yl(p.loss_pct), width: Math.max(1, Math.min(bw, W - R - xs)), height: H - B - yl(p.loss_pct) }));
  }
  if (pts.length) {
    const mid = p => x(Date.parse(p.time)) + bw / 2;
    const up = pts.map(p => mid(p) + ',' + y(p.rtt_max_ms)), down = pts.slice().reverse().map(p => mid(p) + ',' + y(p.rtt_min_ms));
    s.append(svg('polygon', { class: 'band', points: up.concat(down).join(' ') }));
    s.append(svg('polyline', { class: 'rtt', points: pts.map(p => mid(p) + ',' + y(p.rtt_avg_ms)).join(' ') }));
    for (const p of pts) {
      const c = svg('circle', { cx: mid(p), cy: y(p.rtt_avg_ms), r: 2, fill: '#1f3a60' });
      const tt = svg('title', {});
      tt.textContent = fmtTime(p.time) + ': RTT avg ' + fmtMs(p.rtt_avg_ms) + ' ms (min ' + fmtMs(p.rtt_min_ms) + ', max ' +
        fmtMs(p.rtt_max_ms) + '), loss ' + p.loss_pct.toFixed(2) + ' %, path ' + p.path;
      c.append(tt); s.append(c);
    }
  }
  return s;
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    await loadMeshes();
    const q = new URLSearchParams({ mesh: state.mesh });
    const d = await getJSON('api/mesh?' + q);
    renderMatrix(d.matrix);
    renderClients(d.clients);
    renderEvents(d.events, Date.parse(d.matrix.updated));
    fillPairSelects(d.matrix.peers);
    await loadHistory();
    document.body.dataset.loaded = String((Number(document.body.dataset.loaded) || 0) + 1);
    setStatus('updated ' + new Date().toISOString().slice(11, 19) + ' UTC');
  } catch (e) {
    setStatus(String(e.message || e), true);
  } finally {
    state.busy = false;
  }
}

function init() {
  renderLegend();
  renderRanges();
  document.getElementById('mesh').addEventListener('change', ev => {
    state.mesh = ev.target.value;
    state.src = state.dst = '';
    const u = new URL(location.href); u.searchParams.set('mesh', state.mesh); history.replaceState(null, '', u);
    refresh();
  });
  document.getElementById('hsrc').addEventListener('change', ev => { state.src = ev.target.value; loadHistory(); });
  document.getElementById('hdst').addEventListener('change', ev => { state.dst = ev.target.value; loadHistory(); });
  refresh();
  const ms = Number(document.body.dataset.refreshMs) || 2000;
  state.timer = setInterval(refresh, ms);
}
document.addEventListener('DOMContentLoaded', init);
