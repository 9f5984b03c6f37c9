//! Outbound HTTP on a plugin's behalf (`claimsmith:plugin/http`).
//!
//! Owns the only way a plugin reaches the network, and every check on it: the
//! plugin's origin allow-list, the refusal of hostnames that resolve to
//! non-public addresses (link-local, cloud metadata, private ranges, loopback),
//! no redirects, a timeout and a response-size cap. Tests and `claimsmith run`
//! answer requests through one seam, [`OutboundHttpInterceptor`], which sits
//! *after* the policy checks so canned answers obey the same rules as real ones.
//! It does not decide what a plugin is granted: that comes from config.
//!
//! Plugins reach it two ways, and both end in [`HttpCapability::send`]: the
//! contract's `http.fetch`, and `wasi:http/outgoing-handler` (JavaScript's
//! global `fetch()` in componentize-js), whose hooks hand every request here
//! instead of to wasmtime-wasi-http's own client.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use wasmtime_wasi_http::{Error as WasiHttpError, ForbiddenHeaderFilter, WasiBody, WasiHttpHooks};

use claimsmith_wit::fetcher::claimsmith::plugin::http as wit;
use wasmtime::component::{HasSelf, Linker};

use crate::{CallContext, Capability, CapabilityView, Has};
use claimsmith_config::PluginSpec;
use claimsmith_core::World;

pub use claimsmith_config::plugin::{
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT, HttpPolicy, Origin,
};

/// The most of a call's timeout kept back from its requests' timeout: time
/// for the plugin to handle a request that timed out (see [`request_timeout`]).
const MAX_HTTP_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// How large a request body a `wasi:http` request may stream to the host. The
/// contract's `fetch` hands its body over in the plugin's memory, which the
/// memory cap bounds; a stream is read into the host's, so it gets its own cap.
pub const MAX_STREAMED_REQUEST_BYTES: usize = 1024 * 1024;
/// How many `wasi:http` requests one invocation may have in flight. The
/// contract's `fetch` blocks the plugin, so it has one at a time; JavaScript's
/// `fetch()` returns a promise at once, and without a bound a plugin could
/// start thousands, each holding up to the response cap in host memory.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 4;

/// A request as the host sends it.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: reqwest::Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// A whole response, its body already read within the cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("not allowed: {0}")]
    NotAllowed(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("timed out")]
    Timeout,
    #[error("response larger than {0} bytes")]
    ResponseTooLarge(u64),
    #[error("transport error: {0}")]
    Transport(String),
}

/// Answers requests instead of the network, after the policy checks passed.
///
/// The one seam for canned HTTP: `claimsmith run --input`, golden tests and
/// the test suite use it; production leaves it out.
pub trait OutboundHttpInterceptor: Send + Sync {
    fn intercept(&self, plugin: &str, request: &OutboundRequest) -> InterceptOutcome;

    /// Told of a request the policy refused, which never reaches
    /// `intercept`: golden cases report these.
    fn refused(&self, _plugin: &str, _request: &OutboundRequest, _error: &HttpError) {}

    /// Told what the network answered a request `intercept` let through:
    /// a shadow run's recording of the live call.
    fn answered(
        &self,
        _plugin: &str,
        _request: &OutboundRequest,
        _answer: &Result<OutboundResponse, HttpError>,
    ) {
    }
}

pub enum InterceptOutcome {
    /// Send the request over the network.
    Continue,
    /// Answer with this instead.
    Complete(Result<OutboundResponse, HttpError>),
}

pub type Interceptor = Arc<dyn OutboundHttpInterceptor>;

/// Several interceptors as one: a request is answered by the first that
/// answers it, and every one is told what was refused and answered (a
/// login both shadowed and captured records for both).
pub struct Tee(Vec<Interceptor>);

impl Tee {
    /// The interceptors of `list` as one; None when it is empty.
    pub fn of(mut list: Vec<Interceptor>) -> Option<Interceptor> {
        match list.len() {
            0 | 1 => list.pop(),
            _ => Some(Arc::new(Tee(list))),
        }
    }
}

impl OutboundHttpInterceptor for Tee {
    fn intercept(&self, plugin: &str, request: &OutboundRequest) -> InterceptOutcome {
        (self.0.iter())
            .map(|interceptor| interceptor.intercept(plugin, request))
            .find(|outcome| matches!(outcome, InterceptOutcome::Complete(_)))
            .unwrap_or(InterceptOutcome::Continue)
    }

