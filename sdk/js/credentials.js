// The credentials-exchange world in Auth0's shape: turns the WIT
// `exchange-event` into Auth0's `event` and `api` objects, calls the plugin's
// `onExecuteCredentialsExchange(event, api)` and awaits it.
//
// Compiled into the plugin by `claimsmith build`, which writes the entry
// module that hands the plugin's function to `credentialsExchange` below.

import * as host from 'claimsmith:plugin/exchange-api@0.1.0';
import * as hostCache from 'claimsmith:plugin/cache@0.1.0';
import {
  actionExport,
  auth0Client,
  cacheApi,
  claimSetter,
  naming,
  parseObject,
  secretsProxy,
} from './common.js';

/**
 * Auth0's denial codes, by the WIT `denial-code` case each is. Auth0 allows
 * only these three, so any other code is the plugin's mistake, not a denial.
 */
const DENIAL_CODES = {
  invalid_scope: 'invalid-scope',
  invalid_request: 'invalid-request',
  server_error: 'server-error',
};

/** The WIT `denial-code` for Auth0's `code`, or an Error naming the allowed ones. */
function denialCode(code) {
  if (typeof code === 'string' && Object.hasOwn(DENIAL_CODES, code)) {
    return DENIAL_CODES[code];
  }
  throw new Error(
    `api.access.deny: \`${String(code)}\` is not one of ${Object.keys(DENIAL_CODES).join(', ')}`,
  );
}

function auth0Api() {
  // Auth0 members Claimsmith lacks throw when called, naming the call.
  return naming(
    {
      accessToken: naming(
        { setCustomClaim: claimSetter('access token', host.setCustomClaim) },
        'api.accessToken',
      ),
      access: naming(
        {
          deny(code, reason) {
            host.deny(denialCode(code), String(reason));
          },
        },
        'api.access',
      ),
      cache: naming(cacheApi(hostCache), 'api.cache'),
    },
    'api',
  );
}

function auth0Event(event) {
  return {
    client: auth0Client(event.client),
    resource_server: { identifier: event.resourceServer.identifier },
    transaction: { requested_scopes: [...event.transaction.requestedScopes] },
    request: {
      ip: event.request.ip,
      hostname: event.request.hostname,
      user_agent: event.request.userAgent,
      language: event.request.language,
      method: event.request.method,
      body: parseObject(event.request.body),
      // Claimsmith has no GeoIP database: Auth0's examples that read
      // `geoip.continentCode` see `undefined` rather than throw.
      geoip: {},
    },
    accessToken: {
      scope: [...event.accessToken.scopes],
      customClaims: parseObject(event.accessToken.customClaims),
    },
    secrets: secretsProxy(),
  };
}

/** The WIT export `on-execute-credentials-exchange` around the plugin's handler. */
export function credentialsExchange(handler) {
  return actionExport(handler, 'onExecuteCredentialsExchange', auth0Event, auth0Api);
}
