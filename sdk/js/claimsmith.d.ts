// Types of the Claimsmith JavaScript SDK, so editors complete `event.`,
// `api.` and `ctx.`. A plugin refers to them in JSDoc:
//
//   /** @param {import('./claimsmith').PostLoginEvent} event
//    *  @param {import('./claimsmith').PostLoginApi} api */
//   export async function onExecutePostLogin(event, api) { ... }
//
// (The same two for `onContinuePostLogin`, run when a user sent away with
// `api.redirect.sendUserTo` comes back; `CredentialsExchangeEvent` and
// `CredentialsExchangeApi` for `onExecuteCredentialsExchange`.)
//
// `claimsmith new --lang js` writes this file next to the plugin.

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The plugin's secrets from config; an unknown name reads as `undefined`. */
export type Secrets = Readonly<Record<string, string | undefined>>;

/** The user signing in. Auth0 puts the profile's attributes here too. */
export interface User {
  /** `connection|upstream subject`. */
  user_id: string;
  /** The profile the profile fetcher returned. */
  profile: Record<string, Json>;
  user_metadata: Record<string, Json>;
  app_metadata: Record<string, Json>;
  /** When the previous login happened (RFC 3339), if there was one. */
  last_login?: string;
  /** When the user was first stored (RFC 3339): now, on a first login. */
  created_at: string;
  updated_at: string;
  /** One entry: the connection and the upstream's subject. */
  identities: { connection: string; user_id: string; provider: string; isSocial: boolean }[];
  email?: string;
  email_verified?: boolean;
  name?: string;
  [profileAttribute: string]: Json | undefined;
}

/** The application asking: a browser app at a login, a machine client at a credentials exchange. */
export interface Client {
  client_id: string;
  name: string;
  /** The client's `metadata` table from config. */
  metadata: Record<string, Json>;
}

/** Everything a post-login action sees, in Auth0's shape. */
export interface PostLoginEvent {
  user: User;
  stats: { logins_count: number };
  client: Client;
  connection: { name: string; strategy: string };
  request: {
    ip?: string;
    hostname?: string;
    user_agent?: string;
    language?: string;
    /** The authorization request's parameters (empty on a refresh). */
    query: Record<string, string>;
  };
  transaction: {
    /** `oidc-basic-profile` for a sign-in, `oauth2-refresh-token` for a refresh. */
    protocol: 'oidc-basic-profile' | 'oauth2-refresh-token';
    /** The scopes the app asked for. */
    requested_scopes: string[];
    redirect_uri?: string;
    response_type: string[];
    ui_locales: string[];
    acr_values: string[];
    login_hint?: string;
  };
  /** One method per upstream `amr` value, at the upstream's `auth_time`. */
  authentication: { methods: { name: string; timestamp: string }[] };
  /** The names of the user's roles, sorted (assigned through the Management API or the connection's `roles_from`). */
  authorization: { roles: string[] };
  /** The access token's audience, when there is one. */
  resource_server?: { identifier: string };
  /** Custom claims the actions before this one set. */
  access_token_claims: Record<string, Json>;
  id_token_claims: Record<string, Json>;
  secrets: Secrets;
}

export interface TokenApi {
  /** Sets a custom claim (reserved claims such as `sub` throw); `undefined` sets nothing. */
  setCustomClaim(name: string, value: Json | undefined): void;
  removeCustomClaim(name: string): void;
}

export interface AccessTokenApi extends TokenApi {
  addScope(scope: string): void;
  removeScope(scope: string): void;
}

/** What a post-login action may change, in Auth0's shape. Refused changes throw. */
export interface PostLoginApi {
  accessToken: AccessTokenApi;
  idToken: TokenApi;
  access: {
    /** Denies the login; no token is minted. */
    deny(reason: string): void;
  };
  user: {
    setUserMetadata(key: string, value: Json): void;
    setAppMetadata(key: string, value: Json): void;
  };
  /** Short-lived strings this action keeps across logins (kept by the host). */
  cache: CacheApi;
  redirect: RedirectApi;
}

