//! The HTTP edge (`gridflow::http::serve::serve`) on a real socket: connections that never
//! finish their request head are closed within the header-read timeout, the connection
//! limit holds further clients back until a slot frees, a slow request is answered 408,
//! and shutdown ends the loop.

// The helpers below are test code too; `allow-unwrap-in-tests` covers only `#[test]` items.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use gridflow_connectors::config::HttpConfig;

struct Edge {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn serve(limits: HttpConfig) -> Edge {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = Router::new().route("/", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        gridflow::http::serve::serve(listener, app, &limits, async {
            let _ = stopped.await;
        })
        .await;
    });
    Edge {
        address,
        stop,
        task,
    }
}

/// Reads until the server closes the connection; fails after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buffer = [0u8; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the connection was still open after {limit:?}"));
    received
}

async fn get_root(address: SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    String::from_utf8_lossy(&closed_within(&mut stream, Duration::from_secs(10)).await).into_owned()
}

#[tokio::test]
async fn half_open_connections_are_closed_within_the_header_read_timeout() {
    let timeout = Duration::from_millis(500);
    let edge = serve(HttpConfig {
        header_read_timeout: timeout,
        ..HttpConfig::default()
    })
    .await;
    // 300 clients that start a request and never finish its headers, and 10 that send
    // nothing at all.
    let started = Instant::now();
    let mut sockets = Vec::new();
    for index in 0..310 {
        let mut stream = TcpStream::connect(edge.address).await.unwrap();
        if index < 300 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
                .await
                .unwrap();
        }
        sockets.push(stream);
    }
    for stream in &mut sockets {
        closed_within(stream, Duration::from_secs(10)).await;
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout, "closed before the timeout: {elapsed:?}");
    assert!(elapsed < timeout * 10, "closed only after {elapsed:?}");
    // A client that sends its request in time is served.
    assert!(get_root(edge.address).await.starts_with("HTTP/1.1 200"));
    edge.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), edge.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_connection_limit_holds_clients_back_until_a_slot_frees() {
    let edge = serve(HttpConfig {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(60),
        ..HttpConfig::default()
    })
    .await;
    let first = TcpStream::connect(edge.address).await.unwrap();
    let _second = TcpStream::connect(edge.address).await.unwrap();
    let mut third = TcpStream::connect(edge.address).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Both slots are taken: the third is not served (checked for a bounded time).
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(early.is_err(), "served beyond the limit: {early:?}");
    // A slot frees when a client leaves; the third is served then.
    drop(first);
    let answer = closed_within(&mut third, Duration::from_secs(10)).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_request_not_answered_in_time_gets_408_with_the_error_body() {
    let edge = serve(HttpConfig {
        request_timeout: Duration::from_millis(200),
        ..HttpConfig::default()
    })
    .await;
    let started = Instant::now();
    let mut stream = TcpStream::connect(edge.address).await.unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut stream, Duration::from_secs(10)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert!(answer.contains("http.request_timeout"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
