//! Edges reached by direct calls instead of HTTP: an [`EdgeTransport`] over
//! [`Edge`]s in the same process, keyed by URL. A hub and its edges then
//! distribute without sockets, which is how the engine is tested; the
//! pairing token is still checked on every call, as over HTTP.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use waybill_app::delivery::{
    Committed, DeliveryError, EdgeTransport, OutgoingBlob, SignedBundle, Unproven,
};
use waybill_app::{Error, ErrorKind};
use waybill_core::auth::Secret;
use waybill_core::digest::{Md5, Sha1, Sha256};
use waybill_core::site::{EdgeSite, ServiceId};

use crate::Edge;

/// Edges by URL. Cheap to clone; clones share the map.
#[derive(Clone, Debug, Default)]
pub struct LocalTransport {
    edges: Arc<RwLock<HashMap<String, Edge>>>,
}

/// An edge's answer as a delivery error, as its HTTP status would classify.
fn delivery(e: Error) -> DeliveryError {
    match e.kind() {
        ErrorKind::Internal | ErrorKind::Unavailable => {
            DeliveryError::Transient(format!("edge failed: {}", e.message()))
        }
        ErrorKind::Conflict => DeliveryError::Corrupt(e.message().to_string()),
        _ => DeliveryError::Refused(e.message().to_string()),
    }
}

/// Outside blob transfers a conflict is a refusal, as over HTTP.
fn refused(e: Error) -> DeliveryError {
    match delivery(e) {
        DeliveryError::Corrupt(m) => DeliveryError::Refused(m),
        other => other,
    }
}

impl LocalTransport {
    /// Makes `edge` answer at `url`.
    pub fn attach(&self, url: &str, edge: Edge) {
        self.edges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.trim_end_matches('/').to_string(), edge);
    }

    /// Makes the edge at `url` unreachable.
    pub fn detach(&self, url: &str) {
        self.edges
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(url.trim_end_matches('/'));
    }

    fn at(&self, url: &str) -> Option<Edge> {
        self.edges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(url.trim_end_matches('/'))
            .cloned()
    }

    /// The edge a site names, if it answers and accepts the site's token.
    fn reach(&self, site: &EdgeSite) -> Result<Edge, DeliveryError> {
        let edge = self.at(&site.url).ok_or_else(|| {
            DeliveryError::Transient(format!("edge unreachable: nothing answers at {}", site.url))
        })?;
        edge.authorize(site.pairing_token.expose())
            .map_err(refused)?;
        Ok(edge)
    }
}

#[async_trait::async_trait]
impl EdgeTransport for LocalTransport {
    async fn identify(
        &self,
        url: &str,
        token: &Secret,
        _timeout: Duration,
    ) -> Result<ServiceId, Unproven> {
        let edge = self
            .at(url)
            .ok_or_else(|| Unproven::Unreachable(format!("the edge does not answer at {url}")))?;
        edge.authorize(token.expose())
            .map_err(|_| Unproven::Refused)?;
        Ok(edge.info().service_id)
    }

    async fn install_key(&self, site: &EdgeSite, public_key: &str) -> Result<(), String> {
        let edge = self.reach(site).map_err(|e| e.message().to_string())?;
        edge.install_key(public_key)
            .await
            .map(drop)
            .map_err(|e| e.message().to_string())
    }

    async fn prepare(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Vec<Sha256>, DeliveryError> {
        let edge = self.reach(site)?;
        Ok(edge.prepare(bundle).await.map_err(refused)?.missing)
    }

    async fn send_blob(&self, site: &EdgeSite, blob: OutgoingBlob) -> Result<(), DeliveryError> {
        let edge = self.reach(site)?;
        let vouched = match &blob.sha1_md5 {
            Some((sha1, md5)) => Some((
                Sha1::parse_hex(sha1).map_err(|e| DeliveryError::Refused(e.to_string()))?,
                Md5::parse_hex(md5).map_err(|e| DeliveryError::Refused(e.to_string()))?,
            )),
            None => None,
        };
        // A read failure on the hub's side ends the body, as a cut
        // connection would: the edge stores nothing.
        let body = futures_util::StreamExt::map(blob.content, |chunk| {
            chunk.map_err(|e| Error::invalid(format!("reading the blob failed: {e}")))
        });
        edge.receive_blob(blob.digest, vouched, body)
            .await
            .map(drop)
            .map_err(delivery)
    }

    async fn commit(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Committed, DeliveryError> {
        let edge = self.reach(site)?;
        Ok(edge.commit(bundle).await.map_err(refused)?.committed)
    }

    async fn remove(
        &self,
        site: &EdgeSite,
        name: &str,
        version: &str,
    ) -> Result<(), DeliveryError> {
        let edge = self.reach(site)?;
        edge.remove(name, version).await.map(drop).map_err(refused)
    }
}
