// `require('auth0')`: a client of Claimsmith's own Management API in the
// shapes Auth0 Actions use, whatever version the Action lists. Versions 2
// and 3 answer plain values (`management.getUser({ id })` resolves to the
// user); 4 and later answer `{ data, headers, status }`
// (`management.users.get({ id })`). `claimsmith build` reads the major
// version from the project's `dependencies` (the latest shape when none is
// listed). Requests go through `fetch`, so the plugin's `allowed_origins`
// hold; a method Claimsmith has no route for throws, naming it.

import { naming } from '../common.js';

/* global CLAIMSMITH_AUTH0_MAJOR */
const MAJOR = typeof CLAIMSMITH_AUTH0_MAJOR === 'number' ? CLAIMSMITH_AUTH0_MAJOR : 4;

/** `domain` as a base URL: a host name is https; a whole origin is kept. */
function baseUrl(domain) {
  if (typeof domain !== 'string' || domain === '') {
    throw new TypeError('auth0: `domain` is required');
  }
  const base = /^https?:\/\//i.test(domain) ? domain : `https://${domain}`;
  return base.replace(/\/+$/, '');
}

/** An error as Auth0's SDKs raise them: `statusCode`, `error`, `message`. */
export class ManagementApiError extends Error {
  constructor(statusCode, body) {
    const fields = body !== null && typeof body === 'object' ? body : {};
    // The Management API says `message`; the token endpoint, OAuth's fields.
    const message =
      fields.message ?? fields.error_description ?? fields.error ?? `the request answered ${statusCode}`;
    super(message);
    this.name = MAJOR >= 4 ? 'ManagementApiError' : (body && body.error) || 'APIError';
    this.statusCode = statusCode;
    this.error = fields.error;
    this.errorCode = fields.errorCode;
    this.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
}

async function call(url, init) {
  const response = await fetch(url, init);
  const text = await response.text();
  let body = text;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  if (response.status >= 400) {
    throw new ManagementApiError(response.status, body);
  }
  return { data: body, headers: Object.fromEntries(response.headers.entries()), status: response.status };
}

/** `POST /oauth/token` with the client credentials grant. */
function clientCredentials(base, { clientId, clientSecret, audience }) {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (clientId !== undefined) form.set('client_id', clientId);
  if (clientSecret !== undefined) form.set('client_secret', clientSecret);
  form.set('audience', audience);
  return call(`${base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: form.toString(),
  });
}

/** The Management API's routes Claimsmith has, as plain requests. */
class Api {
  constructor(options) {
    this.base = baseUrl(options.domain);
    this.options = options;
    this.token = options.token;
  }

  async bearer() {
    if (this.token === undefined) {
      const audience = this.options.audience ?? `${this.base}/api/v2/`;
      const { data } = await clientCredentials(this.base, { ...this.options, audience });
      this.token = data.access_token;
    }
    return this.token;
  }

  async request(method, path, { query, body } = {}) {
    const url = new URL(`${this.base}/api/v2${path}`);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    const headers = { authorization: `Bearer ${await this.bearer()}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    return call(url.toString(), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  user(id) {
    return `/users/${encodeURIComponent(id)}`;
  }

  getUser({ id }) {
    return this.request('GET', this.user(id));
  }

  getUsers(params = {}) {
    return this.request('GET', '/users', { query: params });
  }

  getUsersByEmail(email) {
    return this.request('GET', '/users-by-email', { query: { email } });
  }

  updateUser({ id }, body) {
    return this.request('PATCH', this.user(id), { body });
  }
}

const plain = (answer) => answer.then(({ data }) => data);

/** `ManagementClient` of versions 2 and 3: methods answer plain values. */
function managementV3(api) {
  const users = {
    get: (params) => plain(api.getUser(params)),
    getAll: (params) => plain(api.getUsers(params)),
    update: (params, body) => plain(api.updateUser(params, body)),
    getByEmail: (email) => plain(api.getUsersByEmail(email)),
  };
  return naming(
    {
      users: naming(users, 'ManagementClient.users'),
      getUser: users.get,
      getUsers: users.getAll,
      getUsersByEmail: users.getByEmail,
      updateUser: users.update,
      updateUserMetadata: (params, user_metadata) => users.update(params, { user_metadata }),
      updateAppMetadata: (params, app_metadata) => users.update(params, { app_metadata }),
    },
    'ManagementClient',
  );
}

/** `ManagementClient` of version 4 and later: methods answer `{ data }`. */
function managementV4(api) {
  return naming(
    {
      users: naming(
        {
          get: (params) => api.getUser(params),
          getAll: (params) => api.getUsers(params),
          update: (params, body) => api.updateUser(params, body),
        },
        'ManagementClient.users',
      ),
      usersByEmail: naming(
        { getByEmail: ({ email }) => api.getUsersByEmail(email) },
        'ManagementClient.usersByEmail',
      ),
    },
    'ManagementClient',
  );
}

export function ManagementClient(options) {
  if (!new.target) {
    throw new TypeError("ManagementClient must be called with 'new'");
  }
  const api = new Api(options ?? {});
  return MAJOR >= 4 ? managementV4(api) : managementV3(api);
}

export function AuthenticationClient(options) {
  if (!new.target) {
    throw new TypeError("AuthenticationClient must be called with 'new'");
  }
  const base = baseUrl((options ?? {}).domain);
  const grant = ({ audience }) => clientCredentials(base, { ...options, audience });
  return MAJOR >= 4
    ? naming({ oauth: naming({ clientCredentialsGrant: grant }, 'AuthenticationClient.oauth') }, 'AuthenticationClient')
    : naming({ clientCredentialsGrant: (params) => plain(grant(params)) }, 'AuthenticationClient');
}

export default { ManagementClient, AuthenticationClient, ManagementApiError };
