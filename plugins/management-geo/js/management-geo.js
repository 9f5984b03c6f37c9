// The reference scenario's post-login Action on Claimsmith (same action in
// ../rust and ../python): it reads the user's attributes through the
// Management API, as the original did with `ManagementClient.getUser`, and
// sets `geo_ip_country` on the access token. `fetch` is the host's, limited
// to the plugin's `allowed_origins`; the secrets are the original's.

/** The original's `new ManagementClient({ domain, clientId, clientSecret })`. */
function managementClient({ domain, clientId, clientSecret }) {
  const base = /^https?:\/\//.test(domain) ? domain.replace(/\/+$/, '') : 'https://' + domain;
  return {
    async getUser({ id }) {
      const token = await fetch(base + '/oauth/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: clientId,
          client_secret: clientSecret,
          audience: base + '/api/v2/',
        }).toString(),
      });
      if (token.status !== 200) throw new Error('the token request answered ' + token.status);
      const { access_token } = JSON.parse(await token.text());
      const user = await fetch(base + '/api/v2/users/' + encodeURIComponent(id), {
        headers: { Authorization: 'Bearer ' + access_token, Accept: 'application/json' },
      });
      // A user the Management API does not know (deleted meanwhile, say)
      // has no country to read. (The user being signed in it knows, first
      // sign-in included.)
      if (user.status === 404) return {};
      if (user.status !== 200) throw new Error('getUser answered ' + user.status);
      return JSON.parse(await user.text());
    },
  };
}

/**
 * @param {import('./claimsmith').PostLoginEvent} event
 * @param {import('./claimsmith').PostLoginApi} api
 */
export async function onExecutePostLogin(event, api) {
  const management = managementClient({
    domain: event.secrets.domain,
    clientId: event.secrets.clientId,
    clientSecret: event.secrets.clientSecret,
  });

  const params = { id: event.user.user_id };
  const user_attributes = await management.getUser(params);

  if ('geo_ip_country' in user_attributes) {
    api.accessToken.setCustomClaim('geo_ip_country', user_attributes['geo_ip_country']);
  }
}
