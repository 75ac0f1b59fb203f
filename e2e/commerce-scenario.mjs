// Drives a gateway that stitches meshauth beside the Magento-style commerce
// service (mesh-commerce/.meshrc.yaml): logins and logouts are meshauth's,
// customer is the commerce service's, which reads the customer from
// meshauth's access token (bc_customer_id, a JSON number). Prints one line
// per check, then "N passed, N failed".
//
//   node commerce-scenario.mjs <gateway name> <gateway GraphQL URL>
//   E2E_SHOPPER_EMAIL / E2E_SHOPPER_PASSWORD: customer 1001 of the users file
//   and of the commerce fixture.
import { assert, checks, claimsOf, expectCode, expectPair, gql as gqlAt, REFRESH, REVOKE, show } from './lib.mjs';

const [name = 'gateway', url] = process.argv.slice(2);
const email = process.env.E2E_SHOPPER_EMAIL ?? 'shopper@example.com';
const password = process.env.E2E_SHOPPER_PASSWORD;
if (!url || !password) {
  console.error('usage: E2E_SHOPPER_PASSWORD=... node commerce-scenario.mjs <name> <gateway graphql url>');
  process.exit(2);
}

const { check, finish } = checks(name);
const gql = (query, variables, headers) => gqlAt(url, query, variables, headers);

let pair;
await check('c1. generateCustomerToken(remember_me: true) through the stitched gateway is meshauth\'s: a token pair carrying bc_customer_id and customer_id as the number 1001', async () => {
  pair = expectPair(
    await gql(
      `mutation Login($email: String!, $password: String!) {
        generateCustomerToken(email: $email, password: $password, remember_me: true) { token refresh_token }
      }`,
      { email, password },
    ),
    'generateCustomerToken',
  );
  const claims = claimsOf(pair.token);
  assert(claims.bc_customer_id === 1001 && claims.customer_id === 1001, `claims: ${JSON.stringify(claims)}`);
});

await check('c2. { customer { id email firstname } } with the access token forwarded is answered by the commerce service from bc_customer_id', async () => {
  assert(pair, 'no access token (check c1 failed)');
  const body = await gql('{ customer { id email firstname } }', {}, { authorization: `Bearer ${pair.token}` });
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  const c = body.data?.customer;
  assert(c?.id === 1001 && c.email === email && c.firstname === 'Ada', `customer: ${show(body)}`);
});

await check('c3. one request for both services: storeConfig (commerce) and currentCustomer, customerSessions (meshauth)', async () => {
  assert(pair, 'no access token (check c1 failed)');
  const body = await gql(
    '{ storeConfig { store_code } currentCustomer { customer_id } customerSessions { current remember_me } }',
    {},
    { authorization: `Bearer ${pair.token}` },
  );
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  assert(body.data?.storeConfig?.store_code === 'default', `storeConfig: ${show(body)}`);
  assert(body.data?.currentCustomer?.customer_id === '1001', `currentCustomer: ${show(body)}`);
  const current = body.data?.customerSessions?.filter((s) => s.current);
  assert(current?.length === 1 && current[0].remember_me === true, `customerSessions: ${show(body)}`);
});

await check('c4. { customer } without Authorization: the commerce service refuses', async () => {
  const body = await gql('{ customer { email } }');
  assert(body.data?.customer == null, `expected no customer, got ${show(body)}`);
  assert(/isn't authorized/.test(body.errors?.[0]?.message ?? ''), `expected the commerce service's refusal, got ${show(body)}`);
});

await check('c5. revokeCustomerToken(refresh_token) through the stitched gateway is meshauth\'s: result true, then the refresh token is dead', async () => {
  assert(pair, 'no refresh token (check c1 failed)');
  const body = await gql(REVOKE, { t: pair.refresh_token });
  assert(!body.errors && body.data?.revokeCustomerToken?.result === true, `revoke: ${show(body)}`);
  expectCode(await gql(REFRESH, { t: pair.refresh_token }), 'INVALID_REFRESH_TOKEN');
});

finish();
