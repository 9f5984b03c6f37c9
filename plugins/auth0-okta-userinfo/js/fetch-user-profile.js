function(accessToken, ctx, cb) {
  function get_user_profile()
  {
    request.get({
      url: "https://example.okta.com/oauth2/aus1custom/v1/userinfo",
      method: "GET",
      headers: {
        "Authorization": "Bearer " + accessToken,
        "Content-Type": "application/json"
      }
    },
    function(e, r, b) {
      if (e) return cb(e);
      if (r.statusCode !== 200) return cb(new Error('StatusCode: ' + r.statusCode));
      var profile = JSON.parse(b);
      var idToken = jwt.decode(ctx.id_token);
      profile.geo_ip_country = "Unknown";
      if (('geoipcountry') in idToken) {
        profile.geo_ip_country = idToken.geoipcountry;
      }
      delete profile.user_type;
      cb(null, profile);
    });
  }
  get_user_profile();
}