    fn refused(&self, plugin: &str, request: &OutboundRequest, error: &HttpError) {
        for interceptor in &self.0 {
            interceptor.refused(plugin, request, error);
        }
    }

    fn answered(
        &self,
        plugin: &str,
        request: &OutboundRequest,
        answer: &Result<OutboundResponse, HttpError>,
    ) {
        for interceptor in &self.0 {
            interceptor.answered(plugin, request, answer);
        }
    }
}

/// The HTTP client shared by all plugins: connection pools are reused across
/// logins, the policy is applied per request.
#[derive(Clone)]
pub struct OutboundHttp {
    client: reqwest::Client,
}

impl OutboundHttp {
    pub fn new() -> Result<Self, HttpError> {
        Self::with_resolver(GuardedResolver::default())
    }

    /// A client whose resolver answers `overrides` itself (tests resolve
    /// made-up hostnames to loopback with this) and applies the same
    /// address guard to them as to real DNS answers.
    pub fn with_resolver(resolver: GuardedResolver) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(resolver))
            .no_proxy()
            .build()
            .map_err(|e| HttpError::Transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(OutboundHttp { client })
    }

    async fn send(
        &self,
        request: OutboundRequest,
        policy: &HttpPolicy,
        timeout: Duration,
    ) -> Result<OutboundResponse, HttpError> {
        let mut builder = self
            .client
            .request(request.method, request.url)
            .timeout(timeout);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(classify_reqwest_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let cap = policy.max_response_bytes;
        let body = read_body_capped(&mut response, cap)
            .await
            .map_err(|error| match error {
                CappedBodyError::TooLarge(cap) => HttpError::ResponseTooLarge(cap),
                CappedBodyError::Transport(error) => classify_reqwest_error(error),
            })?;
        Ok(OutboundResponse {
            status,
            headers,
            body,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CappedBodyError {
    #[error("the response body is over {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// The body of `response`, refused as soon as it is known to be over `cap`
/// bytes (by its Content-Length, or while reading): never buffered whole.
pub async fn read_body_capped(
    response: &mut reqwest::Response,
    cap: u64,
) -> Result<Vec<u8>, CappedBodyError> {
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(CappedBodyError::TooLarge(cap));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(CappedBodyError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn classify_reqwest_error(error: reqwest::Error) -> HttpError {
    if error.is_timeout() {
        return HttpError::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(blocked) = cause.downcast_ref::<BlockedDestination>() {
            return HttpError::NotAllowed(blocked.to_string());
        }
        source = cause.source();
    }
    // Without the URL: its query may carry tokens, and this text reaches logs.
    HttpError::Transport(error.without_url().to_string())
}

/// Headers the host sets itself; a plugin setting them could smuggle a request
/// to another virtual host or break framing.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
];

/// One plugin's outbound HTTP, for the duration of one invocation.
#[derive(Clone)]
pub struct HttpCapability {
    plugin: Arc<str>,
    policy: Arc<HttpPolicy>,
    client: OutboundHttp,
    interceptor: Option<Interceptor>,
    /// Shared by the clones of one invocation's capability.
    in_flight: Arc<tokio::sync::Semaphore>,
    /// When the plugin's requests must have ended, so that it still has time
    /// to handle a timeout before its call's own deadline (None: only the
    /// policy's timeout).
    deadline: Option<tokio::time::Instant>,
    /// Why the invocation's last failed `wasi:http` request failed, shared
    /// by the clones: JavaScript's `fetch()` reports every failure as the
    /// same `NetworkError`, so the host says which it was.
    last_failure: Arc<std::sync::Mutex<Option<HttpError>>>,
}

impl HttpCapability {
    pub fn new(
        plugin: Arc<str>,
        policy: Arc<HttpPolicy>,
        client: OutboundHttp,
        interceptor: Option<Interceptor>,
        deadline: Option<tokio::time::Instant>,
    ) -> Self {
        HttpCapability {
            plugin,
            policy,
            client,
            interceptor,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_REQUESTS_IN_FLIGHT)),
            deadline,
            last_failure: Arc::default(),
        }
    }

    /// Why the last of this invocation's `wasi:http` requests that failed
    /// did, if one did. (The contract's `fetch` hands the plugin its error.)
    pub fn last_failure(&self) -> Option<HttpError> {
        self.last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn record_failure(&self, error: &HttpError) {
        *self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error.clone());
    }

    /// The policy's timeout, or less when the deadline is nearer: a call
    /// that waited for its slot has less time left for its requests.
    fn request_timeout(&self) -> Duration {
        match self.deadline {
            Some(deadline) => self
                .policy
                .timeout
                .min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            None => self.policy.timeout,
        }
    }

    /// Checks `request` against the policy, then answers it through the
    /// interceptor or the network. Every plugin request, from either path,
    /// goes through here.
    pub async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, HttpError> {
        tracing::debug!(plugin = %self.plugin, method = %request.method, url = %redacted_url(&request.url), "plugin fetch");
        let answer = self.send_within_policy(request).await;
        if let Err(error) = &answer {
            tracing::warn!(plugin = %self.plugin, %error, "plugin fetch failed");
        }
        answer
    }

    async fn send_within_policy(
        &self,
        request: OutboundRequest,
    ) -> Result<OutboundResponse, HttpError> {
        if let Err(refusal) = self.check(&request) {
            if let Some(interceptor) = &self.interceptor {
                interceptor.refused(&self.plugin, &request, &refusal);
            }
            return Err(refusal);
        }
        if let Some(interceptor) = &self.interceptor
            && let InterceptOutcome::Complete(outcome) =
                interceptor.intercept(&self.plugin, &request)
        {
            let cap = self.policy.max_response_bytes;
            return outcome.and_then(|response| {
                if response.body.len() as u64 > cap {
                    Err(HttpError::ResponseTooLarge(cap))
                } else {
                    Ok(response)
                }
            });
        }
        let Some(interceptor) = &self.interceptor else {
            return self
                .client
                .send(request, &self.policy, self.request_timeout())
                .await;
        };
        let answer = self
            .client
            .send(request.clone(), &self.policy, self.request_timeout())
            .await;
        interceptor.answered(&self.plugin, &request, &answer);
        answer
    }

    fn check(&self, request: &OutboundRequest) -> Result<(), HttpError> {
        let origin = Origin::of_url(&request.url).ok_or_else(|| {
            HttpError::InvalidRequest(format!("`{}` has no host", redacted_url(&request.url)))
        })?;
        if !self.policy.allowed_origins.contains(&origin) {
            return Err(HttpError::NotAllowed(format!(
                "origin {origin} is not granted to plugin `{}`",
                self.plugin
            )));
        }
        if let Some((name, _)) = request
            .headers
            .iter()
            .find(|(name, _)| FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()))
        {
            return Err(HttpError::InvalidRequest(format!(
                "header `{name}` is set by the host"
            )));
        }
        Ok(())
    }
}

impl wit::Host for HttpCapability {
    async fn fetch(&mut self, request: wit::Request) -> Result<wit::Response, wit::HttpError> {
        let request = parse_plugin_request(request)?;
        let response = self.send(request).await?;
        Ok(wit::Response {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }
}

/// `wasi:http` requests (JavaScript's `fetch()`) under the same policy: the
/// guest cannot set the host's headers, and each request is collected and
/// handed to [`HttpCapability::send`] rather than sent by wasmtime-wasi-http.
impl WasiHttpHooks for HttpCapability {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(|name: &http::HeaderName| {
            // JavaScript's fetch sets `content-length` for a body itself;
            // wasmtime checks it against the body written, and it is dropped
            // before `send`, which frames the body as for `http.fetch`.
            name != http::header::CONTENT_LENGTH
                && (FORBIDDEN_HEADERS.contains(&name.as_str())
                    || wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name))
        })
    }

    fn set_host_header(&mut self) -> bool {
        // The HTTP client sets `Host` from the URL, as for `http.fetch`.
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _io: Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), WasiHttpError>> + Send>,
                    ),
                    WasiHttpError,
                >,
            > + Send,
    > {
        let capability = self.clone();
        Box::new(async move {
            let _slot = capability
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| WasiHttpError::ConnectionLimitReached)?;
            // One deadline for reading the plugin's body and the exchange, as
            // the contract's `fetch` has one for the exchange.
            let response = tokio::time::timeout(capability.request_timeout(), async {
                let request = collect_wasi_request(request).await?;
                let answer = capability.send(request).await;
                answer
                    .inspect_err(|error| capability.record_failure(error))
                    .map_err(wasi_http_error)
            })
            .await
            .map_err(|_elapsed| {
                capability.record_failure(&HttpError::Timeout);
                WasiHttpError::ConnectionReadTimeout
            })??;
            let mut answer = http::Response::builder().status(response.status);
            for (name, value) in &response.headers {
                answer = answer.header(name, value);
            }
            let body = Full::new(Bytes::from(response.body))
                .map_err(|never| match never {})
                .boxed_unsync();
            let answer = answer
                .body(body)
                .map_err(|e| WasiHttpError::InternalError(Some(e.to_string())))?;
            let no_more_io: Box<dyn Future<Output = Result<(), WasiHttpError>> + Send> =
                Box::new(async { Ok(()) });
            Ok((answer, no_more_io))
        })
    }
}

/// A `wasi:http` request as the host sends it, its body read whole (the
/// guest may still be writing it when the request is handed over).
async fn collect_wasi_request(
    request: http::Request<WasiBody>,
) -> Result<OutboundRequest, WasiHttpError> {
    let (parts, body) = request.into_parts();
    let url =
        Url::parse(&parts.uri.to_string()).map_err(|_| WasiHttpError::HttpRequestUriInvalid)?;
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| **name != http::header::CONTENT_LENGTH)
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let too_large = WasiHttpError::HttpRequestBodySize(Some(MAX_STREAMED_REQUEST_BYTES as u64));
    let body = Limited::new(body, MAX_STREAMED_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|_| too_large)?
        .to_bytes();
    Ok(OutboundRequest {
        method: parts.method,
        url,
        headers,
        body: (!body.is_empty()).then(|| body.to_vec()),
    })
}

