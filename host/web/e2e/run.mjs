// End-to-end: the app in headless Chromium (Debian's, driven by playwright-core)
// against a real `ham` on a free port with a temporary SQLite database.
//
//   cargo build -p ham-host && npm run test:e2e      (from host/web)
//
// HAM_BIN overrides the binary (default target/debug/ham), CHROMIUM the browser
// (default /usr/bin/chromium). Screenshots land in target/e2e-artifacts/ (phone
// sizes as phone-<width>-*.png, light and dark), with axe.json: the axe-core scan
// of every screen in both colour schemes. The last line is
// `e2e: N passed, N failed`; the exit code is non-zero when any failed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const root = resolve(webDir, '../..');
const bin = process.env.HAM_BIN ?? join(root, 'target/debug/ham');
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const artifacts = join(root, 'target/e2e-artifacts');
const ADMIN_TOKEN = 'e2e-admin-token';
const USER = 'e2e-user';
const PASSWORD = 'a long e2e password';
const PHONES = [390, 320];
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const axeResults = [];

const results = [];
const children = [];
const temp = mkdtempSync(join(tmpdir(), 'ham-e2e-'));
let failedHard = false;

function log(...args) {
  console.log(...args);
}

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

async function waitFor(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function start(cmd, args, env) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  children.push(child);
  return { child, output: () => output };
}

function hasSubcommand(name) {
  const r = spawnSync(bin, [name, '--help'], { encoding: 'utf8' });
  return r.status === 0;
}

