// Copies the profile's `geo_ip_country` into the access token (same action
// in ../rust and ../python). A profile without it leaves the token unchanged.

/**
 * @param {import('./claimsmith').PostLoginEvent} event
 * @param {import('./claimsmith').PostLoginApi} api
 */
export async function onExecutePostLogin(event, api) {
  api.accessToken.setCustomClaim('geo_ip_country', event.user.profile.geo_ip_country);
}
