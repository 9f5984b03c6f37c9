//! Where the logs and traces go: stderr as text (ANSI colours only on a
//! terminal) or one JSON object per line (`[telemetry] log_format = "json"`),
//! and the spans (a login, each plugin call in it) to an OpenTelemetry
//! collector over OTLP/HTTP when `[telemetry] otlp_endpoint` is set.
//!
//! Owns the subscriber's layers and the exporter's lifetime. It decides
//! nothing about what is logged, and never lets wasmtime's WASI call tracing
//! through (it carries plugins' URLs and headers).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use claimsmith_config::{LogFormat, TelemetrySettings};

/// Flushes the spans not yet exported when dropped (at the end of `main`).
pub struct Telemetry {
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(Err(error)) = self.tracer_provider.take().map(|p| p.shutdown()) {
            eprintln!("could not flush the last spans to the OTLP collector: {error}");
        }
    }
}

/// Installs the process's subscriber: `filter` (`RUST_LOG` syntax) for the
/// log lines, and with an OTLP endpoint, every span of this crate for the
/// collector, whatever the log filter.
pub fn init(filter: &str, settings: &TelemetrySettings) -> Result<Telemetry, String> {
    let log_filter = log_filter(filter);
    let max_level = max_level(&log_filter, settings.otlp_endpoint.is_some());
    let log_lines = match settings.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(log_filter);
    let (spans, tracer_provider) = match &settings.otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .map_err(|error| format!("OTLP exporter to {endpoint}: {error}"))?;
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("claimsmith")
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("claimsmith"))
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("claimsmith", tracing::Level::DEBUG),
                );
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(no_wasi_call_tracing().with_max_level_hint(max_level))
        .with(log_lines)
        .with(spans)
        .try_init()
        .map_err(|error| error.to_string())?;
    Ok(Telemetry { tracer_provider })
}

/// The log filter for `spec` (`RUST_LOG` syntax); a bad spec falls back to
/// the default.
pub fn log_filter(spec: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_new(spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,claimsmith=info"))
}

/// The most verbose level any layer takes: the log filter's, and `debug` for
/// the spans when they are exported. Told to tracing, and through it to the
/// `log` crate, so that the trace-level `log` records Cranelift and
/// regalloc2 write while compiling a plugin stop at their call site: without
/// it the filter layer below has no hint, the process's maximum is `trace`,
/// and every one of those records is turned into an event and filtered out
/// (in the debug host, most of the CPU of compiling a JavaScript plugin).
fn max_level(log_filter: &tracing_subscriber::EnvFilter, spans: bool) -> LevelFilter {
    let logged = log_filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    if spans {
        logged.max(LevelFilter::DEBUG)
    } else {
        logged
    }
}

/// A filter layer that drops wasmtime's WASI call tracing whatever
/// `RUST_LOG` says (a target, a span directive such as `[plugin]=trace`): at
/// `trace` those bindings log every call's arguments, and a JavaScript
/// `fetch()` passes its URL query and its `Authorization` header through them.
pub fn no_wasi_call_tracing() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::filter_fn(|metadata| {
        !is_wasi_call_trace(metadata.target(), *metadata.level())
    })
}

fn is_wasi_call_trace(target: &str, level: tracing::Level) -> bool {
    target.starts_with("wasmtime_wasi") && level == tracing::Level::TRACE
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_process_logs_no_more_verbosely_than_its_filter_and_spans_ask() {
        let level = |spec: &str, spans| max_level(&log_filter(spec), spans);
        assert_eq!(level("warn", false), LevelFilter::WARN);
        assert_eq!(level("warn,claimsmith=info", false), LevelFilter::INFO);
        assert_eq!(level("warn,claimsmith=info", true), LevelFilter::DEBUG);
        assert_eq!(level("claimsmith_engine=trace", false), LevelFilter::TRACE);
    }

    // The filter's decision itself: a scoped subscriber in a unit test would
    // race other threads over tracing's per-callsite interest cache.
    #[test]
    fn wasi_call_arguments_are_never_logged_even_at_trace() {
        for target in [
            "wasmtime_wasi_http::p2::bindings::generated::wasi::http::types",
            "wasmtime_wasi::p2::bindings::async_io::wasi::clocks::monotonic_clock",
        ] {
            assert!(is_wasi_call_trace(target, Level::TRACE), "{target}");
            assert!(
                !is_wasi_call_trace(target, Level::DEBUG),
                "{target}: above trace stays"
            );
        }
        assert!(!is_wasi_call_trace("claimsmith::engine", Level::TRACE));
        assert!(!is_wasi_call_trace("wasmtime::runtime", Level::TRACE));
    }
}
