// The comparison peer for `cargo xtask bench`: node-oidc-provider doing its own
// authorization code flow (PKCE S256, ES256 ID token, JWT access token for
// https://api.example.com) with a JS claims hook standing in for Claimsmith's
// seed chain (geo-claims puts geo_ip_country on the access token, roles-claim
// puts the upstream groups in https://claimsmith.dev/roles). The interaction signs the one user `ada` in
// at once, as Claimsmith's development upstream does. Not shipped; it listens
// on loopback only. Claimsmith persists users, audit rows and refresh tokens
// in SQLite; this peer keeps everything in oidc-provider's in-memory adapter
// (a bounded LRU), so the comparison favours the peer.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT ?? 8092);
const issuer = `http://127.0.0.1:${port}`;
const RESOURCE = 'https://api.example.com';
const RESOURCE_SCOPE = 'openid profile email';

// One ES256 signing key per run.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'ES256', use: 'sig' };

// The upstream user, as Claimsmith's development upstream would hand it over.
const ADA = {
  name: 'Ada Lovelace',
  email: 'ada@example.com',
  email_verified: true,
  geo_ip_country: 'NZ',
  groups: ['admins', 'engineers'],
};

// roles-claim's job: the upstream groups, as strings, become the roles claim.
const ROLES_CLAIM = 'https://claimsmith.dev/roles';
function rolesFor(groups) {
  return groups.filter((group) => typeof group === 'string');
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench-app',
    client_secret: 'bench-app-secret-0123456789',
    redirect_uris: ['http://127.0.0.1:9/bench/app'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
  },
  async findAccount(ctx, id) {
    const { groups, ...profile } = ADA;
    return { accountId: id, claims: async () => ({ sub: id, ...profile }) };
  },
  // geo-claims and roles-claim, on the access token.
  async extraTokenClaims(ctx, token) {
    return { geo_ip_country: ADA.geo_ip_country, [ROLES_CLAIM]: rolesFor(ADA.groups) };
  },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
        return {
          scope: RESOURCE_SCOPE,
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  // Errors as plain JSON (the default page would also print a notice to stdout).
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Refresh tokens (for scope offline_access, which oidc-provider keeps only
  // with prompt=consent) rotate on every use, as Claimsmith's do.
  rotateRefreshToken: true,
  // Claimsmith's defaults; set explicitly so no "default TTL" notice is printed.
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 30 * 24 * 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
});

// The interaction: sign `ada` in and grant what the app asked for, at once.
async function interaction(req, res) {
  const { params, grantId } = await provider.interactionDetails(req, res);
  const accountId = 'ada';
  const grant = (grantId && await provider.Grant.find(grantId))
    ?? new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  grant.addResourceScope(RESOURCE, RESOURCE_SCOPE);
  const consent = { grantId: await grant.save() };
  await provider.interactionFinished(req, res, { login: { accountId }, consent }, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = createServer((req, res) => {
  if (req.method === 'GET' && /^\/interaction\/[^/?]+(\?|$)/.test(req.url)) {
    interaction(req, res).catch((error) => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${error.message}\n`);
    });
    return;
  }
  callback(req, res);
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`peer ready ${issuer}\n`);
});
