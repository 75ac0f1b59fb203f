// Browser test: the demo storefront (examples/storefront) in headless
// Chromium, Debian's, driven by playwright-core. One browser profile, so one
// cookie jar: log in, open three more tabs that restore the session from the
// HttpOnly cookie, make the three refresh at the same moment, and check that
// none is logged out and every tab keeps the same session. Prints one line
// per check, then "N passed, N failed" as the last line; exits 1 when a
// check failed.
//
//   node test.mjs <storefront URL>          (browser/run.sh starts everything)
//   CHROMIUM      the browser (default /usr/bin/chromium)
//   SCREENSHOT    where the signed-in screenshot goes (default out/storefront.png)
//   DEMO_EMAIL, DEMO_PASSWORD, COOKIE_NAME   the demo user and meshauth's cookie name
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { assert, checks, chromiumArgs, show } from './lib.mjs';

const base = (process.argv[2] ?? '').replace(/\/+$/, '');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node test.mjs <storefront URL, e.g. http://127.0.0.1:8080>');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const screenshot = process.env.SCREENSHOT || join(here, 'out', 'storefront.png');
const email = process.env.DEMO_EMAIL || 'demo@example.com';
const password = process.env.DEMO_PASSWORD || 'demo-password';
const cookieName = process.env.COOKIE_NAME || 'meshauth_refresh';
const origin = new URL(base).origin;
const host = new URL(base).hostname;

const { check, fail, finish } = checks();

// A fresh profile: launchPersistentContext passes it as --user-data-dir.
const userDataDir = await mkdtemp(join(tmpdir(), 'meshauth-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: chromiumArgs,
    viewport: { width: 760, height: 420 },
    deviceScaleFactor: 1,
    locale: 'en-US',
    timezoneId: 'UTC',
  });
} catch (err) {
  await rm(userDataDir, { recursive: true, force: true });
  fail(`Chromium starts (${executablePath})`, err);
  finish();
  process.exit();
}
context.setDefaultTimeout(15_000);

const problems = []; // uncaught errors, console errors, requests off the origin
context.on('page', watch);
function watch(page) {
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && u !== 'about:blank') problems.push(`request off the origin: ${u}`);
  });
}
for (const p of context.pages()) watch(p);

const stateOf = (page) => page.evaluate(() => window.storefront.state());
const refreshIn = (page) => page.evaluate(() => window.storefront.refresh());
const shownSid = (page) => page.getByTestId('session-id').textContent();
const refreshCookie = async () => (await context.cookies()).find((c) => c.name === cookieName);

// open PAGE: load the storefront and wait for its cookie restore to finish.
async function open(page) {
  await page.goto(base + '/');
  await page.waitForFunction(() => window.storefront);
  const restored = await page.evaluate(() => window.storefront.ready);
  await page.waitForFunction(() => document.body.dataset.state !== 'loading');
  return restored;
}

// together(PAGES, FN): run FN on every page at once, over an emulated slow
// network (LATENCY_MS of latency per request, Chromium's own throttling).
// Chromium reads the cookie jar when a request starts and applies Set-Cookie
// when the answer's headers arrive, after the latency: so no answer can
// rotate the cookie before every tab has sent its request, and all the tabs
// present the same refresh token, as tabs whose refreshes cross on a real
// network do. Returns FN's results and what went over the wire: the cookie
// each refresh request carried and the one its answer set (page scripts
// cannot see either).
const LATENCY_MS = 400;
async function together(pages, fn) {
  const wire = [];
  const onResponse = (response) => {
    const request = response.request();
    if (!(request.postData() ?? '').includes('refreshCustomerToken')) return;
    wire.push(
      (async () => ({
        sent: cookieValue(await request.headerValue('cookie')),
        set: cookieValue(await response.headerValue('set-cookie')),
      }))(),
    );
  };
  const sessions = [];
  try {
    for (const page of pages) {
      const cdp = await context.newCDPSession(page);
      sessions.push(cdp);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: LATENCY_MS, downloadThroughput: -1, uploadThroughput: -1,
      });
      page.on('response', onResponse);
    }
    const started = Date.now();
    const results = await Promise.all(pages.map(fn));
    return { results, elapsed: Date.now() - started, wire: await Promise.all(wire) };
  } finally {
    for (const page of pages) page.off('response', onResponse);
    for (const cdp of sessions) {
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 }).catch(() => {});
      await cdp.detach().catch(() => {});
    }
  }
}

// fp(TOKEN): a short fingerprint of a token, to tell tokens apart in a message.
const fp = (t) => (t === undefined ? 'none' : createHash('sha256').update(t).digest('hex').slice(0, 8));

// cookieValue(HEADER): the refresh cookie's value in a Cookie or Set-Cookie header.
function cookieValue(header) {
  const m = new RegExp(`(?:^|[;,\\s])${cookieName}=([^;,\\s]*)`).exec(header ?? '');
  return m ? m[1] : undefined;
}

