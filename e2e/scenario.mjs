// Drives meshauth through one gateway and prints one line per check, then
// "N passed, N failed" as the last line. Exits 1 when a check failed.
//
//   node scenario.mjs <gateway name> <gateway GraphQL URL>
//   E2E_EMAIL / E2E_PASSWORD: the user run.sh created.
//   E2E_LIMIT_PASSWORD: the password of limit-1@example.com ... limit-26@example.com.
//   E2E_LOGIN_LIMIT_IP: the failed logins meshauth allows per client address
//     a minute (its LOGIN_LIMIT_IP=N/1m).
//   E2E_CUSTOMER_ENTITY=true: meshauth runs with FEDERATION_CUSTOMER_ENTITY=true.
import { assert, checks, claimsOf, expectCode, expectPair, gql as gqlAt, LOGIN, REFRESH, REVOKE, SESSIONS, show } from './lib.mjs';

const [name = 'gateway', url] = process.argv.slice(2);
const email = process.env.E2E_EMAIL ?? 'e2e@example.com';
const password = process.env.E2E_PASSWORD;
if (!url || !password) {
  console.error('usage: E2E_PASSWORD=... node scenario.mjs <name> <gateway graphql url>');
  process.exit(2);
}

const limitPassword = process.env.E2E_LIMIT_PASSWORD;
const ipLimit = Number(process.env.E2E_LOGIN_LIMIT_IP ?? 3);
const customerEntity = process.env.E2E_CUSTOMER_ENTITY === 'true';

const { check, finish } = checks(name);
const gql = (query, variables, headers) => gqlAt(url, query, variables, headers);
const sidOf = (jwt) => claimsOf(jwt).sid;

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

// 7. The client's address reaches meshauth through the gateway: each client
// sends its own X-Forwarded-For (documentation addresses, 203.0.113.0/24),
// the gateway passes it on with its peer appended, and meshauth, which trusts
// loopback peers, counts failed logins by the right-most untrusted hop. A
// gateway that dropped the header would make every client 127.0.0.1, and the
// per-address limit would refuse everyone after the first few failures.
const limitEmail = (n) => `limit-${n}@example.com`;
const from = (n) => ({ 'x-forwarded-for': `203.0.113.${n}` });

await check('7a. 25 wrong passwords for 25 customers, each from its own client address: all INVALID_CREDENTIALS, none RATE_LIMITED', async () => {
  assert(limitPassword, 'E2E_LIMIT_PASSWORD is not set');
  const codes = [];
  for (let n = 1; n <= 25; n++) {
    const body = await gql(LOGIN, { email: limitEmail(n), password: `${limitPassword}-wrong` }, from(n));
    codes.push(body.errors?.[0]?.extensions?.code ?? show(body));
  }
  const other = codes.map((c, i) => [i + 1, c]).filter(([, c]) => c !== 'INVALID_CREDENTIALS');
  assert(other.length === 0, `not INVALID_CREDENTIALS: ${other.map(([n, c]) => `#${n} ${c}`).join(', ')}`);
});

await check('7b. then a 26th customer from a 26th address logs in, and their session shows that address', async () => {
  const pair = expectPair(await gql(LOGIN, { email: limitEmail(26), password: limitPassword }, from(26)), 'generateCustomerToken');
  const body = await gql(SESSIONS, {}, { authorization: `Bearer ${pair.token}` });
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  const current = body.data?.customerSessions?.find((s) => s.current);
  assert(current?.ip === '203.0.113.26', `expected the session's ip 203.0.113.26, got ${show(body)}`);
});

await check(`7c. ${ipLimit + 1} wrong passwords from one client address: the first ${ipLimit} INVALID_CREDENTIALS, the last RATE_LIMITED`, async () => {
  const codes = [];
  for (let n = 1; n <= ipLimit + 1; n++) {
    const body = await gql(LOGIN, { email: limitEmail(n), password: `${limitPassword}-wrong` }, from(200));
    codes.push(body.errors?.[0]?.extensions?.code ?? show(body));
  }
  const want = [...Array(ipLimit).fill('INVALID_CREDENTIALS'), 'RATE_LIMITED'];
  assert(codes.join() === want.join(), `expected ${want.join(', ')}; got ${codes.join(', ')}`);
});

// 8. meshauth defines type Customer only with FEDERATION_CUSTOMER_ENTITY=true
// (the gateway answers introspection itself; meshauth's is off).
await check(`8. the gateway's schema has type Customer only with FEDERATION_CUSTOMER_ENTITY=true (here ${customerEntity})`, async () => {
  const body = await gql('{ __type(name: "Customer") { name fields { name } } }');
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  const type = body.data?.__type;
  if (customerEntity) assert(type?.fields?.some((f) => f.name === 'sessions'), `expected the Customer entity, got ${show(body)}`);
  else assert(type === null, `expected no type Customer, got ${show(body)}`);
});

finish();