/// The `wasi:http` error code for each refusal of the policy.
fn wasi_http_error(error: HttpError) -> WasiHttpError {
    match error {
        HttpError::NotAllowed(_) => WasiHttpError::HttpRequestDenied,
        HttpError::InvalidRequest(why) => WasiHttpError::InternalError(Some(why)),
        HttpError::Timeout => WasiHttpError::ConnectionReadTimeout,
        HttpError::ResponseTooLarge(cap) => WasiHttpError::HttpResponseBodySize(Some(cap)),
        HttpError::Transport(why) => WasiHttpError::InternalError(Some(why)),
    }
}

fn parse_plugin_request(request: wit::Request) -> Result<OutboundRequest, HttpError> {
    let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| HttpError::InvalidRequest(format!("bad method `{}`", request.method)))?;
    let url = Url::parse(&request.url)
        // Not echoed: an unparsable URL cannot be cut to its safe part, and
        // it may carry a token in its query or credentials before its host.
        .map_err(|e| HttpError::InvalidRequest(format!("bad URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::InvalidRequest(format!(
            "scheme `{}` is not http or https",
            url.scheme()
        )));
    }
    for (name, value) in &request.headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(value).is_err()
        {
            return Err(HttpError::InvalidRequest(format!("bad header `{name}`")));
        }
    }
    Ok(OutboundRequest {
        method,
        url,
        headers: request.headers,
        body: request.body,
    })
}

