// A real OpenID provider for Portero's demo and browser tests: the certified
// `oidc-provider` package with demo users whose claims cover the personas of
// DESIGN.md. Configuration comes from the environment:
//   DEMO_IDP_ISSUER   issuer URL (default http://localhost:9400)
//   DEMO_PORTERO_URL  the gateway's public URL (default http://localhost:8080)
//   DEMO_TOKEN_TTL    ID/access token lifetime in seconds (default 300)
import crypto from 'node:crypto';
import dns from 'node:dns';
import http from 'node:http';
import { Provider } from 'oidc-provider';
// The demo's state is in memory on purpose (sign-ins end with the process):
// naming oidc-provider's memory adapter says so, instead of its start-up
// warning about a "development-only" default.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const issuer = process.env.DEMO_IDP_ISSUER || 'http://localhost:9400';
const portero = process.env.DEMO_PORTERO_URL || 'http://localhost:8080';
const tokenTTL = Number(process.env.DEMO_TOKEN_TTL || 300);
export const PASSWORD = 'portero';

// The personas. Roles are "<tenant>:<role>"; Portero indexes them by tenant.
export const USERS = {
  admin: { name: 'Sam Admin', email: 'sam@portero.example', org: 'portero-support', groups: ['system-admins'], roles: [], tenants: [],
    persona: 'system admin (support staff)' },
  owner: { name: 'Olivia Owner', email: 'olivia@acme.example', org: 'acme', groups: [], roles: ['acme:administrator'], tenants: ['acme'],
    persona: 'tenant owner of acme (administrator)' },
  accountant: { name: 'Avery Accountant', email: 'avery@acme.example', org: 'acme', groups: ['accounting'], roles: ['acme:account_manager'], tenants: ['acme'],
    persona: 'acme account manager with the accounting (billing only) profile' },
  locmgr: { name: 'Leo Location', email: 'leo@acme.example', org: 'acme', groups: [], roles: ['acme:location_manager'], tenants: ['acme'],
    persona: 'acme location manager (assigned locations only)' },
  partner: { name: 'Pat Partner', email: 'pat@partnerco.example', org: 'partnerco', groups: [], roles: ['globex:account_manager'], tenants: [],
    persona: 'user of partner organisation partnerco, managing globex' },
  nora: { name: 'Nora Díaz', email: 'nora@acme.example', org: 'acme', groups: [], roles: [], tenants: [],
    persona: 'nobody\'s member yet: invite nora@acme.example to acme from the console' },
};

// Start-up stages go to stderr so a slow or stuck start shows where it is.
const started = Date.now();
const stage = (what) => process.stderr.write(`demo IdP: ${what} (+${Date.now() - started} ms)\n`);
stage('modules loaded');

// A P-256 key made at start: generating one takes about a millisecond, where
// an RSA key takes a random, sometimes long, time on a busy machine.
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'demo-es256', use: 'sig', alg: 'ES256' };
stage('signing key ready');

const configuration = {
  adapter: createMemoryAdapter(),
  clients: [{
    client_id: 'portero-demo',
    client_secret: 'demo-secret',
    redirect_uris: [`${portero}/.portero/callback`],
    post_logout_redirect_uris: [`${portero}/`],
    // OpenID Connect Back-Channel Logout 1.0: signing out here (the
    // end_session endpoint) posts a logout token to the gateway, which ends
    // the sessions started from this IdP session on every replica. With
    // session_required the ID tokens carry sid and so do the logout tokens.
    backchannel_logout_uri: `${portero}/.portero/backchannel-logout`,
    backchannel_logout_session_required: true,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'portero'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    portero: ['roles', 'groups', 'org', 'tenants'],
  },
  // Put the scopes' claims in the ID token: Portero builds its identity from it.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // The IdP's own confirmation, without the default page's web fonts.
      logoutSource: async (ctx, form) => {
        ctx.body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign out — demo IdP</title>
<style>body{font-family:system-ui,sans-serif;max-width:30rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.5rem}</style></head>
<body><h1>Sign out of the demo IdP?</h1>${form}
<button id="idp-signout" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button id="idp-stay" type="submit" form="op.logoutForm">No, stay signed in</button></body></html>`;
      },
    },
  },
  // oidc-provider refuses to post to loopback and private addresses (its
  // SSRF guard); the demo gateway is on 127.0.0.1, so its back-channel
  // logout URI alone goes without the guard.
  fetch: (url, options) => {
    if (new URL(url).origin === new URL(portero).origin) {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    }
    return globalThis.fetch(url, options);
  },
  ttl: { AccessToken: tokenTTL, IdToken: tokenTTL, RefreshToken: 86400, Session: 86400, Grant: 86400, Interaction: 600 },
  // The demo client may refresh whether or not offline_access was granted.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: async (ctx, id) => USERS[id] && {
    accountId: id,
    claims: async () => {
      const { persona, ...claims } = USERS[id];
      return { sub: id, email_verified: true, ...claims };
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Portero is a first-party client: grant every scope, ask no consent.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid offline_access email profile portero');
    await grant.save();
    return grant;
  },
};

// The gateway listens on 127.0.0.1: "localhost" in its URL must not
// resolve to ::1 first when this process posts back-channel logouts.
dns.setDefaultResultOrder('ipv4first');
const provider = new Provider(issuer, configuration);
// Back-channel logouts are sent server to server: say how each went.
provider.on('backchannel.success', (ctx, client, accountId, sid) => stage(`back-channel logout of ${accountId} (sid ${sid}) sent to ${client.clientId}`));
provider.on('backchannel.error', (ctx, err, client, accountId, sid) => stage(`back-channel logout of ${accountId} (sid ${sid}) to ${client.clientId} failed: ${err.message}`));
const callback = provider.callback();
stage('provider ready');

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(uid, error) {
  const rows = Object.entries(USERS).map(([id, u]) => `<tr><td><code>${id}</code></td><td>${esc(u.name)}</td><td>${esc(u.persona)}</td></tr>`).join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — demo IdP</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}
label{display:block;margin:.6rem 0 .2rem}input{font-size:1rem;padding:.4rem;width:16rem}button{margin-top:1rem;font-size:1rem;padding:.5rem 1.2rem}
.error{color:#a00}table{border-collapse:collapse;margin-top:2rem}td{border-top:1px solid #ddd;padding:.3rem .6rem}</style></head>
<body><h1>Demo identity provider</h1>
${error ? `<p class="error" id="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<div><button id="signin" type="submit">Sign in</button></div></form>
<table><caption>Demo users (password <code>${PASSWORD}</code>)</caption>${rows}</table></body></html>`;
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 8192) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

const server = http.createServer(async (req, res) => {
  const m = req.url.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!m) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET' && !m[2]) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      return res.end(loginPage(details.uid));
    }
    if (req.method === 'POST' && m[2]) {
      const form = await readForm(req);
      const user = form.get('username');
      if (!USERS[user] || form.get('password') !== PASSWORD) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        return res.end(loginPage(details.uid, 'Unknown user or wrong password.'));
      }
      return await provider.interactionFinished(req, res, { login: { accountId: user } }, { mergeWithLastSubmission: false });
    }
    res.writeHead(405).end();
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`interaction failed: ${err.message}`);
  }
});

const port = Number(new URL(issuer).port || 80);
server.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'demo IdP listening', issuer, token_ttl: tokenTTL }));
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
