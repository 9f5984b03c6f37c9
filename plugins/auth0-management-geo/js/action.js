exports.onExecutePostLogin = async (event, api) => {
  var ManagementClient = require('auth0').ManagementClient;
  var management = new ManagementClient(
    {
      domain: event.secrets.domain,
      clientId: event.secrets.clientId,
      clientSecret: event.secrets.clientSecret
    }
  );

  var params = { id: event.user.user_id };
  let user_attributes = await management.getUser(params);

  if ('geo_ip_country' in user_attributes)
  {
    api.accessToken.setCustomClaim("geo_ip_country", user_attributes['geo_ip_country']);
  }
};
