import type { Event, PostLoginAPI } from '@auth0/actions/post-login/v3';
import { AuthenticationClient, ManagementClient } from 'auth0';

// Reads the user's stored attributes through the Management API with a
// token from the client credentials grant, and puts their plan in the token.
export const onExecutePostLogin = async (event: Event, api: PostLoginAPI): Promise<void> => {
  const auth = new AuthenticationClient({
    domain: event.secrets.domain,
    clientId: event.secrets.clientId,
    clientSecret: event.secrets.clientSecret,
  });
  const { data: grant } = await auth.oauth.clientCredentialsGrant({
    audience: `https://${event.secrets.domain}/api/v2/`,
  });
  const management = new ManagementClient({ domain: event.secrets.domain, token: grant.access_token });
  const { data: user } = await management.users.get({ id: event.user.user_id });
  const plan: string = (user.app_metadata?.plan as string | undefined) ?? 'free';
  api.accessToken.setCustomClaim('https://example.com/plan', plan);
};
