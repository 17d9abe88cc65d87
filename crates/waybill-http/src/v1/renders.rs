//! Rendered bodies of release-bundle reads (a version as json, jws or jose,
//! and version listings), kept so that a repeated read costs no store read
//! and no serialization.
//!
//! A version body is large (every artifact, its properties and the spec)
//! and versions change rarely, while the JFrog CLI and edges read them
//! often. Every entry is stamped with the bundle epoch. Each write to a
//! version, on hub or edge, holds a [`waybill_app::epoch::Change`] guard that bumps the
//! epoch once the write is done, so an older entry never answers again.
//! Entries are built only after reading the epoch, so a write racing a
//! render leaves a stale entry, never a wrong one. Permission checks run
//! before the cache on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Bytes of rendered bodies kept at most; the cache is cleared when full.
const BUDGET: usize = 64 << 20;

/// A 200 response, ready to send again.
#[derive(Clone)]
pub(crate) struct Rendered {
    headers: HeaderMap,
    body: Bytes,
}

impl IntoResponse for Rendered {
    fn into_response(self) -> Response {
        let mut res = self.body.into_response();
        *res.headers_mut() = self.headers;
        res
    }
}

struct Entry {
    epoch: u64,
    rendered: Rendered,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    bytes: usize,
}

/// The cache; cheap to clone, shared by every request.
#[derive(Clone)]
pub(crate) struct Renders {
    epoch: waybill_app::epoch::Epoch,
    entries: Arc<Mutex<Entries>>,
}

impl std::fmt::Debug for Renders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renders").finish_non_exhaustive()
    }
}

impl Renders {
    /// A cache whose entries count while `epoch` (the bundle epoch) stands.
    pub(crate) fn new(epoch: waybill_app::epoch::Epoch) -> Renders {
        Renders {
            epoch,
            entries: Arc::default(),
        }
    }

    /// The body rendered for `key`, if no version changed since.
    pub(crate) fn get(&self, key: &str) -> Option<Rendered> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let hit = entries.map.get(key)?;
        (hit.epoch == self.epoch.now()).then(|| hit.rendered.clone())
    }

    /// Renders with `render` on a miss, and keeps a 200 for next time.
    pub(crate) async fn get_or_render<F>(&self, key: String, render: F) -> Response
    where
        F: std::future::Future<Output = Response>,
    {
        if let Some(hit) = self.get(&key) {
            return hit.into_response();
        }
        // Read before rendering: a write during the render makes it stale.
        let epoch = self.epoch.now();
        let res = render.await;
        if res.status() != StatusCode::OK {
            return res;
        }
        let (parts, body) = res.into_parts();
        // In-memory bodies only, so this cannot fail on I/O.
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "a rendered body could not be read back");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        let mut headers = parts.headers;
        headers.remove(header::CONTENT_LENGTH);
        let rendered = Rendered { headers, body };
        let res = rendered.clone().into_response();
        let size = rendered.body.len();
        if size > BUDGET / 8 {
            return res; // One huge version must not evict everything else.
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.bytes + size > BUDGET {
            entries.map.clear();
            entries.bytes = 0;
        }
        entries.bytes += size;
        if let Some(old) = entries.map.insert(key, Entry { epoch, rendered }) {
            entries.bytes -= old.rendered.body.len();
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn body(text: &'static str) -> Response {
        ([(header::CONTENT_TYPE, "text/plain")], text).into_response()
    }

    async fn text(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_change_retires_every_entry_and_errors_are_not_kept() {
        let r = Renders::new(Default::default());
        assert_eq!(
            text(r.get_or_render("k".into(), async { body("one") }).await).await,
            "one"
        );
        // A hit: the second render is not used.
        assert_eq!(
            text(r.get_or_render("k".into(), async { body("two") }).await).await,
            "one"
        );
        drop(r.epoch.change());
        assert_eq!(
            text(r.get_or_render("k".into(), async { body("two") }).await).await,
            "two"
        );
        let missing = r
            .get_or_render("e".into(), async { StatusCode::NOT_FOUND.into_response() })
            .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(r.get("e").is_none(), "only 200s are kept");
    }

    #[tokio::test]
    async fn a_render_racing_a_change_is_stale_not_wrong() {
        let r = Renders::new(Default::default());
        let racing = r.clone();
        let res = r
            .get_or_render("k".into(), async move {
                // A write lands while this render runs.
                drop(racing.epoch.change());
                body("old")
            })
            .await;
        assert_eq!(text(res).await, "old");
        assert!(r.get("k").is_none());
    }

    #[tokio::test]
    async fn headers_survive_the_cache() {
        let r = Renders::new(Default::default());
        let render = || async {
            let mut res = body("x");
            res.headers_mut()
                .insert("x-rangelimit-total", HeaderValue::from(7u64));
            res
        };
        r.get_or_render("k".into(), render()).await;
        let hit = r.get("k").unwrap().into_response();
        assert_eq!(hit.headers()["x-rangelimit-total"], "7");
        assert_eq!(hit.headers()[header::CONTENT_TYPE], "text/plain");
    }
}
