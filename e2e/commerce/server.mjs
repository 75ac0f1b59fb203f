// A tiny Magento-style commerce GraphQL service (schema.graphql beside it),
// for the e2e check that meshauth and a commerce schema serve through one
// gateway. Its customer query reads the customer as the BigCommerce module of
// a GraphQL Mesh does: it verifies the forwarded access token with the shared
// HS256 secret (JWT_PRIVATE_KEY, the one meshauth signs with), takes
// bc_customer_id, which must be a JSON number, and looks the customer up.
//
//   JWT_PRIVATE_KEY=... PORT=4500 node commerce/server.mjs   (GraphQL at /graphql)
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { buildSchema, graphql, GraphQLError } from 'graphql';

const port = Number(process.env.PORT ?? 4500);
const secret = process.env.JWT_PRIVATE_KEY;
if (!secret) {
  console.error('commerce: JWT_PRIVATE_KEY is required');
  process.exit(2);
}

const commerceSdl = readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8');
const schema = buildSchema(commerceSdl);

// The shop's customers, keyed by the numeric id meshauth's tokens carry.
const customers = new Map([
  [1001, { id: 1001, email: 'shopper@example.com', firstname: 'Ada', lastname: 'Lovelace', is_subscribed: false }],
]);

// verifyHS256 returns the claims of an HS256 JWT signed with key, or throws:
// what jwt.verify(token, key) checks (algorithm, signature, exp, nbf).
function verifyHS256(token, key) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('malformed token');
  const [h, p, s] = parts;
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  if (header.alg !== 'HS256') throw new Error(`unexpected algorithm ${header.alg}`);
  const want = createHmac('sha256', key).update(`${h}.${p}`).digest();
  const got = Buffer.from(s, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) throw new Error('invalid signature');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  const now = Date.now() / 1000;
  if (typeof claims.exp === 'number' && now >= claims.exp) throw new Error('token expired');
  if (typeof claims.nbf === 'number' && now < claims.nbf) throw new Error('token not yet valid');
  return claims;
}

const unauthorized = (why) =>
  new GraphQLError(`The current customer isn't authorized. (${why})`, {
    extensions: { category: 'graphql-authorization' },
  });

const rootValue = {
  customer(_args, ctx) {
    const m = /^Bearer\s+(\S+)$/i.exec(ctx.authorization ?? '');
    if (!m) throw unauthorized('no bearer token');
    let claims;
    try {
      claims = verifyHS256(m[1], secret);
    } catch (err) {
      throw unauthorized(err.message);
    }
    const id = claims.bc_customer_id;
    if (typeof id !== 'number') throw unauthorized(`bc_customer_id is ${JSON.stringify(id)}, not a number`);
    const customer = customers.get(id);
    if (!customer) throw unauthorized(`no customer ${id}`);
    return customer;
  },
  storeConfig: () => ({
    store_code: 'default',
    store_name: 'Fixture Store',
    base_currency_code: 'EUR',
    locale: 'en_US',
    timezone: 'UTC',
  }),
  products: ({ pageSize, currentPage }) => ({
    items: [],
    total_count: 0,
    page_info: { current_page: currentPage, page_size: pageSize, total_pages: 0 },
  }),
  // Magento's own token mutations. Behind the gateway meshauth answers them;
  // reaching these means the gateway routed a login to the wrong service.
  generateCustomerToken() {
    throw new GraphQLError('commerce fixture: generateCustomerToken reached the commerce service', {
      extensions: { code: 'COMMERCE_FIXTURE_LOGIN' },
    });
  },
  revokeCustomerToken() {
    throw new GraphQLError('commerce fixture: revokeCustomerToken reached the commerce service', {
      extensions: { code: 'COMMERCE_FIXTURE_LOGOUT' },
    });
  },
};

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  if (new URL(req.url, 'http://x').pathname !== '/graphql') return send(res, 404, { errors: [{ message: 'not found' }] });
  if (req.method !== 'POST') return send(res, 405, { errors: [{ message: 'POST only' }] });
  let raw = '';
  for await (const chunk of req) {
    raw += chunk;
    if (raw.length > 1 << 20) return send(res, 413, { errors: [{ message: 'body too large' }] });
  }
  let body;
  try {
    body = JSON.parse(raw);
  } catch {
    return send(res, 400, { errors: [{ message: 'body is not JSON' }] });
  }
  const result = await graphql({
    schema,
    source: String(body.query ?? ''),
    rootValue,
    contextValue: { authorization: req.headers.authorization },
    variableValues: body.variables ?? undefined,
    operationName: body.operationName ?? undefined,
  });
  send(res, 200, result);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`commerce ready at http://127.0.0.1:${port}/graphql`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
