// meshauth's schema beside a Magento-style commerce schema (commerce/schema.graphql),
// with graphql-tools: merged type definitions build in either order and keep
// meshauth's arguments and fields; the Customer entity, when switched on,
// conflicts with Magento's Customer; and a stitched gateway schema over the
// two running services builds and answers. Prints one line per check, then
// "N passed, N failed".
//
//   MESHAUTH_URL=http://127.0.0.1:4000/graphql    meshauth (production, JWT_CUSTOMER_ID_CLAIMS=customer_id,bc_customer_id)
//   COMMERCE_URL=http://127.0.0.1:4500/graphql    commerce/server.mjs, same JWT_PRIVATE_KEY
//   MESHAUTH_ENTITY_SDL=file                      the SDL of a meshauth with FEDERATION_CUSTOMER_ENTITY=true
//   E2E_SHOPPER_EMAIL / E2E_SHOPPER_PASSWORD      the customer 1001 of the users file and of the commerce fixture
//   node merge.mjs
import { readFileSync } from 'node:fs';
import { mergeTypeDefs } from '@graphql-tools/merge';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { stitchSchemas } from '@graphql-tools/stitch';
import { buildSchema, graphql, print } from 'graphql';
import { assert, checks, claimsOf, fetchSdl, show } from './lib.mjs';

const meshauthUrl = process.env.MESHAUTH_URL;
const commerceUrl = process.env.COMMERCE_URL;
const entitySdlFile = process.env.MESHAUTH_ENTITY_SDL;
const shopperEmail = process.env.E2E_SHOPPER_EMAIL ?? 'shopper@example.com';
const shopperPassword = process.env.E2E_SHOPPER_PASSWORD;
if (!meshauthUrl || !commerceUrl || !entitySdlFile || !shopperPassword) {
  console.error('usage: MESHAUTH_URL=... COMMERCE_URL=... MESHAUTH_ENTITY_SDL=... E2E_SHOPPER_PASSWORD=... node merge.mjs');
  process.exit(2);
}

const { check, finish } = checks('merge');

// meshauth's SDL is a Federation v2 subgraph's: `extend schema @link(...)`,
// and @key on the entity when it is on. graphql-tools build it only with
// those directives declared; declaring them is simpler than stripping them.
const FEDERATION_DIRECTIVES = `
directive @link(url: String!, import: [String]) repeatable on SCHEMA
directive @key(fields: String!, resolvable: Boolean = true) repeatable on OBJECT | INTERFACE
`;

const meshauthSdl = await fetchSdl(meshauthUrl);
const entitySdl = readFileSync(entitySdlFile, 'utf8');
const commerceSdl = readFileSync(new URL('./commerce/schema.graphql', import.meta.url), 'utf8');

const argNames = (field) => field.args.map((a) => a.name).join(',');

// What a schema holding both must keep: meshauth's token fields with their
// arguments, meshauth's CustomerToken, and Magento's customer query.
function expectBoth(schema) {
  const mutation = schema.getMutationType().getFields();
  assert(argNames(mutation.generateCustomerToken) === 'email,password,remember_me', `generateCustomerToken(${argNames(mutation.generateCustomerToken)})`);
  assert(argNames(mutation.revokeCustomerToken) === 'refresh_token', `revokeCustomerToken(${argNames(mutation.revokeCustomerToken)})`);
  const token = Object.keys(schema.getType('CustomerToken').getFields()).join(',');
  assert(token === 'token,refresh_token,token_expires_at,refresh_token_expires_at', `CustomerToken { ${token} }`);
  const query = schema.getQueryType().getFields();
  for (const f of ['customer', 'storeConfig', 'products', 'currentCustomer', 'customerSessions']) assert(query[f], `no Query.${f}`);
  assert(String(query.customer.type) === 'Customer', `Query.customer: ${query.customer.type}`);
  assert(String(schema.getType('Customer').getFields().id.type) === 'Int', 'Customer.id is not Magento\'s Int');
}

for (const [n, label, typeDefs] of [
  ['1a', 'meshauth, commerce', [FEDERATION_DIRECTIVES, meshauthSdl, commerceSdl]],
  ['1b', 'commerce, meshauth', [FEDERATION_DIRECTIVES, commerceSdl, meshauthSdl]],
]) {
  await check(`${n}. mergeTypeDefs([${label}]) + makeExecutableSchema builds, keeping remember_me, revokeCustomerToken(refresh_token), CustomerToken.refresh_token and Magento's customer`, () => {
    expectBoth(makeExecutableSchema({ typeDefs: mergeTypeDefs(typeDefs) }));
  });
}

