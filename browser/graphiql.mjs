// Browser test of the GraphiQL explorer meshauth serves at / in development,
// from files embedded in the binary: in headless Chromium (Debian's, driven
// by playwright-core) the page renders the editor, a query and a login run
// and their results show, no Content-Security-Policy violation occurs, and
// every request the page makes goes to meshauth's own origin (requests
// anywhere else are recorded, then refused). Prints one line per check,
// then "N passed, N failed" as the last line; exits 1 when a check failed.
//
//   node graphiql.mjs <meshauth URL>         (browser/run.sh starts meshauth)
//   CHROMIUM      the browser (default /usr/bin/chromium)
//   SCREENSHOT    where a screenshot of the explorer goes (default out/graphiql.png)
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { assert, checks, chromiumArgs, show } from './lib.mjs';

const base = (process.argv[2] ?? '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node graphiql.mjs <meshauth URL, e.g. http://127.0.0.1:4000>');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.SCREENSHOT || join(here, 'out', 'graphiql.png');
const origin = new URL(base).origin;

const { check, fail, finish } = checks();

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: chromiumArgs,
  });
} catch (err) {
  fail(`Chromium starts (${executablePath})`, err);
  finish();
  process.exit();
}

const requests = []; // every URL the page asked for
const problems = []; // uncaught errors, console errors
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 640 }, locale: 'en-US', timezoneId: 'UTC' });
  context.setDefaultTimeout(15_000);
  // Nothing leaves this origin: a request elsewhere is recorded and refused,
  // as it would fail on a machine without internet.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    return url.startsWith(origin + '/') ? route.continue() : route.abort('internetdisconnected');
  });
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });

  await check('the page at / renders the GraphiQL editor', async () => {
    const res = await page.goto(base + '/');
    assert(res.ok(), `GET / answered ${res.status()}`);
    assert((res.headers()['content-security-policy'] ?? '').includes("default-src 'self'"), 'no Content-Security-Policy');
    await page.waitForSelector('.graphiql-container .graphiql-query-editor .CodeMirror');
    await page.waitForSelector('.graphiql-execute-button');
  });

  // run QUERY: type it into the editor, press the run button, return the
  // response pane's text once it holds something.
  async function run(query) {
    await page.evaluate((q) => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(q), query);
    await page.click('.graphiql-execute-button');
    await page.waitForFunction(() => {
      const cm = document.querySelector('.graphiql-response .CodeMirror');
      return cm && cm.CodeMirror.getValue().trim().length > 2;
    });
    return page.evaluate(() => document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue());
  }

  await check('{ __typename } runs and its result shows', async () => {
    const out = await run('{ __typename }');
    assert(JSON.parse(out).data?.__typename === 'Query', show(out));
  });

  await check('a login runs and shows an access token', async () => {
    const out = await run('mutation { generateCustomerToken(email: "demo@example.com", password: "demo-password") { token token_expires_at } }');
    const token = JSON.parse(out).data?.generateCustomerToken?.token ?? '';
    assert(token.split('.').length === 3, show(out));
  });

  await check('the schema loaded (the documentation explorer lists Query)', async () => {
    await page.click('[aria-label="Show Documentation Explorer"]');
    await page.waitForSelector('.graphiql-doc-explorer >> text=Query');
  });

  await check('the settings and shortcut dialogs open and close', async () => {
    for (const label of ['Open settings dialog', 'Open short keys dialog']) {
      await page.click(`[aria-label="${label}"]`);
      await page.waitForSelector('[role="dialog"]');
      await page.keyboard.press('Escape');
      await page.waitForSelector('[role="dialog"]', { state: 'detached' });
    }
  });

  await mkdir(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });

  await check("every request went to meshauth's origin", async () => {
    const off = requests.filter((u) => !u.startsWith(origin + '/'));
    assert(requests.length >= 6, `only ${requests.length} requests: ${show(requests)}`);
    assert(off.length === 0, `requests off the origin: ${show(off)}`);
  });

  await check('no Content-Security-Policy violation, uncaught error or console error', async () => {
    const csp = await page.evaluate(() => window.__cspViolations);
    assert(csp.length === 0, `CSP: ${show(csp)}`);
    assert(problems.length === 0, show(problems));
  });
} catch (err) {
  fail('the test stopped', err);
} finally {
  await browser.close().catch(() => {});
}
finish();