/** The example plugin's component, built if missing. */
function wasiProxy() {
  const file = join(root, 'target/wasm/wasm32-wasip2/plugin/wasi_proxy.wasm');
  if (!existsSync(file)) {
    log('building examples/wasi-proxy …');
    const r = spawnSync('cargo', ['build', '--profile', 'plugin', '--target', 'wasm32-wasip2', '-p', 'wasi-proxy', '--target-dir', 'target/wasm'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('building examples/wasi-proxy failed');
  }
  return readFileSync(file);
}

/** The same component with a custom section appended: same behaviour, new sha256. */
function rebuilt(component, tag) {
  const name = Buffer.from('ham-test');
  const payload = Buffer.concat([Buffer.from([name.length]), name, Buffer.from(tag)]);
  return Buffer.concat([component, Buffer.from([0, payload.length]), payload]);
}

async function step(name, page, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    log(`FAIL ${name}: ${e?.stack ?? e}`);
    try {
      await page.screenshot({ path: join(artifacts, `FAILED-${name.replace(/\W+/g, '-')}.png`), fullPage: true });
    } catch {
      // the page may be gone
    }
  }
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  expect(existsSync(bin), `no ${bin}: build it with \`cargo build -p ham-host\` (or set HAM_BIN)`);
  expect(existsSync(browserPath), `no ${browserPath}: apt-get install -y chromium (or set CHROMIUM)`);
  const component = wasiProxy();

  // The fake LLM provider, when this binary has it.
  const env = {
    HAM_DATA_DIR: join(temp, 'data'),
    HAM_ADMIN_TOKEN: ADMIN_TOKEN,
    HAM_LOG: 'warn',
    // The Strava plugin configured (its rules need no Strava); any call it made
    // would go to a closed loopback port, never outside.
    HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID: '12345',
    HAM_PLUGIN_STRAVA_SYNC_CLIENT_SECRET: 'e2e-client-secret',
    HAM_PLUGIN_STRAVA_SYNC_VERIFY_TOKEN: 'e2e-verify-token',
    HAM_PLUGIN_STRAVA_SYNC_API_BASE_URL: 'http://127.0.0.1:9/api/v3',
    HAM_PLUGIN_STRAVA_SYNC_OAUTH_BASE_URL: 'http://127.0.0.1:9/oauth',
  };
  let fakeLlm = null;
  expect(hasSubcommand('fake-llm'), `${bin} has no fake-llm subcommand`);
  {
    const port = await freePort();
    const reply = 'Keep the streak going: floss tonight and drink two litres tomorrow.';
    const llm = start(bin, ['fake-llm', '--addr', `127.0.0.1:${port}`, '--provider', 'anthropic', '--reply', reply, '--delay-ms', '40']);
    await waitFor(() => /https?:\/\/\S+/.test(llm.output()), 'the fake LLM to print its URL', 20_000);
    const url = /https?:\/\/\S+/.exec(llm.output())[0];
    fakeLlm = { url, reply };
    Object.assign(env, { HAM_LLM_PROVIDER: 'anthropic', ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: 'fake', HAM_LLM_MODEL: 'fake-model' });
  }

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const ham = start(bin, ['serve'], { ...env, HAM_ADDR: `127.0.0.1:${port}` });
  try {
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, 'ham to answer /healthz', 60_000);
  } catch (e) {
    log(ham.output());
    throw e;
  }
  log(`ham at ${base} (data in ${temp})`);

  // A fresh profile per run (launchPersistentContext owns --user-data-dir).
  const context = await chromium.launchPersistentContext(join(temp, 'chromium'), {
    executablePath: browserPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    baseURL: base,
    acceptDownloads: true,
    viewport: { width: 1100, height: 800 },
  });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const shot = async (name) => {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  };
  const api = async (path) => {
    const r = await page.request.get(path);
    return { status: r.status(), body: r.status() === 204 ? null : await r.json().catch(() => null) };
  };
  const hasStats = async () => (await api('/api/habits/stats')).status === 200;
  let today = '';
  const dayLabel = (date) => {
    const t = new Date(date + 'T00:00:00Z');
    return `${['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][t.getUTCDay()]} ${t.getUTCDate()} ${['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][t.getUTCMonth()]}`;
  };
  const addDays = (date, n) => new Date(Date.parse(date + 'T00:00:00Z') + n * 86_400_000).toISOString().slice(0, 10);
  const habitId = async (name) => (await api('/api/habits')).body.habits.find((h) => h.name === name)?.id;
  const entries = async (name) => (await api(`/api/habits/${await habitId(name)}/entries`)).body.entries;

  const entryOn = async (name, date) => (await entries(name)).find((x) => x.date === date);
  const putEntry = async (name, date, body) => {
    const r = await page.request.put(`/api/habits/${await habitId(name)}/entries/${date}`, { data: body });
    expect(r.ok(), `PUT ${name} ${date}: ${r.status()}`);
  };
  /** A screen is ready when its heading is there and nothing is loading. */
  const ready = async (p = page) => {
    await p.locator('main h1').first().waitFor();
    await p.waitForFunction(() => !document.querySelector('.skeleton'));
  };
  const go = async (path, p = page) => {
    await p.goto(path);
    await ready(p);
  };
  const openMore = async () => {
    await page.getByRole('link', { name: 'More' }).click();
    await page.getByRole('heading', { name: 'More', level: 1 }).waitFor();
  };
  /** An axe-core scan in both colour schemes; serious and critical violations fail. */
  const axeScan = async (p, screen) => {
    const failures = [];
    for (const scheme of ['light', 'dark']) {
      await p.emulateMedia({ colorScheme: scheme });
      if (!(await p.evaluate(() => typeof window.axe !== 'undefined'))) await p.evaluate(`${axeSource}\n;void 0`);
      const scan = await p.evaluate(async () => {
        const result = await window.axe.run(document, { resultTypes: ['violations'] });
        const violations = result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' ')) }));
        const review = result.incomplete.map((v) => ({ id: v.id, nodes: v.nodes.slice(0, 6).map((n) => `${n.target.join(' ')}: ${(n.any[0]?.message ?? '').slice(0, 120)}`) }));
        return { violations, passed: result.passes.length, review };
      });
      const { violations, passed, review } = scan;
      const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      axeResults.push({ screen, scheme, violations, passed, review });
      const detail = bad.map((v) => `${v.id} (${v.impact}) at ${v.nodes.join(', ')}`).join('; ');
      log(`  axe ${screen}, ${scheme}: ${passed} rules pass, ${violations.length} violations (${bad.length} serious or critical)${bad.length ? ': ' + detail : ''}${review.length ? `; to review by hand: ${review.map((r) => r.id).join(', ')}` : ''}`);
      if (bad.length) failures.push(`${screen} (${scheme}): ${detail}`);
    }
    await p.emulateMedia({ colorScheme: 'light' });
    return failures;
  };
  const todayControl = (name) => page.getByRole('button', { name: `${name}: done today` });
  const measureControl = (name) => page.getByRole('button', { name: new RegExp(`^${name} today: `) });
  const dialog = () => page.getByRole('dialog');
  const phoneShot = async (width, name) => {
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      await shot(`phone-${width}-${name}-${scheme}`);
    }
    await page.emulateMedia({ colorScheme: 'light' });
  };

  await step('first run: register the first account', page, async () => {
    const t0 = Date.now();
    await page.goto('/');
    await page.getByLabel('Username').waitFor();
    log(`  sign-in screen usable after ${Date.now() - t0} ms`);
    await page.getByRole('heading', { name: /create the first account/i }).waitFor();
    await page.getByLabel('Username').fill(USER);
    await page.getByLabel('Password').fill(PASSWORD);
    await shot('01-register');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Today' }).waitFor();
    today = (await api('/api/me')).body.today;
    expect(/^\d{4}-\d{2}-\d{2}$/.test(today), `no today from /api/me: ${today}`);
    await page.getByText('No habits yet').waitFor();
    await shot('02-today-empty');
  });

  await step('create a yes/no habit', page, async () => {
    await page.getByRole('button', { name: 'New habit' }).click();
    await page.getByLabel('Name').fill('Floss teeth');
    await page.getByRole('button', { name: 'Add a reminder' }).click();
    await page.getByLabel('Reminder 1 time').fill('21:30');
    await page.getByRole('button', { name: 'Saturday, reminder 1' }).click();
    await shot('03-habit-form');
    await page.getByRole('button', { name: 'Create habit' }).click();
    await todayControl('Floss teeth').waitFor();
  });

  await step('create a measurable habit (and see a validation error first)', page, async () => {
    await page.getByRole('button', { name: 'New habit' }).click();
    await page.getByLabel('Name').fill('Water');
    await page.getByLabel('Measurable (a number)').check();
    await page.getByRole('button', { name: 'Create habit' }).click();
    await page.getByText('Enter a target number.').waitFor();
    await page.getByLabel('Target', { exact: true }).fill('2');
    await page.getByLabel('Unit').fill('l');
    // No blank gaps under the goal's fields: each label sits on its input.
    const gap = await page.evaluate(() => {
      const label = document.querySelector('label[for="habit-unit"]').getBoundingClientRect();
      const input = document.getElementById('habit-unit').getBoundingClientRect();
      return input.top - label.bottom;
    });
    expect(gap >= 0 && gap < 12, `${gap} px between the Unit label and its field`);
    await page.getByRole('button', { name: 'Create habit' }).click();
    await measureControl('Water').waitFor();
    const water = (await api('/api/habits')).body.habits.find((h) => h.name === 'Water');
    expect(water?.kind === 'measurable' && water.target?.value === 2 && water.unit === 'l', `Water is ${JSON.stringify(water)}`);
  });

  await step('check in today; streak and score change', page, async () => {
    const statsBefore = (await hasStats()) ? (await api('/api/habits/stats')).body : null;
    const box = todayControl('Floss teeth');
    expect((await box.getAttribute('aria-pressed')) === 'false', 'Floss teeth starts done');
    await Promise.all([page.waitForResponse((r) => r.url().includes('/entries/') && r.request().method() === 'PUT'), box.click()]);
    expect((await box.getAttribute('aria-pressed')) === 'true', 'the control did not stay done');
    const e = await entries('Floss teeth');
    expect(e.some((x) => x.date === today && x.status === 'done'), `no done entry today: ${JSON.stringify(e)}`);
    // The measurable one by value, from the keyboard, in the day editor.
    await measureControl('Water').click();
    await dialog().getByLabel('Amount (l)').fill('2.5');
    await dialog().getByLabel('Amount (l)').press('Enter');
    await dialog().waitFor({ state: 'detached' });
    await waitFor(async () => (await entries('Water')).some((x) => x.date === today && x.value === 2.5), 'the Water entry');
    await page.getByRole('button', { name: 'Water today: 2.5 l, goal ≥ 2 l. Change' }).waitFor();
    if (statsBefore) {
      const row = page.getByRole('listitem').filter({ has: todayControl('Floss teeth') });
      await row.getByTestId('streak').filter({ hasText: '1-day streak' }).waitFor({ timeout: 10_000 });
      const after = (await api('/api/habits/stats')).body.stats;
      const id = await habitId('Floss teeth');
      const before = statsBefore.stats.find((s) => s.habit_id === id);
      const now = after.find((s) => s.habit_id === id);
      expect(now && now.current_streak === 1, `streak after check-in: ${JSON.stringify(now)}`);
      expect(!before || now.score > before.score, `score did not rise: ${JSON.stringify(before)} -> ${JSON.stringify(now)}`);
      log(`  stats: streak ${before?.current_streak ?? 0} -> ${now.current_streak}, score ${before?.score ?? 0} -> ${now.score}`);
      // No "0-day streak" anywhere.
      expect((await page.getByText('0-day streak').count()) === 0, 'a 0-day streak is shown');
    } else {
      log('  /api/habits/stats is not on this server: streak and score not asserted (entries were)');
    }
    await page.getByTestId('day-summary').filter({ hasText: 'All 2 done' }).waitFor();
    await shot('04-today');
  });

  await step('toggle past days from the week row (keyboard too); skip in the editor', page, async () => {
    const yesterday = addDays(today, -1);
    const cell = page.getByRole('button', { name: `Floss teeth, ${dayLabel(yesterday)}: not checked in` });
    await cell.click();
    await page.getByRole('button', { name: `Floss teeth, ${dayLabel(yesterday)}: done` }).waitFor();
    await waitFor(async () => (await entries('Floss teeth')).some((x) => x.date === yesterday && x.status === 'done'), 'yesterday done');
    // Two days ago: Enter on the focused cell marks it done; the editor (right
    // click, or a long press on a phone) skips it.
    const before = addDays(today, -2);
    const cell2 = page.getByRole('button', { name: new RegExp(`^Floss teeth, ${dayLabel(before)}: `) });
    await cell2.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: `Floss teeth, ${dayLabel(before)}: done` }).waitFor();
    await cell2.click({ button: 'right' });
    await dialog().getByRole('radio', { name: 'Skipped' }).check();
    await dialog().getByRole('button', { name: 'Save' }).click();
    await page.getByRole('button', { name: `Floss teeth, ${dayLabel(before)}: skipped` }).waitFor();
    await waitFor(async () => (await entries('Floss teeth')).some((x) => x.date === before && x.status === 'skipped'), 'two days ago skipped');
    if (await hasStats()) {
      // Today and yesterday done, the day before skipped: under the bundled
      // (Loop) rules the skip keeps the streak and counts as one of its days.
      const id = await habitId('Floss teeth');
      let streak = 0;
      await waitFor(async () => {
        streak = (await api('/api/habits/stats')).body.stats.find((x) => x.habit_id === id)?.current_streak ?? 0;
        return streak >= 2;
      }, 'a streak of 2 or more', 10_000);
      const row = page.getByRole('listitem').filter({ has: todayControl('Floss teeth') });
      await row.getByTestId('streak').filter({ hasText: `${streak}-day streak` }).waitFor({ timeout: 10_000 });
      if (streak === 3) await row.getByTestId('streak').filter({ hasText: 'incl. 1 skip' }).waitFor();
      log(`  streak after toggling past days: ${streak} (${await row.getByTestId('streak').textContent()})`);
    }
    await shot('05-today-week');
    await page.setViewportSize({ width: 360, height: 740 });
    await shot('06-today-360px');
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow <= 0, `the page scrolls sideways at 360 px by ${overflow} px`);
    await page.setViewportSize({ width: 1100, height: 800 });
  });

  await step('habit detail: heat-map, entries, edit and archive (with undo)', page, async () => {
    await page.getByRole('link', { name: 'Floss teeth' }).click();
    await page.getByRole('heading', { name: 'Floss teeth', level: 1 }).waitFor();
    await page.getByRole('img', { name: 'Check-ins over the last year' }).waitFor();
    await page.locator('.entry-date', { hasText: dayLabel(today) }).waitFor();
    if (await hasStats()) await page.getByTestId('detail-streak').filter({ hasText: /^[1-9]\d* days?$/ }).waitFor();
    await page.getByText('keep a streak going').first().waitFor();
    await page.getByLabel('Note').fill('after dinner');
    await page.getByRole('button', { name: 'Save entry' }).click();
    await page.locator('.entry-note', { hasText: 'after dinner' }).waitFor();
    // The heat-map opens at today: scrolled to its right end.
    const scrolled = await page.evaluate(() => {
      const el = document.querySelector('.heatmap-scroll');
      return el.scrollWidth <= el.clientWidth || el.scrollLeft + el.clientWidth >= el.scrollWidth - 2;
    });
    expect(scrolled, 'the heat-map does not open at today');
    // The score range switch.
    await page.getByRole('button', { name: 'Year', exact: true }).click();
    await page.getByRole('button', { name: 'Year', pressed: true }).waitFor();
    await shot('07-habit-detail');
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    await page.getByLabel('Name').fill('Floss teeth');
    await page.getByLabel('Some days a week').check();
    await page.getByLabel('Times a week').fill('6');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByText('6 times a week').first().waitFor();
    await page.getByRole('button', { name: 'Archive', exact: true }).click();
    await page.getByText('Archived', { exact: true }).waitFor();
    // Archive can be undone from its toast.
    await page.getByTestId('toast').getByRole('button', { name: 'Undo' }).click();
    await page.getByRole('button', { name: 'Archive', exact: true }).waitFor();
    await waitFor(async () => (await api('/api/habits')).body.habits.some((h) => h.name === 'Floss teeth'), 'Floss teeth back on Today');
    // And found again from the Archived screen.
    await page.getByRole('button', { name: 'Archive', exact: true }).click();
    await page.getByRole('button', { name: 'Unarchive' }).waitFor();
    await openMore();
    await page.getByRole('link', { name: /^Archived habits/ }).click();
    await page.getByRole('heading', { name: 'Archived habits' }).waitFor();
    await shot('07b-archived');
    await page.getByRole('button', { name: 'Unarchive Floss teeth' }).click();
    await page.getByText('Nothing archived').waitFor();
    expect((await api('/api/habits')).body.habits.some((h) => h.name === 'Floss teeth'), 'Floss teeth is still archived');
    await page.getByRole('link', { name: 'Today' }).click();
    await todayControl('Floss teeth').waitFor();
  });

  await step('groups and order: a collapsible group on Today, habits arranged by keyboard and by drag', page, async () => {
    const water = await habitId('Water');
    await go(`/habits/${water}/edit`);
    await page.getByLabel(/^Group/).fill('Health');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Water', level: 1 }).waitFor();
    expect((await api(`/api/habits/${water}`)).body.group === 'Health', 'Water is not in Health');
    await go('/');
    await page.getByRole('button', { name: /^Health/, expanded: true }).click();
    await page.getByRole('button', { name: /^Health/, expanded: false }).waitFor();
    expect((await measureControl('Water').count()) === 0, 'a collapsed group still shows its habits');
    // The fold is remembered by this browser.
    await page.reload();
    await page.getByRole('button', { name: /^Health/, expanded: false }).waitFor();
    await todayControl('Floss teeth').waitFor();
    await page.getByRole('button', { name: /^Health/ }).click();
    await measureControl('Water').first().waitFor();

    const names = async () => (await api('/api/habits')).body.habits.map((h) => h.name);
    const before = await names();
    expect(before.length >= 2, `two habits to arrange, not ${before.length}`);
    const last = before[before.length - 1];
    await page.getByRole('link', { name: 'Arrange habits' }).click();
    await page.getByRole('heading', { name: 'Arrange habits' }).waitFor();
    // Keyboard: Home takes the focused habit to the top, and the focus stays on it.
    await page.getByRole('button', { name: new RegExp(`^Move ${last}, position ${before.length} of`) }).focus();
    await page.keyboard.press('Home');
    await waitFor(async () => (await names())[0] === last, `${last} first after Home`);
    await page.getByRole('button', { name: new RegExp(`^Move ${last}, position 1 of`) }).waitFor();
    const focused = await page.evaluate(() => document.activeElement?.getAttribute('aria-label') ?? '');
    expect(focused.startsWith(`Move ${last}, position 1`), `focus moved away from the handle: ${focused}`);
    await page.getByTestId('arrange-status').filter({ hasText: `${last}: position 1 of ${before.length}` }).waitFor();
    await shot('07c-arrange');
    // Drag: the handle of the first row, let go over the bottom of the last row.
    const handle = await page.getByRole('button', { name: new RegExp(`^Move ${last}, position 1 of`) }).boundingBox();
    const bottom = await page.locator('.arrange-row').last().boundingBox();
    await page.mouse.move(handle.x + handle.width / 2, handle.y + handle.height / 2);
    await page.mouse.down();
    await page.mouse.move(handle.x + handle.width / 2, bottom.y + bottom.height - 4, { steps: 10 });
    await page.mouse.up();
    await waitFor(async () => JSON.stringify(await names()) === JSON.stringify(before), `the drag puts ${last} back last`);
    // Reloaded, the screen shows the stored order.
    await page.reload();
    await page.getByRole('button', { name: new RegExp(`^Move ${last}, position ${before.length} of`) }).waitFor();
    await page.getByRole('link', { name: 'Today' }).click();
    await todayControl('Floss teeth').waitFor();
  });

  await step('make a weekday habit: first on Today on its weekdays, apart on the others', page, async () => {
    const weekday = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
    const isoToday = ((new Date(today + 'T00:00:00Z').getUTCDay() + 6) % 7) + 1;
    const tomorrow = (isoToday % 7) + 1;
    await page.getByRole('button', { name: 'New habit' }).click();
    await page.getByLabel('Name').fill('Gym');
    await page.getByLabel('On set weekdays').check();
    // The picker starts on Mo, We, Fr: make it today's weekday and tomorrow's.
    for (let d = 1; d <= 7; d++) {
      const button = page.getByRole('button', { name: weekday[d - 1], exact: true });
      const pressed = (await button.getAttribute('aria-pressed')) === 'true';
      if (pressed !== (d === isoToday || d === tomorrow)) await button.click();
    }
    await shot('07d-weekday-habit-form');
    await page.getByRole('button', { name: 'Create habit' }).click();
    await todayControl('Gym').waitFor();
    const id = await habitId('Gym');
    const gym = (await api(`/api/habits/${id}`)).body;
    const want = [isoToday, tomorrow].sort((a, b) => a - b);
    expect(JSON.stringify(gym.frequency) === JSON.stringify({ weekdays: want }), `Gym is due ${JSON.stringify(gym.frequency)}, not ${want}`);
    expect((await page.getByTestId('not-due').count()) === 0, 'a habit due today is listed as not due');
    const summary = await page.getByTestId('day-summary').textContent();
    const due = (await api('/api/habits')).body.habits.length;
    expect(summary.includes(`of ${due} done`) || summary.includes(`All ${due} done`), `the summary counts ${summary}, not ${due} habits due`);

    // Not due today any more: listed apart, below, and not counted.
    await go(`/habits/${id}/edit`);
    await page.getByRole('button', { name: weekday[isoToday - 1], exact: true }).click();
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Gym', level: 1 }).waitFor();
    const saved = (await api(`/api/habits/${id}`)).body.frequency;
    expect(JSON.stringify(saved) === JSON.stringify({ weekdays: [tomorrow] }), `Gym is due ${JSON.stringify(saved)}`);
    await go('/');
    await page.getByTestId('not-due').getByRole('button', { name: 'Gym: done today' }).waitFor();
    const after = await page.getByTestId('day-summary').textContent();
    expect(after.includes(`of ${due - 1} done`) || after.includes(`All ${due - 1} done`), `the summary still counts Gym: ${after}`);
    await shot('07e-today-not-due');
    const r = await page.request.delete(`/api/habits/${id}`);
    expect(r.status() === 204, `DELETE Gym: ${r.status()}`);
    await page.reload();
    await todayControl('Floss teeth').waitFor();
  });

  for (const width of PHONES) {
    // Each width works on its own past day of Water.
    const past = addDays(today, width === 390 ? -3 : -4);
    await step(`${width} px: weekday labels and every destination visible, nothing scrolls sideways`, page, async () => {
      await page.setViewportSize({ width, height: 800 });
      await go('/');
      const labels = page.getByTestId('day-label');
      expect((await labels.count()) === 7, `${await labels.count()} day labels`);
      for (let i = 0; i < 7; i++) {
        const label = labels.nth(i);
        const text = (await label.innerText()).replace(/\s+/g, ' ').trim();
        const box = await label.boundingBox();
        expect(/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{1,2}$/.test(text), `day label "${text}"`);
        expect(box && box.x >= 0 && box.x + box.width <= width && box.height > 0, `day label "${text}" is off screen: ${JSON.stringify(box)}`);
      }
      const tabs = page.getByTestId('nav-link');
      expect((await tabs.count()) === 5, `${await tabs.count()} tabs`);
      for (let i = 0; i < 5; i++) {
        const box = await tabs.nth(i).boundingBox();
        const name = await tabs.nth(i).innerText();
        expect(box && box.x >= 0 && box.x + box.width <= width + 0.5 && box.y + box.height <= 800.5, `tab ${name} is not on screen: ${JSON.stringify(box)}`);
      }
      const overflow = async () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect((await overflow()) <= 0, `Today scrolls sideways by ${await overflow()} px`);
      await phoneShot(width, 'today');
      await openMore();
      for (const name of [/^Settings/, /^Archived habits/, /^Plugins/]) {
        const box = await page.getByRole('link', { name }).boundingBox();
        expect(box && box.x >= 0 && box.x + box.width <= width, `${name} is not on screen`);
      }
      expect((await overflow()) <= 0, `More scrolls sideways by ${await overflow()} px`);
      await phoneShot(width, 'more');
    });

    await step(`${width} px: the today control's hit area is at least 44 x 44 px`, page, async () => {
      await go('/');
      const controls = page.getByTestId('today-control');
      expect((await controls.count()) === 2, `${await controls.count()} today controls`);
      for (let i = 0; i < 2; i++) {
        const box = await controls.nth(i).boundingBox();
        expect(box && box.width >= 44 && box.height >= 44, `a today control is ${box?.width} x ${box?.height}`);
      }
    });

    await step(`${width} px: a past value survives a tap and Escape; the editor changes it only on save`, page, async () => {
      await putEntry('Water', past, { value: 1.25 });
      await go('/');
      const cell = page.getByRole('button', { name: `Water, ${dayLabel(past)}: 1.25 l` });
      expect((await cell.innerText()).trim() === '1.25', `the cell shows "${await cell.innerText()}", not 1.25`);
      await cell.click();
      await dialog().waitFor();
      await page.keyboard.press('Escape');
      await dialog().waitFor({ state: 'detached' });
      expect((await entryOn('Water', past))?.value === 1.25, 'a tap and Escape changed the value');
      await cell.click();
      await dialog().getByRole('button', { name: '+0.25 l', exact: true }).click();
      expect((await dialog().getByLabel('Amount (l)').inputValue()) === '1.5', 'the quick amount did not add to 1.25');
      await phoneShot(width, 'day-editor');
      expect((await entryOn('Water', past))?.value === 1.25, 'the editor saved before Save');
      await dialog().getByRole('button', { name: 'Save' }).click();
      await waitFor(async () => (await entryOn('Water', past))?.value === 1.5, 'the saved 1.5');
      await page.getByRole('button', { name: `Water, ${dayLabel(past)}: 1.5 l` }).waitFor();
    });

    await step(`${width} px: the today control never replaces a typed value; undo restores`, page, async () => {
      await go('/');
      await measureControl('Water').click();
      await dialog().getByLabel('Amount (l)').fill('1.25');
      await dialog().getByRole('button', { name: 'Save' }).click();
      await waitFor(async () => (await entryOn('Water', today))?.value === 1.25, 'the typed 1.25');
      // A tap on the control opens the editor: it writes nothing.
      await measureControl('Water').click();
      await dialog().waitFor();
      await page.keyboard.press('Escape');
      await dialog().waitFor({ state: 'detached' });
      expect((await entryOn('Water', today))?.value === 1.25, 'the today control replaced 1.25');
      // A quick amount adds to it, never sets the target.
      await page.getByRole('button', { name: 'Add 0.25 l to Water today' }).click();
      await waitFor(async () => (await entryOn('Water', today))?.value === 1.5, '1.25 + 0.25');
      await page.getByTestId('toast').filter({ hasText: 'Water: 1.5 l today' }).waitFor();
      await phoneShot(width, 'toast');
      await page.getByTestId('toast').getByRole('button', { name: 'Undo' }).click();
      await waitFor(async () => (await entryOn('Water', today))?.value === 1.25, 'undo back to 1.25');
      await page.getByTestId('toast').filter({ hasText: 'Undone' }).waitFor();
      // A yes/no habit: undo brings back what a tap took away.
      const floss = todayControl('Floss teeth');
      await floss.click();
      await waitFor(async () => !(await entryOn('Floss teeth', today)), 'Floss teeth undone for today');
      await page.getByTestId('toast').getByRole('button', { name: 'Undo' }).click();
      await waitFor(async () => (await entryOn('Floss teeth', today))?.status === 'done', 'undo brings back done');
      expect((await entryOn('Floss teeth', today))?.note === 'after dinner', 'undo lost the note');
      await floss.and(page.locator('[aria-pressed="true"]')).waitFor();
    });

    await step(`${width} px: habit detail and form fit the screen`, page, async () => {
      await go(`/habits/${await habitId('Water')}`);
      await page.getByRole('img', { name: /^Score over time/ }).waitFor();
      const small = await page.evaluate(() => Math.min(...[...document.querySelectorAll('svg text')].map((t) => t.getBoundingClientRect().height)));
      expect(small >= 11, `a chart label is ${small} px tall`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow <= 0, `the detail page scrolls sideways by ${overflow} px`);
      await phoneShot(width, 'detail');
      await go(`/habits/${await habitId('Water')}/edit`);
      await phoneShot(width, 'form');
    });
  }
  await page.setViewportSize({ width: 1100, height: 800 });

  await step('reloading every client route serves the app; unknown paths get the not-found screen', page, async () => {
    const id = await habitId('Floss teeth');
    for (const path of ['/', '/today', '/habits/new', `/habits/${id}`, `/habits/${id}/edit`, '/archived', '/activities', '/strava', '/coach', '/coach/no-such-chat', '/settings', '/more', '/admin/plugins', '/admin/users']) {
      const response = await page.goto(path);
      expect(response.status() === 200, `${path}: ${response.status()}`);
      await page.locator('main h1').first().waitFor();
      const text = await page.locator('body').innerText();
      expect(!text.includes('{"error"') && !text.includes('Page not found'), `${path} did not render its screen`);
    }
    for (const path of ['/no-such-page', '/api/nothing-here', '/habits/x/y/z']) {
      const response = await page.goto(path);
      expect(response.status() === 404, `${path}: ${response.status()}`);
      await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    }
    await shot('17-not-found');
    // The old admin path goes to the new one; /plugins/ stays the plugins' prefix.
    const old = await page.goto('/plugins');
    expect(old.status() === 404, `/plugins: ${old.status()}`);
    await page.waitForURL('**/admin/plugins');
    await page.getByRole('heading', { name: 'Plugins', level: 1 }).waitFor();
    // Scripts keep the JSON 404.
    const fetched = await page.evaluate(async () => {
      const r = await fetch('/api/nothing-here');
      return { status: r.status, type: r.headers.get('content-type') };
    });
    expect(fetched.status === 404 && fetched.type.includes('json'), `fetch of an unknown API path: ${JSON.stringify(fetched)}`);
  });

  await step('first screen usable in under 1 s', page, async () => {
    await page.goto('/');
    await todayControl('Floss teeth').waitFor();
    await page.waitForFunction(() => !document.querySelector('.skeleton'));
    const ms = await page.evaluate(() => Math.round(performance.now()));
    log(`  Today usable (habits and their days loaded) ${ms} ms after navigation start`);
    writeFileSync(join(artifacts, 'first-screen.txt'), `${ms}\n`);
    expect(ms < 1000, `the first screen took ${ms} ms`);
  });

  let exported = { habits: 0, entries: 0 };
  await step('export JSON and CSV', page, async () => {
    await openMore();
    await page.getByRole('link', { name: /^Settings/ }).click();
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    await shot('08-settings');
    const [json] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export JSON' }).click()]);
    const doc = JSON.parse(readFileSync(await json.path(), 'utf8'));
    const names = doc.habits.map((h) => h.name).sort();
    expect(doc.format === 'ham-export' && names.join() === 'Floss teeth,Water', `export: ${JSON.stringify(names)}`);
    const floss = doc.habits.find((h) => h.name === 'Floss teeth');
    expect(floss.entries.length === 3, `Floss teeth exported ${floss.entries.length} entries`);
    exported = { habits: doc.habits.length, entries: doc.habits.reduce((n, h) => n + h.entries.length, 0) };
    const [csv] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Export CSV' }).click()]);
    const text = readFileSync(await csv.path(), 'utf8');
    expect(text.split('\n')[0].includes('record') && text.includes('Floss teeth'), `csv: ${text.slice(0, 200)}`);
    writeFileSync(join(temp, 'export.json'), JSON.stringify(doc));
  });

  await step('upload a plugin version and see it listed', page, async () => {
    await openMore();
    await page.getByRole('link', { name: /^Plugins/ }).click();
    await page.getByRole('heading', { name: 'Plugins', level: 1 }).waitFor();
    expect(new URL(page.url()).pathname === '/admin/plugins', `plugins at ${page.url()}`);
    await page.getByRole('heading', { name: 'hello' }).waitFor();
    const upload = async (version, bytes) => {
      await page.getByLabel('Manifest (plugin.toml)').setInputFiles({ name: 'plugin.toml', mimeType: 'text/plain', buffer: Buffer.from(`name = "e2e-proxy"\nversion = "${version}"\n`) });
      await page.getByLabel('Component (.wasm)').setInputFiles({ name: 'wasi_proxy.wasm', mimeType: 'application/wasm', buffer: bytes });
      await page.getByRole('button', { name: 'Upload' }).click();
      await page.getByText(`Installed e2e-proxy ${version}`).waitFor();
    };
    await upload('0.1.0', component);
    await page.getByRole('heading', { name: 'e2e-proxy' }).waitFor();
    await upload('0.2.0', rebuilt(component, 'v2'));
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'e2e-proxy' }) });
    await card.getByTestId('active-version').filter({ hasText: '0.2.0' }).waitFor();
    const served = await page.request.get('/plugins/e2e-proxy/hi');
    expect((await served.text()).includes('wasi-proxy saw GET /hi'), 'the uploaded plugin does not serve');
    await card.getByRole('button', { name: 'Versions of e2e-proxy' }).click();
    await card.getByRole('row').nth(2).waitFor();
    await shot('09-plugins');
  });

  await step('roll a plugin back (confirmed first)', page, async () => {
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'e2e-proxy' }) });
    await card.getByRole('button', { name: 'Roll back e2e-proxy' }).click();
    await dialog().getByRole('heading', { name: 'Roll back e2e-proxy?' }).waitFor();
    await dialog().getByRole('button', { name: 'Cancel' }).click();
    await dialog().waitFor({ state: 'detached' });
    await card.getByTestId('active-version').filter({ hasText: '0.2.0' }).waitFor();
    await card.getByRole('button', { name: 'Roll back e2e-proxy' }).click();
    await dialog().getByRole('button', { name: 'Roll back' }).click();
    await card.getByTestId('active-version').filter({ hasText: '0.1.0' }).waitFor();
    await card.getByRole('row', { name: /0\.1\.0.*active/ }).waitFor();
  });

  await step('roll a version out to a canary share and abort it (confirmed first)', page, async () => {
    const card = page.getByRole('listitem').filter({ has: page.getByRole('heading', { name: 'e2e-proxy' }) });
    await page.getByLabel('Manifest (plugin.toml)').setInputFiles({ name: 'plugin.toml', mimeType: 'text/plain', buffer: Buffer.from('name = "e2e-proxy"\nversion = "0.3.0"\n') });
    await page.getByLabel('Component (.wasm)').setInputFiles({ name: 'wasi_proxy.wasm', mimeType: 'application/wasm', buffer: rebuilt(component, 'v3') });
    await page.getByLabel(/^Canary %/).fill('50');
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByText('Rolling out e2e-proxy 0.3.0').waitFor();
    const rollout = card.getByTestId('rollout');
    await rollout.and(page.locator('[data-state="canary"]')).waitFor();
    await rollout.getByText('0.3.0 serves 50 % beside 0.1.0').waitFor();
    await rollout.getByRole('row', { name: /0\.3\.0 \(candidate\)/ }).waitFor();
    await card.getByTestId('active-version').filter({ hasText: '0.1.0' }).waitFor();
    await shot('09b-plugins-rollout');
    await rollout.getByRole('button', { name: 'Abort the rollout of e2e-proxy 0.3.0' }).click();
    await dialog().getByRole('button', { name: 'Abort' }).click();
    await rollout.and(page.locator('[data-state="aborted"]')).waitFor();
    await rollout.getByText('0.3.0 was aborted by an admin; 0.1.0 serves everyone.').waitFor();
  });

  await step('a bad upload shows the server error', page, async () => {
    const manifest = 'name = "e2e-bad"\nversion = "0.1.0"\n';
    const form = new FormData();
    form.append('manifest', new Blob([manifest]), 'plugin.toml');
    form.append('component', new Blob([Buffer.from('this is not wasm')]), 'bad.wasm');
    const direct = await fetch(`${base}/api/admin/plugins/e2e-bad`, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: form });
    const serverMessage = (await direct.json()).error.message;
    expect(direct.status === 422 && serverMessage, `the server took a bad component: ${direct.status}`);
    await page.getByLabel('Manifest (plugin.toml)').setInputFiles({ name: 'plugin.toml', mimeType: 'text/plain', buffer: Buffer.from(manifest) });
    await page.getByLabel('Component (.wasm)').setInputFiles({ name: 'bad.wasm', mimeType: 'application/wasm', buffer: Buffer.from('this is not wasm') });
    await page.getByRole('button', { name: 'Upload' }).click();
    const alert = page.getByTestId('upload-error');
    await alert.filter({ hasText: serverMessage }).waitFor();
    log(`  shown: ${await alert.textContent()}`);
    await shot('10-plugins-bad-upload');
  });

  await step('activities, Strava and coach screens render', page, async () => {
    await page.getByRole('link', { name: 'Activities' }).click();
    await page.getByRole('heading', { name: 'Activities' }).waitFor();
    await page.getByText(/No activities in the last year|not available on this server/).first().waitFor();
    await shot('11-activities');
    await page.getByRole('link', { name: 'Strava' }).click();
    await page.getByRole('heading', { name: 'Strava', level: 1 }).waitFor();
    await page.getByText(/not available on this server|Not connected|Connected/).first().waitFor();
    await shot('12-strava');
    await page.getByRole('link', { name: 'Coach' }).click();
    await page.getByRole('heading', { name: 'Coach' }).waitFor();
    await page.getByText(/not available on this server|not set up on this server|Ask how your habits are going/).first().waitFor();
    await shot('13-coach');
  });

  {
    await step('Strava: add and delete a mapping rule', page, async () => {
      await page.getByRole('link', { name: 'Strava' }).click();
      await page.getByRole('heading', { name: 'Strava', level: 1 }).waitFor();
      const form = page.getByRole('form', { name: 'New rule' });
      await form.getByLabel('Habit').selectOption({ label: 'Floss teeth' });
      await form.getByLabel('Sport types').fill('Run, TrailRun');
      await form.getByLabel('Min distance (km)').fill('3');
      await form.getByRole('button', { name: 'Add rule' }).click();
      const rule = page.getByRole('form', { name: 'Rule for Floss teeth' });
      await rule.waitFor();
      const saved = (await api('/api/strava/rules')).body;
      const rules = Array.isArray(saved) ? saved : saved.rules;
      expect(rules.some((r) => r.min_distance_m === 3000 && r.sport_types.join() === 'Run,TrailRun'), `rules: ${JSON.stringify(rules)}`);
      await shot('12b-strava-rules');
      await rule.getByRole('button', { name: 'Delete' }).click();
      await rule.waitFor({ state: 'detached' });
    });
  }

  {
    await step('coach chat streams the reply', page, async () => {
      await page.getByRole('link', { name: 'Coach' }).click();
      await page.getByRole('textbox', { name: 'Message' }).fill('How am I doing this week?');
      await page.getByRole('button', { name: 'Send' }).click();
      const reply = page.getByTestId('assistant-message').last();
      // Streaming: part of the reply shows before all of it.
      await reply.filter({ hasText: fakeLlm.reply.split(' ').slice(0, 2).join(' ') }).waitFor();
      const partial = (await reply.textContent()) ?? '';
      await reply.filter({ hasText: fakeLlm.reply }).waitFor({ timeout: 20_000 });
      expect(!partial.includes(fakeLlm.reply), 'the reply arrived in one piece, not streamed');
      await page.waitForURL(/\/coach\/.+/);
      await page.getByRole('complementary', { name: 'Conversations' }).getByRole('link').first().waitFor();
      await shot('14-coach-chat');
    });

    await step('coach: deleting a conversation is confirmed first', page, async () => {
      const list = page.getByRole('complementary', { name: 'Conversations' });
      const before = await list.getByRole('listitem').count();
      await list.getByRole('button', { name: /^Delete conversation/ }).first().click();
      await dialog().getByRole('heading', { name: 'Delete this conversation?' }).waitFor();
      await dialog().getByRole('button', { name: 'Cancel' }).click();
      expect((await list.getByRole('listitem').count()) === before, 'Cancel deleted the conversation');
      await list.getByRole('button', { name: /^Delete conversation/ }).first().click();
      await dialog().getByRole('button', { name: 'Delete', exact: true }).click();
      await waitFor(async () => (await list.getByRole('listitem').count()) === before - 1, 'the conversation deleted');
    });
  }

  const axeFailures = [];
  await step('reminder delivery: add an ntfy channel, save it, send a test and see its answer', page, async () => {
    await go('/settings');
    await page.getByRole('button', { name: 'Add a channel' }).click();
    // A private address the server does not allow: refused at once, and said so.
    await page.getByLabel('Address').last().fill('http://127.0.0.1:9/ham-e2e');
    await page.getByRole('button', { name: 'Save channels' }).click();
    await page.getByText('Saved.').waitFor();
    await page.getByRole('button', { name: 'Send a test' }).click();
    const result = page.getByTestId('channel-tests').getByText(/127\.0\.0\.1:9\/ham-e2e: failed \(.*not allowed/);
    await result.waitFor({ timeout: 20_000 });
    await shot('08b-settings-channel-test');
    const channels = (await api('/api/me/notifications')).body.channels;
    expect(channels.length === 1 && /not allowed/.test(channels[0].last_error ?? ''), `the refusal is not on the channel: ${JSON.stringify(channels)}`);
  });

  await step('sign out and sign in again', page, async () => {
    await openMore();
    await page.getByRole('button', { name: /Sign out/ }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    axeFailures.push(...(await axeScan(page, 'sign in')));
    await page.getByLabel('Username').fill(USER);
    await page.getByLabel('Password').fill('wrong password!');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('wrong username or password').waitFor();
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Today' }).waitFor();
  });

  await step('import an export', page, async () => {
    await openMore();
    await page.getByRole('link', { name: /^Settings/ }).click();
    await page.getByLabel('Export file (JSON or CSV)').setInputFiles(join(temp, 'export.json'));
    await page.getByRole('button', { name: 'Import' }).click();
    await page.getByText(`Imported ${exported.habits} habits, ${exported.entries} entries`).waitFor();
  });

  await step('admin: create a user on the Users screen', page, async () => {
    await openMore();
    await page.getByRole('link', { name: /^Users/ }).click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByLabel('Username', { exact: true }).fill('e2e-second');
    await page.getByLabel('Password', { exact: true }).fill('first password');
    await page.getByRole('button', { name: 'Create', exact: true }).click();
    await page.getByText('Created e2e-second').waitFor();
    await page.getByTestId('user-list').getByRole('heading', { name: 'e2e-second' }).waitFor();
    const listed = (await api('/api/admin/users')).body.users.map((u) => u.username);
    expect(listed.includes('e2e-second') && listed.includes(USER), `users: ${listed}`);
    await shot('18-admin-users');
  });

  await step('change the password in Settings, then sign in with the new one', page, async () => {
    const browser = await chromium.launch({ executablePath: browserPath, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
    try {
      const other = await browser.newContext({ baseURL: base, viewport: { width: 390, height: 844 } });
      const p = await other.newPage();
      await p.goto('/');
      await p.getByLabel('Username').fill('e2e-second');
      await p.getByLabel('Password').fill('first password');
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByRole('heading', { name: 'Today' }).waitFor();
      await go('/settings', p);
      await p.getByLabel('Current password', { exact: true }).fill('wrong password');
      await p.getByLabel('New password', { exact: true }).fill('second password');
      await p.getByLabel('New password again', { exact: true }).fill('second password');
      await p.getByRole('button', { name: 'Change password' }).click();
      await p.getByText('The current password is not right').waitFor();
      await p.getByLabel('Current password', { exact: true }).fill('first password');
      await p.getByRole('button', { name: 'Change password' }).click();
      await p.getByText('Password changed.').waitFor();
      await p.screenshot({ path: join(artifacts, 'phone-390-settings-account-light.png'), fullPage: true });
      await p.getByRole('link', { name: 'More' }).click();
      await p.getByRole('button', { name: /Sign out/ }).click();
      await p.getByRole('heading', { name: 'Sign in' }).waitFor();
      await p.getByLabel('Username').fill('e2e-second');
      await p.getByLabel('Password').fill('first password');
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByText('wrong username or password').waitFor();
      await p.getByLabel('Password').fill('second password');
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByRole('heading', { name: 'Today' }).waitFor();
    } finally {
      await browser.close();
    }
  });

  await step('create an API token (shown once, works), then revoke it', page, async () => {
    await go('/settings');
    await page.getByLabel('Token name').fill('e2e script');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = (await page.getByTestId('token-value').innerText()).trim();
    expect(/^ham_[A-Za-z0-9_-]{43}$/.test(token), `token: ${token}`);
    const asToken = async () => (await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${token}` } })).status;
    expect((await asToken()) === 200, 'the new token does not sign in');
    await page.getByTestId('token-list').locator('.menu-title').filter({ hasText: 'e2e script' }).waitFor();
    await shot('19-settings-tokens');
    await page.getByRole('button', { name: 'Revoke e2e script' }).click();
    await dialog().getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('No tokens yet.').waitFor();
    expect((await page.getByTestId('new-token').count()) === 0, 'the revoked token is still shown');
    expect((await asToken()) === 401, 'the revoked token still works');
  });

  await step('dark theme follows the system', page, async () => {
    await page.getByRole('link', { name: 'Today' }).first().click();
    await page.getByRole('heading', { name: 'Today' }).waitFor();
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
    expect(bg === 'rgb(11, 17, 32)', `dark background is ${bg}`);
    await shot('15-today-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('axe-core: no serious or critical violations on any screen, light and dark', page, async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const water = await habitId('Water');
    const chat = (await api('/api/coach/conversations')).body?.conversations?.[0]?.id;
    const screens = [
      ['/', 'today'],
      [`/habits/${water}`, 'habit detail'],
      [`/habits/${water}/edit`, 'habit form (edit)'],
      ['/habits/new', 'habit form (new)'],
      ['/archived', 'archived habits'],
      ['/arrange', 'arrange habits'],
      ['/activities', 'activities'],
      ['/strava', 'strava'],
      [chat ? `/coach/${chat}` : '/coach', 'coach'],
      ['/settings', 'settings'],
      ['/more', 'more'],
      ['/admin/plugins', 'plugins'],
      ['/admin/users', 'users'],
      ['/no-such-page', 'not found'],
    ];
    for (const [path, name] of screens) {
      await go(path);
      axeFailures.push(...(await axeScan(page, name)));
    }
    await go('/');
    await measureControl('Water').first().click();
    await dialog().waitFor();
    axeFailures.push(...(await axeScan(page, 'day editor')));
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: /^Add 0.25 l to Water today/ }).first().click();
    await page.getByTestId('toast').waitFor();
    axeFailures.push(...(await axeScan(page, 'today with a toast')));
    await page.setViewportSize({ width: 1100, height: 800 });
    await go('/');
    axeFailures.push(...(await axeScan(page, 'today (desktop)')));
    writeFileSync(join(artifacts, 'axe.json'), JSON.stringify(axeResults, null, 2));
    expect(axeFailures.length === 0, `axe:\n${axeFailures.join('\n')}`);
  });

  await step('the JS bundle is under 250 kB gzipped', page, async () => {
    const html = await (await fetch(`${base}/`)).text();
    const scripts = [...html.matchAll(/src="(\/assets\/[^"]+\.js)"/g)].map((m) => m[1]);
    expect(scripts.length > 0, 'no script in index.html');
    let total = 0;
    for (const src of scripts) {
      const response = await fetch(base + src);
      expect(response.headers.get('cache-control') === 'public, max-age=31536000, immutable', `${src} is not immutable`);
      total += gzipSync(Buffer.from(await response.arrayBuffer()), { level: 9 }).length;
    }
    log(`  JS: ${(total / 1000).toFixed(1)} kB gzipped`);
    expect(total < 250_000, `the JS is ${total} bytes gzipped`);
  });

  await step('no errors in the browser console', page, async () => {
    // 401 on /api/me before sign-in, and 404s from routes not on this server, are expected.
    const unexpected = consoleErrors.filter((t) => !/status of (401|404)/.test(t) && !/Failed to load resource/.test(t));
    expect(unexpected.length === 0, `console errors:\n${unexpected.join('\n')}`);
  });

  await step('installable: the manifest, icons and service worker load, and Chromium can install the app', page, async () => {
    const m = await page.request.get('/manifest.webmanifest');
    expect(m.ok() && m.headers()['content-type'] === 'application/manifest+json', `manifest: ${m.status()} ${m.headers()['content-type']}`);
    const manifest = await m.json();
    expect(manifest.name === 'HAM' && manifest.short_name && manifest.display === 'standalone' && manifest.start_url === '/' && manifest.scope === '/', `manifest: ${JSON.stringify(manifest)}`);
    for (const size of [192, 512]) {
      for (const purpose of ['any', 'maskable']) {
        const icon = manifest.icons.find((i) => i.sizes === `${size}x${size}` && i.purpose === purpose);
        expect(icon, `no ${purpose} icon of ${size} px`);
        const r = await page.request.get(icon.src);
        const png = await r.body();
        expect(r.ok() && r.headers()['content-type'] === 'image/png', `${icon.src}: ${r.status()} ${r.headers()['content-type']}`);
        expect(png.readUInt32BE(16) === size && png.readUInt32BE(20) === size, `${icon.src} is not ${size} px square`);
      }
    }
    const sw = await page.request.get('/sw.js');
    expect(sw.ok() && sw.headers()['content-type'].startsWith('text/javascript') && sw.headers()['cache-control'] === 'no-cache', `sw.js: ${sw.status()} ${JSON.stringify(sw.headers())}`);
    await go('/');
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 30_000 });
    const cdp = await context.newCDPSession(page);
    try {
      const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
      expect(installabilityErrors.length === 0, `installability errors: ${JSON.stringify(installabilityErrors)}`);
      const { errors } = await cdp.send('Page.getAppManifest');
      expect(errors.length === 0, `manifest errors: ${JSON.stringify(errors)}`);
    } finally {
      await cdp.detach();
    }
  });

  await step('offline: the app opens without a network; a check-in waits, marked, and is sent when back online', page, async () => {
    const created = await page.request.post('/api/habits', { data: { name: 'Stretch', kind: 'boolean' } });
    expect(created.ok(), `create Stretch: ${created.status()}`);
    // One visit with the service worker in control keeps the screens' data.
    await go('/');
    await todayControl('Stretch').waitFor();
    const day = addDays(today, -2);
    const cellNamed = (words) => page.getByRole('button', { name: `Stretch, ${dayLabel(day)}: ${words}`, exact: true });
    try {
      await context.setOffline(true);
      await page.reload();
      await ready();
      await todayControl('Stretch').waitFor();
      await cellNamed('not checked in').click();
      await cellNamed('done (not sent yet)').waitFor();
      await page.getByTestId('pending-banner').waitFor();
      await shot('17-offline-pending');
      expect((await entryOn('Stretch', day)) === undefined, 'the check-in reached the server while offline');
      // A reload while still offline keeps it, pending.
      await page.reload();
      await ready();
      await cellNamed('done (not sent yet)').waitFor();
    } finally {
      await context.setOffline(false);
    }
    await cellNamed('done').waitFor({ timeout: 30_000 });
    await waitFor(async () => (await entryOn('Stretch', day))?.status === 'done', 'the offline check-in on the server', 30_000);
    await page.getByTestId('pending-banner').waitFor({ state: 'detached' });
    expect((await page.getByTestId('pending-mark').count()) === 0, 'a pending mark stays after sending');
  });

  await step('forward-auth: the proxy signs the user in, no sign-in form', page, async () => {
    // A second server behind a "proxy" on loopback (trusted); the browser sends
    // the header Authentik would add.
    const fwdPort = await freePort();
    const fwdBase = `http://127.0.0.1:${fwdPort}`;
    start(bin, ['serve'], {
      ...env,
      HAM_DATA_DIR: join(temp, 'data-forward-auth'),
      HAM_ADDR: `127.0.0.1:${fwdPort}`,
      HAM_AUTH: 'forward-auth',
      HAM_TRUSTED_PROXIES: '127.0.0.1/32',
    });
    await waitFor(async () => (await fetch(`${fwdBase}/healthz`)).ok, 'the forward-auth ham to answer', 60_000);
    const proxied = await context.newPage();
    await proxied.setExtraHTTPHeaders({ 'X-authentik-uid': 'eve-uid', 'X-authentik-username': 'eve', 'X-authentik-email': 'eve@example.com' });
    await proxied.goto(`${fwdBase}/`);
    await proxied.getByRole('heading', { name: 'Today', level: 1 }).waitFor();
    expect((await proxied.getByLabel('Password').count()) === 0, 'no sign-in form behind the proxy');
    await proxied.screenshot({ path: join(artifacts, '16-forward-auth-today.png') });
    // Without the header (not through the proxy) nobody is signed in, and there is
    // still no form: the page says to sign in through the proxy.
    const direct = await context.newPage();
    await direct.goto(`${fwdBase}/`);
    await direct.getByText(/signs users in through/).waitFor();
    expect((await direct.getByLabel('Password').count()) === 0, 'no sign-in form in forward-auth mode');
    await proxied.close();
    await direct.close();
  });

  await step('a new account takes the browser time zone (Europe/Oslo); Strava not set up says so', page, async () => {
    // A third server with no Strava application, and a browser in Oslo.
    const plainPort = await freePort();
    const plainBase = `http://127.0.0.1:${plainPort}`;
    const plainEnv = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('HAM_PLUGIN_STRAVA_SYNC_')));
    start(bin, ['serve'], { ...plainEnv, HAM_DATA_DIR: join(temp, 'data-plain'), HAM_ADDR: `127.0.0.1:${plainPort}` });
    await waitFor(async () => (await fetch(`${plainBase}/healthz`)).ok, 'the plain ham to answer', 60_000);
    const browser = await chromium.launch({ executablePath: browserPath, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
    try {
      const oslo = await browser.newContext({ baseURL: plainBase, timezoneId: 'Europe/Oslo', viewport: { width: 390, height: 844 } });
      const p = await oslo.newPage();
      await p.goto('/');
      await p.getByLabel('Username').fill('oslo');
      await p.getByLabel('Password').fill(PASSWORD);
      await p.getByRole('button', { name: 'Create account' }).click();
      await p.getByRole('heading', { name: 'Today' }).waitFor();
      const me = await (await p.request.get('/api/me')).json();
      expect(me.time_zone === 'Europe/Oslo', `the new account's time zone is ${me.time_zone}`);
      // An account in another zone than the device is offered the device's.
      const patched = await p.request.patch('/api/me', { data: { time_zone: 'UTC' } });
      expect(patched.ok(), `PATCH /api/me: ${patched.status()}`);
      await p.reload();
      await p.getByText('This device is in').waitFor();
      await p.screenshot({ path: join(artifacts, 'phone-390-tz-offer-light.png'), fullPage: true });
      await p.getByRole('button', { name: 'Use Europe/Oslo' }).click();
      await waitFor(async () => (await (await p.request.get('/api/me')).json()).time_zone === 'Europe/Oslo', 'the offered zone saved');
      // Strava without a Strava application: a sentence, Connect disabled, no JSON.
      await p.getByRole('link', { name: 'Strava' }).click();
      await p.getByText('Strava is not set up on this server').waitFor();
      const connect = p.getByRole('button', { name: 'Connect Strava' });
      expect(await connect.isDisabled(), 'Connect Strava is enabled on a server without Strava');
      const text = await p.locator('body').innerText();
      expect(!text.includes('{') && !text.includes('HAM_') && !/not_configured|error/i.test(text), `the Strava screen shows: ${text}`);
      await p.screenshot({ path: join(artifacts, 'phone-390-strava-not-set-up-light.png'), fullPage: true });
      const own = await axeScan(p, 'strava (not set up)');
      writeFileSync(join(artifacts, 'axe.json'), JSON.stringify(axeResults, null, 2));
      expect(own.length === 0, `axe:\n${own.join('\n')}`);
    } finally {
      await browser.close();
    }
  });

  await context.close();
}

function stopAll() {
  for (const c of children) {
    if (c.exitCode === null) c.kill('SIGTERM');
  }
}

try {
  await main();
} catch (e) {
  failedHard = true;
  log(`e2e could not run: ${e?.stack ?? e}`);
} finally {
  stopAll();
  try {
    rmSync(temp, { recursive: true, force: true });
  } catch {
    // leave it
  }
}
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed + (failedHard ? 1 : 0);
log(`screenshots: ${artifacts}`);
log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