await check('2. with FEDERATION_CUSTOMER_ENTITY=true the merge fails in either order: Customer.id is ID! in meshauth, Int in Magento', () => {
  assert(/type Customer @key\(fields: "id"\)/.test(entitySdl), 'the entity SDL has no Customer entity');
  for (const typeDefs of [[FEDERATION_DIRECTIVES, entitySdl, commerceSdl], [FEDERATION_DIRECTIVES, commerceSdl, entitySdl]]) {
    let error;
    try {
      mergeTypeDefs(typeDefs);
    } catch (err) {
      error = err;
    }
    assert(error, 'mergeTypeDefs accepted two different Customer.id types');
    assert(/"Customer"/.test(error.message) && /"id"/.test(error.message), `unexpected error: ${error.message}`);
  }
});

// A remote subschema: each operation POSTed to the service, with the
// client's Authorization header (context.authorization) forwarded.
function remote(url) {
  return async ({ document, variables, context }) => {
    const headers = { 'content-type': 'application/json' };
    if (context?.authorization) headers.authorization = context.authorization;
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: print(document), variables }),
      signal: AbortSignal.timeout(10_000),
    });
    return res.json();
  };
}

// Where both define a root field, the stitched field goes to the last
// subschema that has it, unless one is marked canonical: meshauth's token
// mutations are, so the order does not matter. (Without that, whichever of
// the two comes last answers logins; see check 3b.) The argument lists
// differ on purpose (remember_me, refresh_token): no warning for those.
const canonicalTokenFields = {
  Mutation: { fields: { generateCustomerToken: { canonical: true }, revokeCustomerToken: { canonical: true } } },
  CustomerToken: { canonical: true },
};
const typeMergingOptions = {
  validationScopes: {
    'Mutation.generateCustomerToken': { validationLevel: 'off' },
    'Mutation.revokeCustomerToken': { validationLevel: 'off' },
  },
};
const meshauthSchema = buildSchema(FEDERATION_DIRECTIVES + meshauthSdl);
const commerceSchema = buildSchema(commerceSdl);
const meshauth = { schema: meshauthSchema, executor: remote(meshauthUrl), merge: canonicalTokenFields };
const commerce = { schema: commerceSchema, executor: remote(commerceUrl) };

let stitched;
await check('3a. stitchSchemas({ subschemas: [meshauth (remote), commerce (remote)] }) builds in either order, meshauth\'s token fields canonical', () => {
  for (const subschemas of [[meshauth, commerce], [commerce, meshauth]]) {
    stitched = stitchSchemas({ subschemas, typeMergingOptions });
    expectBoth(stitched);
  }
});

await check('3b. without canonical, the last subschema answers generateCustomerToken: commerce last loses remember_me', () => {
  const plain = stitchSchemas({ subschemas: [{ ...meshauth, merge: undefined }, commerce], typeMergingOptions });
  assert(argNames(plain.getMutationType().getFields().generateCustomerToken) === 'email,password', 'commerce\'s generateCustomerToken did not win');
});

await check('3c. the stitched schema logs in through meshauth (bc_customer_id the number 1001) and answers customer from the commerce service', async () => {
  assert(stitched, 'no stitched schema (check 3a failed)');
  const login = await graphql({
    schema: stitched,
    source: 'mutation($e: String!, $p: String!) { generateCustomerToken(email: $e, password: $p, remember_me: true) { token refresh_token } }',
    variableValues: { e: shopperEmail, p: shopperPassword },
    contextValue: {},
  });
  assert(!login.errors && login.data?.generateCustomerToken?.refresh_token, `login: ${show(login)}`);
  const { token } = login.data.generateCustomerToken;
  assert(claimsOf(token).bc_customer_id === 1001, `bc_customer_id: ${JSON.stringify(claimsOf(token).bc_customer_id)}`);
  const me = await graphql({
    schema: stitched,
    source: '{ customer { id email firstname } currentCustomer { customer_id } }',
    contextValue: { authorization: `Bearer ${token}` },
  });
  assert(!me.errors, `unexpected errors: ${show(me)}`);
  assert(me.data.customer?.id === 1001 && me.data.customer.email === shopperEmail, `customer: ${show(me)}`);
  assert(me.data.currentCustomer?.customer_id === '1001', `currentCustomer: ${show(me)}`);
});

finish();
