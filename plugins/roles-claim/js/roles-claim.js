// Maps the profile's upstream `groups`, then the roles the user holds in
// Claimsmith (`event.authorization.roles`) that are not among them, to the
// namespaced claim `https://claimsmith.dev/roles` on both tokens; denies a
// user with neither when the client's metadata says `require_group = true`
// (same action in ../rust and ../python).

const ROLES_CLAIM = 'https://claimsmith.dev/roles';

/**
 * @param {import('./claimsmith').PostLoginEvent} event
 * @param {import('./claimsmith').PostLoginApi} api
 */
export async function onExecutePostLogin(event, api) {
  const profileGroups = event.user.profile.groups ?? [];
  if (!Array.isArray(profileGroups)) throw new Error('`groups` must be a list of strings');
  if (!profileGroups.every((group) => typeof group === 'string')) {
    throw new Error('`groups` must hold only strings');
  }
  const held = event.authorization.roles.filter((role) => !profileGroups.includes(role));
  const groups = [...profileGroups, ...held];
  if (groups.length === 0 && event.client.metadata.require_group === true) {
    api.access.deny('a group membership is required to sign in to this app');
    return;
  }
  api.accessToken.setCustomClaim(ROLES_CLAIM, groups);
  api.idToken.setCustomClaim(ROLES_CLAIM, groups);
}
