/**
 * Puts the previous visitor (kept in api.cache by the previous login) in
 * the access token, then keeps this user for the next one. The claim's
 * name starts with the `prefix` secret, so that two copies of this action
 * in one chain can be told apart.
 */
exports.onExecutePostLogin = async (event, api) => {
  const prefix = event.secrets.prefix || 'https://example.com/';
  const previous = api.cache.get('last_visitor');
  api.accessToken.setCustomClaim(prefix + 'previous_visitor', previous ? previous.value : null);
  const stored = api.cache.set('last_visitor', event.user.user_id, { ttl: 60000 });
  api.accessToken.setCustomClaim(prefix + 'cache_write', stored.type);
  const tooLong = api.cache.set('k'.repeat(65), 'v');
  api.accessToken.setCustomClaim(prefix + 'long_key', tooLong.code);
};
