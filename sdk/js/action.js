// The post-login-action world in Auth0's shape: turns the WIT `event` into
// Auth0's `event` and `api` objects, calls the plugin's
// `onExecutePostLogin(event, api)` and awaits it.
//
// Compiled into the plugin by `claimsmith build`, which writes the entry
// module that hands the plugin's function to `postLoginAction` below.

import * as host from 'claimsmith:plugin/api@0.1.0';
import * as hostCache from 'claimsmith:plugin/cache@0.1.0';
import {
  actionExport,
  auth0Client,
  cacheApi,
  call,
  claimSetter,
  jsonText,
  naming,
  parseObject,
  secretsProxy,
} from './common.js';

function tokenApi(token, label) {
  return {
    setCustomClaim: claimSetter(label, (name, text) => host.setCustomClaim(token, name, text)),
    removeCustomClaim(name) {
      call(`cannot remove the ${label} claim \`${name}\``, () =>
        host.removeCustomClaim(token, name),
      );
    },
  };
}

function auth0Api() {
  const accessToken = tokenApi('access-token', 'access token');
  accessToken.addScope = (scope) =>
    call(`cannot add the scope \`${scope}\``, () => host.addScope(scope));
  accessToken.removeScope = (scope) => host.removeScope(scope);
  const metadata = (set, kind) => (key, value) => {
    const text = jsonText(value === undefined ? null : value, `${kind} metadata \`${key}\``);
    call(`cannot set ${kind} metadata \`${key}\``, () => set(key, text));
  };
  // Auth0 members Claimsmith lacks (`api.redirect`, `api.multifactor`, ...)
  // throw when called, naming the call.
  return naming(
    {
      accessToken: naming(accessToken, 'api.accessToken'),
      idToken: naming(tokenApi('id-token', 'id token'), 'api.idToken'),
      access: naming(
        {
          deny(reason) {
            host.deny(String(reason));
          },
        },
        'api.access',
      ),
      user: naming(
        {
          setUserMetadata: metadata(host.setUserMetadata, 'user'),
          setAppMetadata: metadata(host.setAppMetadata, 'app'),
        },
        'api.user',
      ),
      cache: naming(cacheApi(hostCache), 'api.cache'),
    },
    'api',
  );
}

function auth0Event(event) {
  const profile = parseObject(event.user.profile);
  const transaction = parseObject(event.transaction);
  const [connection, subject] = splitUserId(event.user.userId);
  const user = {
    // Auth0 puts the profile's attributes on `event.user` itself.
    ...profile,
    user_id: event.user.userId,
    profile,
    user_metadata: parseObject(event.user.userMetadata),
    app_metadata: parseObject(event.user.appMetadata),
    last_login: event.user.lastLogin,
    created_at: event.user.createdAt,
    updated_at: new Date().toISOString(),
    email_verified: profile.email_verified === true,
    identities: [
      { connection, user_id: subject, provider: event.connection.strategy, isSocial: false },
    ],
  };
  return {
    user,
    stats: { logins_count: event.user.loginsCount },
    client: auth0Client(event.client),
    connection: { name: event.connection.name, strategy: event.connection.strategy },
    request: {
      ip: event.request.ip,
      hostname: event.request.hostname,
      user_agent: event.request.userAgent,
      language: event.request.language,
      query: parseObject(event.request.query),
    },
    transaction,
    authentication: parseObject(event.authentication),
    authorization: { roles: [...event.authorization.roles] },
    resource_server: event.audience === undefined ? undefined : { identifier: event.audience },
    access_token_claims: parseObject(event.accessTokenClaims),
    id_token_claims: parseObject(event.idTokenClaims),
    secrets: secretsProxy(),
  };
}

/** `connection|subject` as its two parts (the subject may hold `|`). */
function splitUserId(userId) {
  const at = userId.indexOf('|');
  return at < 0 ? ['', userId] : [userId.slice(0, at), userId.slice(at + 1)];
}

/** The WIT export `on-execute-post-login` around the plugin's handler. */
export function postLoginAction(handler) {
  return actionExport(handler, 'onExecutePostLogin', auth0Event, auth0Api);
}
