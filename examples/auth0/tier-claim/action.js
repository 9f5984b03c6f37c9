/**
 * Handler that will be called during the execution of a PostLogin flow.
 *
 * @param {Event} event - Details about the user and the context in which they are logging in.
 * @param {PostLoginAPI} api - Interface whose methods can be used to change the behavior of the login.
 */
const _ = require('lodash');

exports.onExecutePostLogin = async (event, api) => {
  const namespace = 'https://example.com/';
  const tier = _.get(event.client, 'metadata.tier', 'standard');
  api.accessToken.setCustomClaim(namespace + 'tier', tier);
  const groups = _.uniq(_.map(event.user.groups || [], _.toLower));
  if (groups.length > 0) {
    api.idToken.setCustomClaim(namespace + 'groups', groups);
  }
  if (!event.user.email_verified) {
    api.user.setAppMetadata('needs_verification', true);
  } else {
    api.user.setAppMetadata('needs_verification', null);
  }
};
