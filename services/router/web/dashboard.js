// The router's dashboard: polls /api/stats and /api/decisions and draws them.
// Plain DOM and SVG, no framework. Every value from the router goes in through
// textContent (never innerHTML): reasons can carry a model's error text.
// Each number element also gets data-value with the raw number, which the
// browser test compares with /api/stats.
'use strict';

const POLL_MS = 1000;
const HISTORY = 600; // points of savings history kept in the page
const KINDS = ['local', 'cloud', 'cache', 'none'];
const COLORS = { local: '#2f9e6e', cloud: '#3b6fd8', cache: '#c08a1e', none: '#c0392b' };
const SVGNS = 'http://www.w3.org/2000/svg';
const history = [];
let lastOk = 0;

const $ = (id) => document.getElementById(id);

const fmt = {
  int: (n) => String(n),
  pct: (x) => x.toFixed(1) + ' %',
  usd: (x) => '$' + x.toFixed(x !== 0 && Math.abs(x) < 0.01 ? 6 : 4),
  ms: (x) => (x >= 1000 ? (x / 1000).toFixed(2) + ' s' : x.toFixed(1) + ' ms'),
  dur: (s) => {
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.floor(s / 60) + ' min';
    if (s < 172800) return Math.floor(s / 3600) + ' h';
    return Math.floor(s / 86400) + ' d';
  },
  time: (ms) => new Date(ms).toLocaleTimeString(),
};
window.ecFormat = fmt;

function setValue(id, raw, text) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = String(raw);
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function drawSavings() {
  const svg = $('savings-chart');
  clear(svg);
  const W = 400, H = 160, L = 30, R = 8, T = 8, B = 20;
  for (const v of [0, 50, 100]) {
    const y = T + (H - T - B) * (1 - v / 100);
    svg.appendChild(svgEl('line', { x1: L, x2: W - R, y1: y, y2: y, stroke: '#e2e5ea' }));
    svg.appendChild(svgEl('text', { x: L - 4, y: y + 3, 'text-anchor': 'end' }, v + '%'));
  }
  if (!history.length) return;
  const t0 = history[0].t, t1 = history[history.length - 1].t;
  const span = Math.max(t1 - t0, 1);
  const pts = history.map((p) => {
    const x = L + (W - L - R) * (history.length === 1 ? 1 : (p.t - t0) / span);
    const y = T + (H - T - B) * (1 - Math.max(0, Math.min(100, p.savings)) / 100);
    return x.toFixed(1) + ',' + y.toFixed(1);
  });
  svg.appendChild(svgEl('polyline', { points: pts.join(' '), fill: 'none', stroke: COLORS.local,
                                      'stroke-width': 2, id: 'savings-line' }));
  const last = pts[pts.length - 1].split(',');
  svg.appendChild(svgEl('circle', { cx: last[0], cy: last[1], r: 3, fill: COLORS.local }));
  svg.appendChild(svgEl('text', { x: L, y: H - 4 }, fmt.time(t0)));
  svg.appendChild(svgEl('text', { x: W - R, y: H - 4, 'text-anchor': 'end' }, fmt.time(t1)));
}

function drawShare(s) {
  const svg = $('share-chart');
  const legend = $('share-legend');
  clear(svg);
  clear(legend);
  const counts = { local: s.local, cloud: s.cloud, cache: s.cache, none: s.errors };
  const total = s.queries || 0;
  let x = 0;
  for (const k of KINDS) {
    const n = counts[k] || 0;
    const w = total ? (400 * n) / total : 0;
    if (w > 0) {
      svg.appendChild(svgEl('rect', { x, y: 10, width: w, height: 34, fill: COLORS[k],
                                      'data-kind': k }));
      if (w > 40)
        svg.appendChild(svgEl('text', { x: x + w / 2, y: 31, 'text-anchor': 'middle',
                                        style: 'fill:#fff;font-size:11px' },
                              fmt.pct((100 * n) / total)));
    }
    x += w;
    const item = document.createElement('span');
    const sw = document.createElement('i');
    sw.style.background = COLORS[k];
    item.appendChild(sw);
    item.appendChild(document.createTextNode((k === 'none' ? 'error' : k) + ' ' + n));
    legend.appendChild(item);
  }
  if (!total) svg.appendChild(svgEl('text', { x: 200, y: 31, 'text-anchor': 'middle' }, 'no queries yet'));
}