/// The URL without what may carry secrets (query, user, password,
/// fragment), for logs and messages.
pub fn redacted_url(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    // Fails only for URLs that cannot have credentials, which have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

impl From<HttpError> for wit::HttpError {
    fn from(error: HttpError) -> Self {
        match error {
            HttpError::NotAllowed(why) => wit::HttpError::NotAllowed(why),
            HttpError::InvalidRequest(why) => wit::HttpError::InvalidRequest(why),
            HttpError::Timeout => wit::HttpError::Timeout,
            HttpError::ResponseTooLarge(cap) => wit::HttpError::ResponseTooLarge(cap),
            HttpError::Transport(why) => wit::HttpError::Transport(why),
        }
    }
}

/// A DNS answer that pointed only at addresses plugins may not reach.
#[derive(Debug, thiserror::Error)]
#[error("`{host}` resolves to {addresses:?}, which plugins may not reach")]
pub struct BlockedDestination {
    host: String,
    addresses: Vec<IpAddr>,
}

/// Resolves hostnames and drops every address in a blocked range, so a
/// granted hostname cannot be pointed (or rebound) at the metadata service or
/// the internal network. An origin granted as an IP literal is not resolved
/// and so is reachable as granted.
#[derive(Debug, Default, Clone)]
pub struct GuardedResolver {
    overrides: HashMap<String, Vec<IpAddr>>,
}

impl GuardedResolver {
    /// Answers `host` with `addresses` instead of asking DNS.
    pub fn with_override(mut self, host: &str, addresses: Vec<IpAddr>) -> Self {
        self.overrides.insert(host.to_ascii_lowercase(), addresses);
        self
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let overridden = self.overrides.get(&host).cloned();
        Box::pin(async move {
            let resolved: Vec<IpAddr> = match overridden {
                Some(addresses) => addresses,
                None => tokio::net::lookup_host((host.as_str(), 0))
                    .await?
                    .map(|addr| addr.ip())
                    .collect(),
            };
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .filter(|ip| !is_blocked_address(**ip))
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(BlockedDestination {
                    host,
                    addresses: resolved,
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is outside the public internet: loopback, private, link-local
/// (which holds the cloud metadata service, 169.254.169.254), shared,
/// multicast, reserved, or an IPv6 form that embeds such an IPv4 address.
pub fn is_blocked_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_blocked_address(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            let [a, b] = segments[6].to_be_bytes();
            let [c, d] = segments[7].to_be_bytes();
            let low_v4 = IpAddr::V4([a, b, c, d].into());
            // NAT64 (64:ff9b::/96) and IPv4-compatible (::/96) addresses reach
            // the IPv4 address in their low bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
                return v6.is_loopback() || v6.is_unspecified() || is_blocked_address(low_v4);
            }
            v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local()
                || segments[0] & 0xffc0 == 0xfec0 // site-local (deprecated)
                || segments[..3] == [0x64, 0xff9b, 1] // local-use NAT64, RFC 8215
                || segments[..4] == [0x100, 0, 0, 0] // discard-only, RFC 6666
                || segments[..2] == [0x2001, 0] // Teredo tunnels to any IPv4 address
                || segments[..2] == [0x2001, 0x0db8] // documentation
                || segments[0] == 0x2002 // 6to4 embeds an arbitrary IPv4 address
        }
    }
}

/// Every world imports `http`; `wasi:http` (linked with WASI) sends through
/// the same capability.
/// The timeout of each of a plugin's requests: the configured one, but ending
/// before the call's own timeout, by a fifth of it (at most
/// [`MAX_HTTP_TIMEOUT_MARGIN`]). A slow origin then reaches the plugin as
/// `http-error::timeout`, which it may handle (fall back, fail with its own
/// message), instead of the call being killed mid-request.
pub fn request_timeout(configured: Duration, call: Duration) -> Duration {
    configured.min(call - timeout_margin(call))
}

/// The time kept back from a call of `call` long for the plugin to handle a
/// request that timed out.
pub fn timeout_margin(call: Duration) -> Duration {
    (call / 5).min(MAX_HTTP_TIMEOUT_MARGIN)
}

impl Capability for HttpCapability {
    /// The plugin's policy, its requests' timeout fitted to its calls'.
    type Grant = Arc<HttpPolicy>;

    fn grant(plugin: &PluginSpec) -> Arc<HttpPolicy> {
        Arc::new(HttpPolicy {
            timeout: request_timeout(plugin.http.timeout, plugin.limits.timeout),
            ..plugin.http.clone()
        })
    }

    fn link<T: CapabilityView>(linker: &mut Linker<T>, _world: World) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasSelf<HttpCapability>>(linker, |state: &mut T| {
            state.capabilities().get()
        })
    }

    fn prepare(grant: &Arc<HttpPolicy>, call: &mut CallContext<'_>) -> Self {
        HttpCapability::new(
            call.plugin.clone(),
            grant.clone(),
            call.http.clone(),
            call.interceptor.cloned(),
            Some(call.requests_deadline),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn blocks_every_non_public_range() {
        for blocked in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::a9fe:a9fe",
            "::7f00:1",
            "64:ff9b:1::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "100::1",
        ] {
            let ip: IpAddr = blocked.parse().unwrap();
            assert!(is_blocked_address(ip), "{blocked} should be blocked");
        }
    }

    #[test]
    fn allows_public_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(!is_blocked_address(ip), "{public} should be allowed");
        }
    }

    #[test]
    fn an_unparsable_url_is_refused_without_echoing_it() {
        for url in [
            "https://user:pw-secret@[::1/?token=query-secret",
            "http://host:99999/?token=query-secret",
        ] {
            let refused = parse_plugin_request(wit::Request {
                method: "GET".to_owned(),
                url: url.to_owned(),
                headers: Vec::new(),
                body: None,
            })
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
            assert!(
                refused.starts_with("invalid request: bad URL:"),
                "{refused}"
            );
            assert!(!refused.contains("secret"), "{refused}");
        }
    }

    #[test]
    fn redacted_urls_keep_no_credentials_query_or_fragment() {
        let url = Url::parse("https://user:pw@idp.example.com/userinfo?token=t#frag").unwrap();
        assert_eq!(redacted_url(&url), "https://idp.example.com/userinfo");
    }

    #[test]
    fn requests_time_out_before_their_call_does() {
        let ms = Duration::from_millis;
        // The defaults, 5 s each: a request gets 4 s.
        assert_eq!(request_timeout(ms(5000), ms(5000)), ms(4000));
        // A configured timeout that already ends in time is kept.
        assert_eq!(request_timeout(ms(2000), ms(3000)), ms(2000));
        assert_eq!(request_timeout(ms(5000), ms(500)), ms(400));
        // The margin is at most a second.
        assert_eq!(request_timeout(ms(60_000), ms(30_000)), ms(29_000));
    }

    #[tokio::test]
    async fn a_request_never_outlives_the_deadline_of_its_call() {
        let capability = |deadline| {
            HttpCapability::new(
                Arc::from("p"),
                Arc::new(HttpPolicy::default()),
                OutboundHttp::new().unwrap(),
                None,
                deadline,
            )
        };
        let policy_timeout = HttpPolicy::default().timeout;
        assert_eq!(capability(None).request_timeout(), policy_timeout);
        // A call that spent most of its time waiting for a slot.
        let soon = tokio::time::Instant::now() + Duration::from_millis(100);
        assert!(capability(Some(soon)).request_timeout() <= Duration::from_millis(100));
        let past = tokio::time::Instant::now() - Duration::from_millis(1);
        assert_eq!(capability(Some(past)).request_timeout(), Duration::ZERO);
        let late = tokio::time::Instant::now() + policy_timeout * 2;
        assert_eq!(capability(Some(late)).request_timeout(), policy_timeout);
    }

    #[test]
    fn host_framing_headers_are_refused_before_any_request() {
        let capability = HttpCapability::new(
            Arc::from("p"),
            Arc::new(HttpPolicy {
                allowed_origins: vec!["https://api.example.com".parse().unwrap()],
                ..HttpPolicy::default()
            }),
            OutboundHttp::new().unwrap(),
            None,
            None,
        );
        let request = |headers: Vec<(String, String)>| OutboundRequest {
            method: reqwest::Method::GET,
            url: Url::parse("https://api.example.com/x").unwrap(),
            headers,
            body: None,
        };
        for name in ["Host", "content-length", "Transfer-Encoding"] {
            let refused = capability.check(&request(vec![(name.into(), "x".into())]));
            assert!(
                matches!(refused, Err(HttpError::InvalidRequest(_))),
                "{name}: {refused:?}"
            );
        }
        assert_eq!(
            capability.check(&request(vec![("accept".into(), "*/*".into())])),
            Ok(())
        );
        let elsewhere = OutboundRequest {
            url: Url::parse("https://api.example.com:8443/x").unwrap(),
            ..request(Vec::new())
        };
        assert!(matches!(
            capability.check(&elsewhere),
            Err(HttpError::NotAllowed(_))
        ));
    }

    #[test]
    fn malformed_plugin_headers_are_invalid_requests() {
        let request = |name: &str, value: &str| wit::Request {
            method: "GET".into(),
            url: "https://api.example.com/".into(),
            headers: vec![(name.into(), value.into())],
            body: None,
        };
        assert!(matches!(
            parse_plugin_request(request("bad name", "v")),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse_plugin_request(request("x", "line\nbreak")),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(parse_plugin_request(request("x-ok", "fine")).is_ok());
    }

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_only_to_blocked_addresses() {
        let resolver = GuardedResolver::default()
            .with_override("metadata.test", vec!["169.254.169.254".parse().unwrap()])
            .with_override(
                "mixed.test",
                vec!["127.0.0.1".parse().unwrap(), "8.8.8.8".parse().unwrap()],
            );
        let refused = resolver
            .resolve(Name::from_str("metadata.test").unwrap())
            .await;
        let error = refused.err().expect("a blocked-only answer is refused");
        assert!(error.to_string().contains("169.254.169.254"), "{error}");

        let kept: Vec<SocketAddr> = resolver
            .resolve(Name::from_str("mixed.test").unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(kept, vec!["8.8.8.8:0".parse().unwrap()]);
    }
}
