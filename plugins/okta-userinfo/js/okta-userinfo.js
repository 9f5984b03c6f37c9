// Okta userinfo profile fetcher: the reference scenario's Auth0 Fetch User
// Profile script, on Claimsmith (same plugin in ../rust and ../python).
// A Promise replaces Auth0's callback; `fetch` is the host's, limited to
// the plugin's `allowed_origins`.

/**
 * @param {string} accessToken
 * @param {import('./claimsmith').FetchUserProfileContext} ctx
 */
export async function fetchUserProfile(accessToken, ctx) {
  const url = ctx.options.userinfo_url;
  if (url === undefined) throw new Error('connection option `userinfo_url` is missing');
  if (typeof url !== 'string') throw new Error('connection option `userinfo_url` is not a string');

  const r = await fetch(url, {
    method: 'GET',
    headers: {
      Authorization: 'Bearer ' + accessToken,
      Accept: 'application/json',
    },
  });
  if (r.status !== 200) throw new Error('StatusCode: ' + r.status);
  let profile;
  try {
    profile = JSON.parse(await r.text());
  } catch (e) {
    throw new Error('userinfo response is not a JSON object: ' + e.message);
  }
  if (profile === null || typeof profile !== 'object' || Array.isArray(profile)) {
    throw new Error('userinfo response is not a JSON object');
  }

  const idToken = ctx.idTokenClaims;
  profile.geo_ip_country = 'Unknown';
  if (idToken.geoipcountry != null) {
    profile.geo_ip_country = idToken.geoipcountry;
  }
  delete profile.user_type;
  return profile;
}
