// The profile-fetcher world in the shape of Auth0's Fetch User Profile
// script: calls the plugin's `fetchUserProfile(accessToken, ctx)` and hands
// the profile it returns (or resolves to) back to the host.
//
// Compiled into the plugin by `claimsmith build`, which writes the entry
// module that hands the plugin's function to `profileFetcher` below.

import { errorText, jsonText, parseObject, secretsProxy } from './common.js';

/** The WIT export `fetch-profile` around the plugin's function. */
export function profileFetcher(fetchUserProfile) {
  if (typeof fetchUserProfile !== 'function') {
    throw new TypeError('the plugin must export `fetchUserProfile(accessToken, ctx)`');
  }
  return async function fetchProfile(context) {
    try {
      const profile = await fetchUserProfile(context.accessToken, {
        connection: context.connection,
        id_token: context.idToken,
        idTokenClaims: parseObject(context.idTokenClaims),
        options: parseObject(context.options),
        secrets: secretsProxy(),
      });
      if (profile === null || typeof profile !== 'object' || Array.isArray(profile)) {
        throw new TypeError(
          `fetchUserProfile must return a profile object, not ${
            Array.isArray(profile) ? 'an array' : profile === null ? 'null' : typeof profile
          }`,
        );
      }
      // Cycles and BigInt throw here, inside the try: a failed step, not a trap.
      return jsonText(profile, 'the profile');
    } catch (error) {
      throw errorText(error);
    }
  };
}
