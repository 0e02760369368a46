//! The HTTP edge of `gridflow serve`: accepts connections and serves the application on
//! each with hyper's HTTP/1 connection, under the limits of `[http]` in `gridflow.toml`.
//!
//! - A connection that does not complete a request head within `header_read_timeout` is
//!   closed by hyper (half-open and slow-header connections cannot pile up). This also
//!   closes keep-alive connections idle that long.
//! - At most `max_connections` connections are served at once; the accept loop waits for
//!   a free slot, and further clients wait in the kernel's listen queue.
//! - A request whose response has not started within `request_timeout` is answered 408
//!   with the API's error body (a streamed body may run longer once started).
//!
//! `axum::serve` offers none of these settings, hence this loop (the pattern of axum's
//! `serve-with-hyper` example).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

use gridflow_connectors::config::HttpConfig;

use crate::http::error::ApiError;

/// Serves `app` on `listener` until `shutdown` resolves, then lets open requests finish
/// (for at most the request timeout) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let app = with_request_timeout(app, limits.request_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; stop serving if it ever is.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, as axum does.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            app.clone().call(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Timeouts and resets by clients end here; nothing to answer.
                tracing::debug!(%peer, %error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within the request timeout; closing them");
    }
}

/// `app` with every request bounded by `limit` until its response starts.
pub fn with_request_timeout(app: Router, limit: Duration) -> Router {
    app.layer(middleware::from_fn_with_state(limit, request_timeout))
}

async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::request_timeout(limit).into_response(),
    }
}
