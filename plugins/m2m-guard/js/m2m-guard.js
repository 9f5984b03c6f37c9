// A credentials-exchange action: tags a machine client's access token with
// the client's name and the scopes it asked for, or denies the token with
// the OAuth error the client's metadata names in `deny_code` (a suspended
// client, say). Same action in ../rust and ../python.

const CLIENT_CLAIM = 'https://claimsmith.dev/client';
const ASKED_CLAIM = 'https://claimsmith.dev/requested_scopes';

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
}
