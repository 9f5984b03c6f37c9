// Test plugin: test-fetcher in JavaScript. GETs (or POSTs, with
// `fetch_body`) the URL in its client's metadata (`fetch_url`) with the
// global `fetch()`, which is wasi:http in the host.
//
// Exists to prove that JavaScript's fetch is held to the contract's HTTP
// policy: the answer lands in the access token claims `fetched_status` and
// `fetched_body`; a refused request fails the step as `fetch failed: ...`.

export async function onExecutePostLogin(event, api) {
  const { fetch_url: url, fetch_body: body } = event.client.metadata;
  let response;
  try {
    response = await fetch(url, body === undefined ? {} : { method: 'POST', body });
  } catch (error) {
    throw new Error(`fetch failed: ${error.message}${error.cause ? ` (${error.cause})` : ''}`);
  }
  api.accessToken.setCustomClaim('fetched_status', response.status);
  api.accessToken.setCustomClaim('fetched_body', await response.text());
}