/** Auth0's `api.redirect`: sending the user to another page mid-login. On a refresh every call throws. */
export interface RedirectApi {
  /**
   * Sends the user to `url` with the `query` parameters once the action
   * returns (a later call replaces this one; a denial wins). The chain
   * resumes when they come back to `<issuer>/continue`, with this action's
   * `onContinuePostLogin`.
   */
  sendUserTo(url: string, options?: { query?: Record<string, string> }): void;
  /**
   * A token (an HS256 JWT signed with `secret`) carrying `payload` for the
   * page the user is sent to, expiring after `expiresInSeconds` (900 unless
   * given).
   */
  encodeToken(options: {
    secret: string;
    payload: Record<string, Json>;
    expiresInSeconds?: number;
  }): string;
  /**
   * The payload of the token the user brought back in the continue
   * request's parameter `tokenParameterName` (`session_token` unless given),
   * once its signature, expiry and login check out. In `onContinuePostLogin`
   * only.
   */
  validateToken(options: { secret: string; tokenParameterName?: string }): Record<string, Json>;
}

/** Auth0's `api.cache`, in both action worlds: strings the host keeps per action. */
export interface CacheApi {
  get(key: string): { value: string; expires_at: number } | undefined;
  set(
    key: string,
    value: string,
    options?: { ttl?: number; expires_at?: number },
  ):
    | { type: 'success'; record: { value: string; expires_at: number } }
    | { type: 'error'; code: 'invalid-key' | 'value-too-large' | 'cache-full' | 'invalid-lifetime' };
  delete(key: string): { type: 'success' };
}

/** A machine client's token request, in Auth0's credentials-exchange shape. */
export interface CredentialsExchangeEvent {
  client: Client;
  /** The API the token is for: its identifier is the token's audience. */
  resource_server: { identifier: string };
  transaction: {
    /** The scopes the client asked for, as it asked. */
    requested_scopes: string[];
  };
  request: {
    ip?: string;
    hostname?: string;
    user_agent?: string;
    language?: string;
    /** `POST`. */
    method: string;
    /** The form fields, without the client's credentials. */
    body: Record<string, Json>;
    /** Always empty: Claimsmith has no GeoIP database. */
    geoip: Record<string, never>;
  };
  accessToken: {
    /** The scopes the token will carry: those requested and allowed. */
    scope: string[];
    /** Custom claims the actions before this one set. */
    customClaims: Record<string, Json>;
  };
  secrets: Secrets;
}

/** The OAuth errors a credentials-exchange denial may answer with (Auth0's three). */
export type DenialCode = 'invalid_scope' | 'invalid_request' | 'server_error';

/** What a credentials-exchange action may change, in Auth0's shape. Refused changes throw. */
export interface CredentialsExchangeApi {
  accessToken: {
    /** Sets a custom claim (reserved claims such as `sub` throw); `undefined` sets nothing. */
    setCustomClaim(name: string, value: Json | undefined): void;
  };
  access: {
    /** Denies the token request with the OAuth error `code`; any other code throws. */
    deny(code: DenialCode, reason: string): void;
  };
  /** Short-lived strings this action keeps across token requests (kept by the host). */
  cache: CacheApi;
}

/** What a profile fetcher receives besides the upstream access token. */
export interface FetchUserProfileContext {
  /** The connection's name in config. */
  connection: string;
  /** The upstream id token, as received (a compact JWT). */
  id_token: string;
  /** The id token's claims, already verified by the host. */
  idTokenClaims: Record<string, Json>;
  /** The connection's `options` table from config. */
  options: Record<string, Json>;
  secrets: Secrets;
}

/** A post-login action: `export async function onExecutePostLogin(event, api)`. */
export type OnExecutePostLogin = (event: PostLoginEvent, api: PostLoginApi) => void | Promise<void>;

/**
 * Its optional continue handler, run when the user comes back from
 * `api.redirect.sendUserTo`: `export async function onContinuePostLogin(event, api)`.
 */
export type OnContinuePostLogin = OnExecutePostLogin;

/** A credentials-exchange action: `export async function onExecuteCredentialsExchange(event, api)`. */
export type OnExecuteCredentialsExchange = (
  event: CredentialsExchangeEvent,
  api: CredentialsExchangeApi,
) => void | Promise<void>;

/** A profile fetcher: `export async function fetchUserProfile(accessToken, ctx)`. */
export type FetchUserProfile = (
  accessToken: string,
  ctx: FetchUserProfileContext,
) => Record<string, Json> | Promise<Record<string, Json>>;
