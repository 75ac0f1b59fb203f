// The demo storefront's whole client: no framework, no build step.
//
// meshauth runs in cookie mode (REFRESH_TOKEN_COOKIE=true): login and refresh
// set the refresh token in an HttpOnly cookie, and only there (the body's
// refresh_token is null), and refreshCustomerToken and revokeCustomerToken
// without an argument read it. So this script never sees a refresh token. The access token is kept in a variable of this tab, never
// in localStorage or sessionStorage, and a new tab gets its own by refreshing
// with the cookie.
"use strict";

(() => {
  const GRAPHQL = "/graphql"; // same origin: the storefront server proxies it to meshauth
  const CSRF_HEADER = "X-Requested-With"; // meshauth requires it when the token comes from the cookie
  const CLIENT_NAME = "meshauth-storefront";

  // Codes after which there is no session: show the login form.
  // BAD_USER_INPUT is what a cookie-less refresh gets ("refresh_token is required.").
  const SIGNED_OUT_CODES = new Set(["INVALID_REFRESH_TOKEN", "REFRESH_TOKEN_REUSED", "SESSION_EXPIRED", "BAD_USER_INPUT"]);

  const LOGIN = `mutation Login($email: String!, $password: String!, $remember: Boolean) {
  generateCustomerToken(email: $email, password: $password, remember_me: $remember) { token token_expires_at }
}`;
  const REFRESH = "mutation Refresh { refreshCustomerToken { token token_expires_at } }";
  const REVOKE = "mutation SignOut { revokeCustomerToken { result } }";

  // In-memory session of this tab.
  let session = null; // { token, claims }
  let refreshes = 0;
  let inflight = null; // one refresh at a time per tab
  let timer = 0;

  const $ = (id) => document.getElementById(id);

  async function gql(query, variables) {
    let res;
    try {
      res = await fetch(GRAPHQL, {
        method: "POST",
        credentials: "include",
        headers: { "Content-Type": "application/json", [CSRF_HEADER]: CLIENT_NAME },
        body: JSON.stringify(variables ? { query, variables } : { query }),
      });
    } catch (err) {
      return { error: { code: "NETWORK", message: "meshauth could not be reached." } };
    }
    let body;
    try {
      body = await res.json();
    } catch {
      return { error: { code: "HTTP_" + res.status, message: "Unexpected response from the server." } };
    }
    const e = body.errors && body.errors[0];
    if (e) return { error: { code: (e.extensions && e.extensions.code) || "ERROR", message: e.message } };
    return { data: body.data };
  }

  // The access token's claims, for display: this decodes, it does not verify
  // (the servers that accept the token verify it).
  function claimsOf(jwt) {
    const part = jwt.split(".")[1] || "";
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function utc(unixSeconds) {
    return new Date(unixSeconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }

  function summary() {
    if (!session) return { signedIn: false, refreshes };
    const c = session.claims;
    return { signedIn: true, customer_id: c.customer_id, sid: c.sid, jti: c.jti, exp: c.exp, refreshes };
  }

  function setStatus(text, kind) {
    const s = $("status");
    s.textContent = text;
    s.className = kind || "";
  }

  function render() {
    const signedIn = session !== null;
    document.body.dataset.state = signedIn ? "signed-in" : "signed-out";
    $("login").hidden = signedIn;
    $("session").hidden = !signedIn;
    if (signedIn) {
      const c = session.claims;
      $("customer-id").textContent = c.customer_id;
      $("session-id").textContent = c.sid;
      $("token-expiry").textContent = utc(c.exp);
      $("refresh-count").textContent = String(refreshes);
    }
  }

  function busy(on) {
    document.body.dataset.busy = on ? "true" : "false";
    for (const b of document.querySelectorAll("button")) b.disabled = on;
  }

  function adopt(token) {
    session = { token, claims: claimsOf(token) };
    // Refresh a minute before the access token expires (at least 5 s from now).
    clearTimeout(timer);
    const ms = Math.max(5000, session.claims.exp * 1000 - Date.now() - 60000);
    timer = setTimeout(() => refresh(), ms);
  }

  function drop() {
    session = null;
    clearTimeout(timer);
  }

  async function doRefresh() {
    const r = await gql(REFRESH);
    if (r.error) {
      const signedOut = SIGNED_OUT_CODES.has(r.error.code);
      if (signedOut) drop();
      render();
      return { ok: false, code: r.error.code, message: r.error.message, signedOut };
    }
    refreshes++;
    adopt(r.data.refreshCustomerToken.token);
    render();
    return { ok: true, ...summary(), token_expires_at: r.data.refreshCustomerToken.token_expires_at };
  }

  // refresh rotates the session with the cookie. Calls while one is in
  // flight share it; several tabs refreshing at once are meshauth's business
  // (they all receive the same new pair).
  function refresh() {
    if (!inflight) {
      inflight = doRefresh().finally(() => {
        inflight = null;
      });
    }
    return inflight;
  }

  async function login(email, password, remember) {
    const r = await gql(LOGIN, { email, password, remember: Boolean(remember) });
    if (r.error) return { ok: false, code: r.error.code, message: r.error.message };
    refreshes = 0;
    adopt(r.data.generateCustomerToken.token);
    render();
    return { ok: true, ...summary(), token_expires_at: r.data.generateCustomerToken.token_expires_at };
  }

  async function signOut() {
    const r = await gql(REVOKE);
    // Forget the access token whatever the answer: this tab is signed out.
    drop();
    render();
    if (r.error) return { ok: false, code: r.error.code, message: r.error.message };
    return { ok: true };
  }

  // UI wiring.
  function onRefreshClick() {
    busy(true);
    refresh()
      .then((r) => {
        if (r.ok) setStatus("Token refreshed at " + new Date().toISOString().slice(11, 19) + " UTC.", "ok");
        else if (r.signedOut) setStatus("Refresh failed (" + r.code + "): sign in again.", "error");
        else setStatus("Refresh failed (" + r.code + "): try again.", "error");
      })
      .finally(() => busy(false));
  }

  function onLogin(ev) {
    ev.preventDefault();
    busy(true);
    login($("email").value, $("password").value, $("remember").checked)
      .then((r) => {
        if (r.ok) {
          $("password").value = "";
          setStatus("Signed in.", "ok");
        } else {
          setStatus("Sign-in failed (" + r.code + "): " + r.message, "error");
        }
      })
      .finally(() => busy(false));
  }

  function onSignOut() {
    busy(true);
    signOut()
      .then((r) => setStatus(r.ok ? "Signed out." : "Signed out here; the server said " + r.code + ".", r.ok ? "" : "error"))
      .finally(() => busy(false));
  }

  // On load, restore the session from the cookie if the browser has one.
  async function restore() {
    setStatus("Restoring your session…");
    const r = await refresh();
    if (r.ok) setStatus("Session restored from the cookie.", "ok");
    else if (r.signedOut) setStatus("Not signed in.");
    else setStatus("Could not restore the session (" + r.code + ").", "error");
    return r;
  }

  function start() {
    $("login").addEventListener("submit", onLogin);
    $("refresh").addEventListener("click", onRefreshClick);
    $("signout").addEventListener("click", onSignOut);
    busy(true);
    const ready = restore().finally(() => busy(false));
    // Hooks for tests and the console.
    window.storefront = Object.freeze({ ready, refresh, login, signOut, state: summary });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
