// The router's dashboard in a real headless browser: Debian's chromium driven
// by playwright-core. test_dashboard.c starts the stack (real Mosquitto, the
// simulator, router + local + relay) and runs this script with:
//   EC_DASH_URL    http://127.0.0.1:<port>/
//   EC_CLI         the edgecascade CLI, EC_CONFIG its config (to send queries)
//   EC_SCREENSHOT  where to save the screenshot (a test artefact)
// The page must show the numbers /api/stats returns, and follow new queries.
'use strict';

const { chromium } = require('playwright-core');
const { execFileSync } = require('child_process');

const URL_BASE = process.env.EC_DASH_URL;
const CLI = process.env.EC_CLI;
const CONFIG = process.env.EC_CONFIG;
const SHOT = process.env.EC_SCREENSHOT;

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function api(path) {
  const r = await fetch(new URL(path, URL_BASE));
  check(r.ok, path + ': HTTP ' + r.status);
  return r.json();
}

// The page's rendering of the numbers in s, as the dashboard formats them.
function expected(s) {
  const pct = (x) => x.toFixed(1) + ' %';
  const usd = (x) => '$' + x.toFixed(x !== 0 && Math.abs(x) < 0.01 ? 6 : 4);
  return {
    queries: String(s.queries),
    'pct-local': pct(s.pct_local),
    'pct-cloud': pct(s.pct_cloud),
    'pct-cache': pct(s.pct_cache),
    cost: usd(s.cost_usd),
    'cost-top': usd(s.cost_all_top_usd),
    savings: pct(s.savings_pct),
    'queue-depth': String(s.queue_depth),
    errors: String(s.errors),
  };
}

async function shown(page) {
  return page.evaluate((ids) => {
    const out = {};
    for (const id of ids) out[id] = document.getElementById(id).textContent;
    return out;
  }, ['queries', 'pct-local', 'pct-cloud', 'pct-cache', 'cost', 'cost-top', 'savings',
      'queue-depth', 'errors']);
}

// Waits until the page shows what /api/stats says (the page polls every
// second); returns the stats it matched.
async function pageMatchesApi(page, minQueries) {
  let last = null;
  for (let i = 0; i < 100; i++) {
    const s = await api('/api/stats');
    const want = expected(s);
    const got = await shown(page);
    last = { want, got };
    if (s.queries >= minQueries && JSON.stringify(want) === JSON.stringify(got)) return s;
    await page.waitForTimeout(100);
  }
  throw new Error('page does not show /api/stats: ' + JSON.stringify(last));
}

function ask(prompt) {
  execFileSync(CLI, ['--config', CONFIG, 'query', prompt], { stdio: ['ignore', 'ignore', 'inherit'],
                                                            timeout: 20000 });
}

async function main() {
  check(URL_BASE && CLI && CONFIG && SHOT, 'EC_DASH_URL, EC_CLI, EC_CONFIG, EC_SCREENSHOT needed');
  const args = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args });
  const errors = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    const resp = await page.goto(URL_BASE);
    check(resp && resp.status() === 200, 'GET / status ' + (resp && resp.status()));
    check((await page.title()) === 'edgecascade', 'title');

    // 1. the page shows the numbers /api/stats returns
    const before = await pageMatchesApi(page, 1);
    check(before.queries >= 4 && before.cloud >= 1 && before.local >= 1,
          'the stack should have answered local and cloud queries first: ' + JSON.stringify(before));
    check((await page.textContent('#site')) === before.site, 'site');
    check((await page.textContent('#version')) === before.version, 'version');
    // breakers, latency table, share bar, feed
    await page.waitForSelector('#breakers tr[data-tier="cloud"] .state.closed');
    await page.waitForSelector('#latency-table tr[data-tier="local"]');
    await page.waitForSelector('#latency-table tr[data-tier="cloud"]');
    check(await page.$('#share-chart rect[data-kind="local"]'), 'share bar: local');
    check(await page.$('#share-chart rect[data-kind="cloud"]'), 'share bar: cloud');
    const feedApi = (await api('/api/decisions?limit=25')).decisions;
    await page.waitForFunction((n) => document.querySelectorAll('#feed tbody tr[data-id]').length === n,
                               feedApi.length);
    const feedIds = await page.$$eval('#feed tbody tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
    check(JSON.stringify(feedIds) === JSON.stringify(feedApi.map((d) => d.id)),
          'feed ids ' + JSON.stringify(feedIds) + ' vs ' + JSON.stringify(feedApi.map((d) => d.id)));
    const reasons = await page.$$eval('#feed tbody tr td.reason', (tds) => tds.map((t) => t.textContent));
    check(reasons.some((r) => r.startsWith('accepted')), 'feed shows the reasons');

    // 2. more queries: the page follows
    ask('Is 25.04 mm within tolerance?'); // asked before: the cache answers
    ask('Is 25.10 mm within tolerance?');
    ask('Motor vibration is 13 mm/s, what now?');
    const after = await pageMatchesApi(page, before.queries + 3);
    check(after.queries === before.queries + 3, 'queries ' + after.queries);
    check(after.local === before.local + 1 && after.cloud === before.cloud + 1 &&
          after.cache === before.cache + 1,
          'local/cloud/cache after: ' + after.local + '/' + after.cloud + '/' + after.cache);
    const top = (await api('/api/decisions?limit=1')).decisions[0];
    await page.waitForFunction((id) => {
      const r = document.querySelector('#feed tbody tr[data-id]');
      return r && r.dataset.id === id;
    }, top.id);
    // the savings line has grown by a point per poll
    await page.waitForFunction(() => {
      const l = document.getElementById('savings-line');
      return l && l.getAttribute('points').split(' ').length >= 3;
    });
    await page.screenshot({ path: SHOT, fullPage: true });
    check(errors.length === 0, 'errors in the page: ' + errors.join('; '));
    console.log('dashboard OK: ' + after.queries + ' queries shown, screenshot ' + SHOT);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error('dashboard test FAILED: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
