// The post-login-action world in Auth0's shape: turns the WIT `event` into
// Auth0's `event` and `api` objects, calls the plugin's
// `onExecutePostLogin(event, api)` (or, when the user comes back from a
// redirect, its `onContinuePostLogin(event, api)`) and awaits it.
//
// Compiled into the plugin by `claimsmith build`, which builds every
// JavaScript action for the `resumable-post-login-action` world and writes
// the entry module that hands the plugin's functions to `postLoginAction`
// and `continuePostLogin` below.

import * as host from 'claimsmith:plugin/api@0.1.0';
import * as hostCache from 'claimsmith:plugin/cache@0.1.0';
import * as hostRedirect from 'claimsmith:plugin/redirect@0.1.0';
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

/** `value` when it is a plain object (`{ ... }`), else a TypeError naming `what`. */
function plainObject(value, what) {
  const prototype =
    value !== null && typeof value === 'object' ? Object.getPrototypeOf(value) : undefined;
  if (prototype !== Object.prototype && prototype !== null) {
    throw new TypeError(`${what} must be a plain object`);
  }
  return value;
}

/** `secret` when it is a non-empty string: a missing one must not sign with `"undefined"`. */
function secretText(secret, what) {
  if (typeof secret !== 'string' || secret === '') {
    throw new TypeError(`${what}: \`secret\` must be a non-empty string`);
  }
  return secret;
}

/**
 * Auth0's `api.redirect`. The host sends the user once the action returns,
 * signs and checks the tokens, and refuses every call on a refresh.
 */
function redirectApi() {
  return {
    sendUserTo(url, { query = {} } = {}) {
      const what = 'api.redirect.sendUserTo';
      const parameters = Object.entries(plainObject(query, `${what}: \`query\``));
      for (const [name, value] of parameters) {
        if (typeof value !== 'string') {
          throw new TypeError(`${what}: the query parameter \`${name}\` must be a string`);
        }
      }
      call(what, () => hostRedirect.sendUserTo(String(url), parameters));
    },
    encodeToken({ secret, payload, expiresInSeconds = 900 } = {}) {
      const what = 'api.redirect.encodeToken';
      const key = secretText(secret, what);
      const text = jsonText(plainObject(payload, `${what}: \`payload\``), `${what}: \`payload\``);
      if (!Number.isSafeInteger(expiresInSeconds) || expiresInSeconds <= 0) {
        throw new TypeError(`${what}: \`expiresInSeconds\` must be a positive integer`);
      }
      return call(what, () => hostRedirect.encodeToken(key, text, BigInt(expiresInSeconds)));
    },
    validateToken({ secret, tokenParameterName = 'session_token' } = {}) {
      const what = 'api.redirect.validateToken';
      const key = secretText(secret, what);
      return parseObject(
        call(what, () => hostRedirect.validateToken(key, String(tokenParameterName))),
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
  // Auth0 members Claimsmith lacks (`api.multifactor`, `api.authentication`,
  // ...) throw when called, naming the call.
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
      redirect: naming(redirectApi(), 'api.redirect'),
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

/**
 * The WIT export `on-continue-post-login` around the plugin's
 * `onContinuePostLogin`; a plugin without one changes nothing when the user
 * comes back, and the chain resumes, as in Auth0.
 */
export function continuePostLogin(handler) {
  if (handler === undefined) {
    return function resume() {};
  }
  return actionExport(handler, 'onContinuePostLogin', auth0Event, auth0Api);
}
