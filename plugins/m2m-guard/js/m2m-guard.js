// A credentials-exchange action: tags a machine client's access token with
// the client's name, the scopes it asked for and how many tokens it got
// from this host (counted in `api.cache`), or denies the token with
// the OAuth error the client's metadata names in `deny_code` (a suspended
// client, say). Same action in ../rust and ../python.

const CLIENT_CLAIM = 'https://claimsmith.dev/client';
const ASKED_CLAIM = 'https://claimsmith.dev/requested_scopes';
const ISSUED_CLAIM = 'https://claimsmith.dev/tokens_issued';

/**
 * @param {import('./claimsmith').CredentialsExchangeEvent} event
 * @param {import('./claimsmith').CredentialsExchangeApi} api
 */
export async function onExecuteCredentialsExchange(event, api) {
  const code = event.client.metadata.deny_code;
  if (code !== undefined) {
    api.access.deny(code, `client ${event.client.client_id} is suspended`);
    return;
  }
  api.accessToken.setCustomClaim(CLIENT_CLAIM, event.client.name);
  api.accessToken.setCustomClaim(ASKED_CLAIM, event.transaction.requested_scopes);
  const key = `tokens:${event.client.client_id}`;
  const issued = Number(api.cache.get(key)?.value ?? 0) + 1;
  api.cache.set(key, String(issued));
  api.accessToken.setCustomClaim(ISSUED_CLAIM, issued);
}