try {
  const [first] = context.pages().length ? context.pages() : [await context.newPage()];
  let sid;

  await check('a fresh profile opens the storefront signed out', async () => {
    const r = await open(first);
    assert(!r.ok && r.signedOut, `restore without a cookie: ${show(r)}`);
    assert(await first.getByTestId('login-form').isVisible(), 'the login form is not shown');
  });

  await check(`logging in through the form (${email}, remember me) shows "signed in as" and the session id`, async () => {
    await first.getByTestId('email').fill(email);
    await first.getByTestId('password').fill(password);
    await first.getByTestId('remember-me').check();
    await first.getByTestId('login-submit').click();
    await first.waitForFunction(() => document.body.dataset.busy === 'false');
    const s = await stateOf(first);
    assert(s.signedIn, `not signed in: ${await first.getByTestId('status').textContent()}`);
    assert(s.customer_id && s.sid, `state ${show(s)}`);
    assert((await first.getByTestId('customer-id').textContent()) === String(s.customer_id), 'customer id not shown');
    assert((await shownSid(first)) === s.sid, 'session id not shown');
    sid = s.sid;
  });

  await check('the refresh cookie is HttpOnly, SameSite=Strict, Path=/graphql, host-only, persistent (remember me: ~30 days)', async () => {
    const c = await refreshCookie();
    assert(c, `no ${cookieName} cookie in the browser`);
    assert(c.httpOnly === true, `httpOnly ${c.httpOnly}`);
    assert(c.sameSite === 'Strict', `sameSite ${c.sameSite}`);
    assert(c.path === '/graphql', `path ${c.path}`);
    assert(c.domain === host, `domain ${c.domain} (want host-only ${host})`);
    assert(c.secure === false, `secure ${c.secure} (run.sh sets REFRESH_TOKEN_COOKIE_SECURE=false)`);
    const days = (c.expires - Date.now() / 1000) / 86400;
    assert(days > 29 && days <= 30.01, `expires in ${days.toFixed(2)} days`);
  });

  await check('JavaScript cannot read the refresh cookie, not even in a document under /graphql', async () => {
    assert(!(await first.evaluate(() => document.cookie)).includes(cookieName), 'document.cookie at / shows it');
    // A page at /graphql matches the cookie's path, so only HttpOnly hides
    // it there; a plain cookie with the same path shows the check can see.
    await context.addCookies([{ name: 'probe', value: 'visible', domain: host, path: '/graphql', sameSite: 'Strict' }]);
    const probe = await context.newPage();
    try {
      await probe.goto(base + '/graphql?query=%7B__typename%7D');
      const seen = await probe.evaluate(() => document.cookie);
      assert(seen.includes('probe=visible'), `the control cookie is not visible: ${show(seen)}`);
      assert(!seen.includes(cookieName), `document.cookie shows ${cookieName}`);
    } finally {
      await probe.close();
      await context.clearCookies({ name: 'probe' });
    }
  });

  await check('a script that asks for refresh_token gets null (the token is in the cookie alone), in an answer no cache keeps', async () => {
    const answer = await first.evaluate(async (csrf) => {
      const res = await fetch('/graphql', {
        method: 'POST',
        credentials: 'include',
        headers: { 'Content-Type': 'application/json', 'X-Requested-With': csrf },
        body: JSON.stringify({ query: 'mutation { refreshCustomerToken { token refresh_token } }' }),
      });
      return { status: res.status, cacheControl: res.headers.get('cache-control'), body: await res.json() };
    }, 'probe');
    const t = answer.body?.data?.refreshCustomerToken;
    assert(t && t.token, `refresh: ${show(answer)}`);
    assert(t.refresh_token === null, 'the body carries the refresh token');
    assert(answer.cacheControl === 'no-store', `Cache-Control ${answer.cacheControl}, want no-store`);
    const c = await refreshCookie();
    assert(c && c.value, 'the refresh cookie is gone');
  });

  if (!sid) throw new Error('no session to test with: the login failed');

  const tabs = [];
  for (const name of ['A', 'B', 'C']) {
    await check(`new tab ${name} restores the session from the cookie (same session id)`, async () => {
      const page = await context.newPage();
      tabs.push(page);
      const r = await open(page);
      assert(r.ok, `restore: ${show(r)}`);
      assert(r.sid === sid, `sid ${r.sid}, want ${sid}`);
      assert((await shownSid(page)) === sid, 'the tab does not show the session id');
    });
  }
  while (tabs.length < 3) tabs.push(await context.newPage()); // keep going after a failure

  const before = await refreshCookie();
  const { results, elapsed, wire } = await together(tabs, refreshIn);
  const seen = new Set(); // every access token id so far

  await check(`the 3 tabs refresh at the same moment (over ${LATENCY_MS} ms of emulated latency): 3 requests, all in flight together`, async () => {
    assert(wire.length === 3, `saw ${wire.length} refresh requests`);
    // Together they take one latency; one after another, at least three.
    assert(elapsed >= LATENCY_MS && elapsed < 3 * LATENCY_MS, `the three refreshes took ${elapsed} ms in all`);
  });

  await check('all 3 simultaneous refreshes succeed: no tab logged out, no REFRESH_TOKEN_REUSED', async () => {
    for (const [i, r] of results.entries()) assert(r.ok, `tab ${'ABC'[i]}: ${show(r)}`);
    for (const page of tabs) assert((await stateOf(page)).signedIn, 'a tab is signed out');
  });

  await check('all 3 carried the same refresh cookie and were answered with the same successor (the grace), which the browser keeps', async () => {
    const pairs = wire.map((w) => `${fp(w.sent)} → ${fp(w.set)}`).join(', ');
    assert(wire.length === 3, `saw ${wire.length} refresh answers: ${pairs}`);
    const sent = new Set(wire.map((w) => w.sent));
    const set = new Set(wire.map((w) => w.set));
    assert(!sent.has(undefined) && sent.size === 1 && !set.has(undefined) && set.size === 1, `sent → set: ${pairs}`);
    const [was] = sent;
    const [successor] = set;
    assert(was === before?.value, `the cookie sent is not the one the browser held before: ${pairs}`);
    assert(successor !== was && successor === (await refreshCookie())?.value, `the browser does not hold the successor: ${pairs}`);
    for (const r of results) seen.add(r.jti);
  });

  await check('afterwards every tab, the first one included, shows the same session id', async () => {
    for (const page of [first, ...tabs]) assert((await shownSid(page)) === sid, `a tab shows ${await shownSid(page)}`);
    for (const r of results) assert(r.sid === sid, `sid ${r.sid}`);
  });

  for (const [i, page] of tabs.entries()) {
    const name = 'ABC'[i];
    const how = i === 2 ? 'with the "Refresh now" button' : 'with storefront.refresh()';
    await check(`tab ${name} refreshes again on its own, ${how}: same session, new token`, async () => {
      let r;
      if (i === 2) {
        const count = (await stateOf(page)).refreshes;
        await page.getByTestId('refresh-button').click();
        await page.waitForFunction((n) => window.storefront.state().refreshes > n, count);
        await page.getByTestId('status').filter({ hasText: 'Token refreshed' }).waitFor();
        r = { ok: true, ...(await stateOf(page)) };
      } else {
        r = await refreshIn(page);
      }
      assert(r.ok, show(r));
      assert(r.sid === sid, `sid ${r.sid}, want ${sid}`);
      assert(!seen.has(r.jti), 'the access token was not renewed');
      seen.add(r.jti);
    });
  }

  await check('every tab still shows the same session id', async () => {
    for (const page of [first, ...tabs]) assert((await shownSid(page)) === sid, `a tab shows ${await shownSid(page)}`);
  });

  await check(`screenshot of the signed-in storefront: ${screenshot}`, async () => {
    await mkdir(dirname(screenshot), { recursive: true });
    await tabs[2].screenshot({ path: screenshot });
    assert((await stat(screenshot)).size > 1000, 'the screenshot is empty');
  });

  const stale = await refreshCookie(); // the last token, kept to present it after logout

  await check('"Sign out" in tab A signs it out and clears the cookie', async () => {
    await tabs[0].getByTestId('signout-button').click();
    await tabs[0].waitForSelector('body[data-state="signed-out"]');
    await tabs[0].getByTestId('status').filter({ hasText: 'Signed out.' }).waitFor();
    assert(!(await refreshCookie()), 'the cookie is still in the browser');
  });

  await check('then a refresh in tab B fails (no cookie left: BAD_USER_INPUT) and tab B shows the login form', async () => {
    const r = await refreshIn(tabs[1]);
    assert(!r.ok && r.signedOut, show(r));
    assert(r.code === 'BAD_USER_INPUT', `code ${r.code}`);
    await tabs[1].waitForSelector('body[data-state="signed-out"]');
    assert(await tabs[1].getByTestId('login-form').isVisible(), 'no login form');
  });

  await check('the last refresh token, put back as the cookie, is refused with INVALID_REFRESH_TOKEN (the session ended server-side) and the cookie cleared', async () => {
    assert(stale, 'no cookie was captured before the logout');
    await context.addCookies([stale]);
    try {
      const r = await refreshIn(tabs[2]);
      assert(!r.ok && r.code === 'INVALID_REFRESH_TOKEN', show(r));
      assert(!(await stateOf(tabs[2])).signedIn, 'tab C is still signed in');
      assert(!(await refreshCookie()), 'meshauth did not clear the dead cookie');
    } finally {
      await context.clearCookies({ name: cookieName });
    }
  });

  await check('a reloaded tab stays signed out', async () => {
    const r = await open(tabs[1]);
    assert(!r.ok && r.signedOut, show(r));
  });

  await check('no uncaught error, console error or request off the storefront origin in any tab', async () => {
    assert(problems.length === 0, show(problems));
  });
} catch (err) {
  fail('the test stopped', err);
} finally {
  await context.close().catch(() => {});
  await rm(userDataDir, { recursive: true, force: true });
}
finish();
