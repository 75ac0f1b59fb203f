// What the e2e scripts share: numbered checks printed one a line ("ok    [name] label"
// or "FAIL  [name] label: why"), a GraphQL client, and the closing line
// "N passed, N failed" with exit status 1 when a check failed.

export function checks(name) {
  let passed = 0;
  let failed = 0;
  return {
    async check(label, fn) {
      try {
        await fn();
        passed++;
        console.log(`ok    [${name}] ${label}`);
      } catch (err) {
        failed++;
        console.log(`FAIL  [${name}] ${label}: ${err?.message ?? err}`);
      }
    },
    finish() {
      console.log(`${passed} passed, ${failed} failed`);
      process.exit(failed === 0 ? 0 : 1);
    },
  };
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// gql(url, query, variables, headers): the parsed JSON answer of a POST.
export async function gql(url, query, variables = {}, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
}

export const show = (body) => JSON.stringify(body).slice(0, 400);

// The value of extensions.code of the first error, as the gateway shows it.
export function errorCode(body) {
  return body?.errors?.[0]?.extensions?.code;
}

export function expectCode(body, code) {
  assert(Array.isArray(body.errors) && body.errors.length > 0, `expected error ${code}, got ${show(body)}`);
  assert(errorCode(body) === code, `expected extensions.code ${code}, got ${show(body)}`);
}

export function expectPair(body, field) {
  assert(!body.errors, `unexpected errors: ${show(body)}`);
  const pair = body.data?.[field];
  assert(typeof pair?.token === 'string' && pair.token.length > 0, `no token in ${show(body)}`);
  assert(typeof pair?.refresh_token === 'string' && pair.refresh_token.length > 0, `no refresh_token in ${show(body)}`);
  return pair;
}

// The claims of a JWT, not verified.
export function claimsOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

export const LOGIN = `mutation Login($email: String!, $password: String!) {
  generateCustomerToken(email: $email, password: $password) { token refresh_token token_expires_at refresh_token_expires_at }
}`;
export const REFRESH = `mutation Refresh($t: String!) {
  refreshCustomerToken(refresh_token: $t) { token refresh_token }
}`;
export const REVOKE = `mutation Revoke($t: String) {
  revokeCustomerToken(refresh_token: $t) { result }
}`;
export const SESSIONS = `query Sessions { customerSessions { id current remember_me expires_at ip } }`;

// fetchSdl(url): the subgraph SDL, which { _service { sdl } } answers even
// with introspection off.
export async function fetchSdl(url) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ _service { sdl } }' }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.json();
  if (!res.ok || body.errors || !body.data?._service?.sdl) {
    throw new Error(`fetching the subgraph SDL from ${url} failed: HTTP ${res.status} ${JSON.stringify(body.errors ?? body)}`);
  }
  return body.data._service.sdl;
}
