// The profile-fetcher world in the shape of Auth0's Fetch User Profile
// script: calls the plugin's `fetchUserProfile(accessToken, ctx)`, or an
// Auth0 connection script `function (accessToken, ctx, cb)`, and hands the
// profile it returns (or passes to `cb`) back to the host.
//
// Compiled into the plugin by `claimsmith build`, which writes the entry
// module that hands the plugin's function to `profileFetcher` below.

import { errorText, failOnUncaught, jsonText, parseObject, secretsProxy } from './common.js';

/** The `ctx` Auth0 hands a profile fetcher. */
function auth0Context(context) {
  return {
    connection: context.connection,
    // Absent, as in Auth0, when a plain OAuth 2.0 upstream sent none.
    id_token: context.idToken || undefined,
    idTokenClaims: parseObject(context.idTokenClaims),
    options: parseObject(context.options),
    secrets: secretsProxy(),
  };
}

/** The WIT export `fetch-profile` around the plugin's function. */
export function profileFetcher(fetchUserProfile) {
  if (typeof fetchUserProfile !== 'function') {
    throw new TypeError('the plugin must export `fetchUserProfile(accessToken, ctx)`');
  }
  return async function fetchProfile(context) {
    try {
      return profileText(await fetchUserProfile(context.accessToken, auth0Context(context)));
    } catch (error) {
      throw errorText(error);
    }
  };
}

/**
 * The WIT export `fetch-profile` around an Auth0 connection script,
 * `function (accessToken, ctx, cb)`: the profile is what it passes to
 * `cb(null, profile)`. A second `cb` in the same turn fails the step
 * (Auth0 would have taken the first); a script that never calls `cb` fails
 * at its timeout.
 */
export function connectionScript(script) {
  if (typeof script !== 'function') {
    throw new TypeError(
      'a connection script must be one function, `function (accessToken, ctx, cb) { ... }`',
    );
  }
  return async function fetchProfile(context) {
    try {
      const profile = await new Promise((resolve, reject) => {
        failOnUncaught(reject);
        // Keeps the event loop alive for a script that never calls `cb`, so
        // that it fails by its timeout (the plugin's, or Auth0's 20 s)
        // instead of a trap when nothing is left to wait for.
        const watchdog = setTimeout(
          () => reject(new Error('the connection script did not call its callback within 20 s')),
          20_000,
        );
        let calls = 0;
        const cb = (error, profile) => {
          calls += 1;
          clearTimeout(watchdog);
          if (calls > 1) {
            reject(new Error('the connection script called its callback more than once'));
            return;
          }
          // One turn later, so that a second call can still fail the step.
          setTimeout(() => (error ? reject(error) : resolve(profile)), 0);
        };
        script(context.accessToken, auth0Context(context), cb);
      });
      return profileText(profile);
    } catch (error) {
      throw errorText(error);
    }
  };
}

/** The profile as the contract's JSON text, refusing anything not an object. */
function profileText(profile) {
  if (profile === null || typeof profile !== 'object' || Array.isArray(profile)) {
    throw new TypeError(
      `the profile must be an object, not ${
        Array.isArray(profile) ? 'an array' : profile === null ? 'null' : typeof profile
      }`,
    );
  }
  // Cycles and BigInt throw here, inside the caller's try: a failed step, not a trap.
  return jsonText(profile, 'the profile');
}
