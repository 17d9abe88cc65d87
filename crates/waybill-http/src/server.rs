//! The HTTP/1 accept loop, with the limits `axum::serve` does not offer: a
//! header read timeout, a body idle timeout, a connection cap and a deadline
//! on graceful shutdown.
//!
//! Why not `axum::serve`: it sets no timer, so hyper's header timeout never
//! fires; a client trickling header lines, or holding idle connections, kept
//! them open for ever and could exhaust the process's file descriptors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Sleep;

/// What the server tolerates from a connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A request's headers must arrive within this, counted from when the
    /// connection is ready to read them (so idle keep-alive connections
    /// close after it too).
    pub header_timeout: Duration,
    /// The longest pause between two pieces of a request body; a large
    /// deploy that keeps sending is never cut.
    pub body_idle_timeout: Duration,
    /// Connections open at once; past it, new ones are closed at once.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for
/// in-flight requests up to `limits.shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut last_refusal: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors, usually: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if last_refusal.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached; closing new connections"
                );
                last_refusal = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(|b| Body::new(IdleBody::new(b, limits.body_idle_timeout)));
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { tower::Service::call(&mut app, req).await }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace = ?limits.shutdown_grace, "requests still in flight at the shutdown deadline; closing them");
        }
    }
    Ok(())
}

/// Accepts a connection, tuned for request/response traffic: with Nagle's
/// algorithm on, a response's body waits for the ACK of its headers, which
/// the client delays (about 40 ms per small download on loopback).
async fn accept(
    listener: &TcpListener,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
    }
    Ok((stream, peer))
}

/// The answer to a request body that could not be read: 408 when the
/// client stalled, 400 otherwise; either way nothing was stored.
pub(crate) fn body_error(e: axum::Error) -> waybill_app::Error {
    let inner = e.into_inner();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(err) = source {
        if let Some(stalled) = err.downcast_ref::<BodyStalled>() {
            return waybill_app::Error::new(
                waybill_app::ErrorKind::Stalled,
                format!("{stalled}; nothing was stored"),
            );
        }
        source = err.source();
    }
    waybill_app::Error::invalid(format!(
        "reading the request body failed: {inner}; nothing was stored"
    ))
}

/// A request body that fails when the client pauses longer than `idle`.
struct IdleBody {
    inner: Incoming,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl IdleBody {
    fn new(inner: Incoming, idle: Duration) -> IdleBody {
        IdleBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

/// The error a stalled body ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for longer than {0:?}")]
pub struct BodyStalled(Duration);

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + self.idle;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(self.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, peer) = accept(&listener).await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(server_side.nodelay().unwrap(), "TCP_NODELAY is set");
    }
}