function drawLatency(s) {
  const svg = $('latency-chart');
  clear(svg);
  const h = s.latency_histogram;
  const W = 400, H = 170, L = 8, B = 34, T = 6;
  const le = h.le_ms;
  const nb = le.length + 1;
  const bw = (W - 2 * L) / nb;
  let max = 1;
  for (const k of KINDS) for (const c of h[k] || []) max = Math.max(max, c);
  // one group of bars per bucket, one bar per tier kind
  for (let i = 0; i < nb; i++) {
    KINDS.forEach((k, j) => {
      const c = (h[k] || [])[i] || 0;
      if (!c) return;
      const bh = ((H - B - T) * c) / max;
      svg.appendChild(svgEl('rect', { x: L + i * bw + (j * bw) / KINDS.length, y: H - B - bh,
                                      width: bw / KINDS.length, height: bh, fill: COLORS[k] },
                            undefined));
    });
    if ((i % 3 === 0 && i < nb - 2) || i === nb - 1) {
      const label = i < le.length ? (le[i] >= 1000 ? le[i] / 1000 + 's' : le[i] + '') : '+∞';
      svg.appendChild(svgEl('text', { x: L + i * bw + bw / 2, y: H - B + 12, 'text-anchor': 'middle' },
                            label));
    }
  }
  svg.appendChild(svgEl('text', { x: W / 2, y: H - 6, 'text-anchor': 'middle' },
                        'upper bound of the bucket (ms unless marked s)'));
  const tbody = $('latency-table').tBodies[0];
  clear(tbody);
  for (const k of KINDS) {
    const l = s.latency_ms[k];
    if (!l || !l.count) continue;
    const tr = document.createElement('tr');
    tr.dataset.tier = k;
    cell(tr, k === 'none' ? 'error' : k, 'tier ' + k);
    cell(tr, fmt.int(l.count), 'num');
    cell(tr, fmt.ms(l.p50), 'num');
    cell(tr, fmt.ms(l.p95), 'num');
    tbody.appendChild(tr);
  }
}

function drawBreakers(s) {
  const tbody = $('breakers').tBodies[0];
  clear(tbody);
  const names = Object.keys(s.breakers || {});
  if (!names.length) {
    const tr = document.createElement('tr');
    const td = cell(tr, 'no breaker reported yet (the relay announces them)', 'empty');
    td.colSpan = 4;
    tbody.appendChild(tr);
    return;
  }
  for (const name of names) {
    const b = s.breakers[name];
    const tr = document.createElement('tr');
    tr.dataset.tier = name;
    cell(tr, name);
    const st = document.createElement('span');
    st.className = 'state ' + b.state;
    st.textContent = b.state;
    const td = document.createElement('td');
    td.appendChild(st);
    tr.appendChild(td);
    cell(tr, b.since_ms ? fmt.time(b.since_ms) : '–');
    cell(tr, b.reason || '', 'reason');
    tbody.appendChild(tr);
  }
}

function drawFeed(decisions) {
  const tbody = $('feed').tBodies[0];
  clear(tbody);
  for (const d of decisions) {
    const tr = document.createElement('tr');
    tr.dataset.id = d.id;
    const kind = d.tier || 'none';
    cell(tr, fmt.time(d.ts_ms));
    cell(tr, d.id + (d.revision > 1 ? ' (rev ' + d.revision + ')' : ''));
    cell(tr, d.tier ? d.tier + (d.degraded ? ' (degraded)' : '') : 'error', 'tier ' + kind);
    cell(tr, d.model || '–');
    cell(tr, d.confidence === null ? '–' : d.confidence.toFixed(2) + ' / ' + d.threshold.toFixed(2), 'num');
    cell(tr, fmt.ms(d.latency_ms), 'num');
    cell(tr, fmt.usd(d.cost_usd), 'num');
    cell(tr, (d.error ? d.error + ': ' : '') + d.reason, 'reason');
    tbody.appendChild(tr);
  }
  if (!decisions.length) {
    const tr = document.createElement('tr');
    const td = cell(tr, 'no decisions since the router started', 'empty');
    td.colSpan = 8;
    tbody.appendChild(tr);
  }
}

function render(s) {
  $('site').textContent = s.site;
  $('version').textContent = s.version;
  $('uptime').textContent = fmt.dur(s.uptime_s);
  setValue('queries', s.queries, fmt.int(s.queries));
  setValue('pct-local', s.pct_local, fmt.pct(s.pct_local));
  setValue('pct-cloud', s.pct_cloud, fmt.pct(s.pct_cloud));
  setValue('pct-cache', s.pct_cache, fmt.pct(s.pct_cache));
  setValue('cost', s.cost_usd, fmt.usd(s.cost_usd));
  setValue('cost-top', s.cost_all_top_usd, fmt.usd(s.cost_all_top_usd));
  setValue('savings', s.savings_pct, fmt.pct(s.savings_pct));
  setValue('queue-depth', s.queue_depth === null ? '' : s.queue_depth,
           s.queue_depth === null ? '–' : fmt.int(s.queue_depth));
  setValue('errors', s.errors, fmt.int(s.errors));
  const last = history[history.length - 1];
  if (!last || last.t !== s.ts_ms) {
    history.push({ t: s.ts_ms, savings: s.savings_pct });
    if (history.length > HISTORY) history.shift();
  }
  drawSavings();
  drawShare(s);
  drawLatency(s);
  drawBreakers(s);
}

async function getJson(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

async function poll() {
  const status = $('status');
  try {
    const [s, d] = await Promise.all([getJson('/api/stats'), getJson('/api/decisions?limit=25')]);
    render(s);
    drawFeed(d.decisions);
    lastOk = Date.now();
    status.textContent = 'live · updated ' + fmt.time(lastOk);
    status.className = 'status';
    document.body.dataset.updated = String(s.ts_ms);
  } catch (e) {
    status.textContent = 'router unreachable (' + e.message + ')' +
      (lastOk ? ' · last update ' + fmt.time(lastOk) : '');
    status.className = 'status stale';
  }
  setTimeout(poll, POLL_MS);
}

poll();
