/**
 * An Auth0 redirect Action in the shape of Auth0's "Redirect with Actions"
 * documentation: a user who has not accepted the current terms is sent to
 * the terms page mid-login, with a signed session token saying who they are;
 * the page sends them back to `/continue` with its own signed token, and the
 * login resumes here.
 *
 * Secrets: TERMS_URL (the page; its origin must be in the plugin's
 * `redirect_origins`) and TERMS_SECRET (shared with the page, HS256).
 */
const TERMS_VERSION = '2026-11';

/**
 * @param {Event} event - Details about the user and the context in which they are logging in.
 * @param {PostLoginAPI} api - Interface whose methods can be used to change the behavior of the login.
 */
exports.onExecutePostLogin = async (event, api) => {
  if (event.user.app_metadata.terms_accepted === TERMS_VERSION) {
    return;
  }
  const token = api.redirect.encodeToken({
    secret: event.secrets.TERMS_SECRET,
    expiresInSeconds: 600,
    payload: { email: event.user.email, terms_version: TERMS_VERSION },
  });
  api.redirect.sendUserTo(event.secrets.TERMS_URL, { query: { session_token: token } });
};

/**
 * Handler that will be invoked when this action is resuming after an external redirect.
 *
 * @param {Event} event - Details about the user and the context in which they are logging in.
 * @param {PostLoginAPI} api - Interface whose methods can be used to change the behavior of the login.
 */
exports.onContinuePostLogin = async (event, api) => {
  const payload = api.redirect.validateToken({
    secret: event.secrets.TERMS_SECRET,
    tokenParameterName: 'session_token',
  });
  if (payload.accepted !== true) {
    api.access.deny('The terms of service were not accepted.');
    return;
  }
  api.user.setAppMetadata('terms_accepted', payload.terms_version);
  api.idToken.setCustomClaim('https://my-app.example.com/terms', payload.terms_version);
};
