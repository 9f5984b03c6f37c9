/**
 * Sends a user who has not consented to the page in the `PAGE` secret, with
 * a session token (HS256 with the `SECRET` secret) naming the purpose; back
 * at /continue, keeps the page's answer in app metadata and the id token.
 * The same action is in ../rust and ../python.
 */
exports.onExecutePostLogin = async (event, api) => {
  if (event.user.app_metadata.consent === 'given') {
    return;
  }
  const token = api.redirect.encodeToken({
    secret: event.secrets.SECRET,
    expiresInSeconds: 300,
    payload: { purpose: 'newsletter' },
  });
  api.redirect.sendUserTo(event.secrets.PAGE, { query: { session_token: token, lang: 'en' } });
};

exports.onContinuePostLogin = async (event, api) => {
  const answer = api.redirect.validateToken({ secret: event.secrets.SECRET });
  api.user.setAppMetadata('consent', answer.consent);
  api.idToken.setCustomClaim('https://example.com/consent', answer.consent);
};
