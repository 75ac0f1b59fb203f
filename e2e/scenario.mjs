// Drives meshauth through one gateway and prints one line per check, then
// "N passed, N failed" as the last line. Exits 1 when a check failed.
//
//   node scenario.mjs <gateway name> <gateway GraphQL URL>
//   E2E_EMAIL / E2E_PASSWORD: the user run.sh created.
const [name = 'gateway', url] = process.argv.slice(2);
const email = process.env.E2E_EMAIL ?? 'e2e@example.com';
const password = process.env.E2E_PASSWORD;
if (!url || !password) {
  console.error('usage: E2E_PASSWORD=... node scenario.mjs <name> <gateway graphql url>');
  process.exit(2);
}

let passed = 0;
let failed = 0;

async function check(label, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok    [${name}] ${label}`);
  } catch (err) {
    failed++;
    console.log(`FAIL  [${name}] ${label}: ${err?.message ?? err}`);
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function gql(query, variables = {}, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
  return body;
}

const show = (body) => JSON.stringify(body).slice(0, 400);

// The value of extensions.code of the first error, as the gateway shows it.
function errorCode(body) {
  return body?.errors?.[0]?.extensions?.code;
}

function expectCode(body, code) {
  assert(Array.isArray(body.errors) && body.errors.length > 0, `expected error ${code}, got ${show(body)}`);
  assert(errorCode(body) === code, `expected extensions.code ${code}, got ${show(body)}`);
}

function expectPair(body, field) {
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  const pair = body.data?.[field];
  assert(typeof pair?.token === 'string' && pair.token.length > 0, `no token in ${show(body)}`);
  assert(typeof pair?.refresh_token === 'string' && pair.refresh_token.length > 0, `no refresh_token in ${show(body)}`);
  return pair;
}

// The sid claim of a JWT (the session id); the token is not verified here.
function sidOf(jwt) {
  const payload = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
  return payload.sid;
}

const LOGIN = `mutation Login($email: String!, $password: String!) {
  generateCustomerToken(email: $email, password: $password) { token refresh_token token_expires_at refresh_token_expires_at }
}`;
const REFRESH = `mutation Refresh($t: String!) {
  refreshCustomerToken(refresh_token: $t) { token refresh_token }
}`;
const REVOKE = `mutation Revoke($t: String) {
  revokeCustomerToken(refresh_token: $t) { result }
}`;
const SESSIONS = `query Sessions { customerSessions { id current remember_me expires_at } }`;

let login;
let second;
let third;

await check('1. generateCustomerToken with the right password returns token and refresh_token', async () => {
  login = expectPair(await gql(LOGIN, { email, password }), 'generateCustomerToken');
});

await check('2. refreshCustomerToken returns a new pair with a different refresh token', async () => {
  assert(login, 'no login pair (check 1 failed)');
  second = expectPair(await gql(REFRESH, { t: login.refresh_token }), 'refreshCustomerToken');
  assert(second.refresh_token !== login.refresh_token, 'the refresh token did not change');
});

await check('3. grace: the same refresh token twice in a row gives the same new refresh token', async () => {
  assert(second, 'no refreshed pair (check 2 failed)');
  const a = expectPair(await gql(REFRESH, { t: second.refresh_token }), 'refreshCustomerToken');
  const b = expectPair(await gql(REFRESH, { t: second.refresh_token }), 'refreshCustomerToken');
  assert(a.refresh_token !== second.refresh_token, 'the refresh token did not rotate');
  assert(a.refresh_token === b.refresh_token, 'the two refreshes returned different refresh tokens');
  third = a;
});

await check('4a. customerSessions with Authorization: Bearer (forwarded by the gateway) shows the current session', async () => {
  assert(third, 'no access token (check 3 failed)');
  const body = await gql(SESSIONS, {}, { authorization: `Bearer ${third.token}` });
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  const sessions = body.data?.customerSessions;
  assert(Array.isArray(sessions), `no sessions list in ${show(body)}`);
  const current = sessions.filter((s) => s.current === true);
  assert(current.length === 1, `expected one session with current: true, got ${show(sessions)}`);
  assert(current[0].id === sidOf(third.token), `current session ${current[0].id} is not the token's sid`);
});

await check('4b. customerSessions without Authorization fails with UNAUTHENTICATED', async () => {
  expectCode(await gql(SESSIONS), 'UNAUTHENTICATED');
});

await check('5. generateCustomerToken with a wrong password fails with INVALID_CREDENTIALS', async () => {
  expectCode(await gql(LOGIN, { email, password: `${password}-wrong` }), 'INVALID_CREDENTIALS');
});

let revoked = false;
await check('6a. revokeCustomerToken returns result: true', async () => {
  assert(third, 'no refresh token (check 3 failed)');
  const body = await gql(REVOKE, { t: third.refresh_token });
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  assert(body.data?.revokeCustomerToken?.result === true, `expected result true, got ${show(body)}`);
  revoked = true;
});

await check('6b. refreshing the revoked session fails with INVALID_REFRESH_TOKEN', async () => {
  assert(revoked, 'the session was not revoked (check 6a failed)');
  expectCode(await gql(REFRESH, { t: third.refresh_token }), 'INVALID_REFRESH_TOKEN');
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
