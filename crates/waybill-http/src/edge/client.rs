//! The hub's HTTP client of its edges: [`HttpEdgeTransport`] implements
//! the application layer's [`EdgeTransport`] over the edge's internal API
//! (`/waybill/api/v1/edge`), presenting the pairing token as Bearer.
//!
//! Status mapping: a network failure or a 5xx is transient; a 409 on a blob
//! means the edge found it corrupt; any other non-success is a refusal,
//! carrying the edge's own message.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use waybill_app::delivery::{
    Committed, DeliveryError, EdgeTransport, OutgoingBlob, SignedBundle, Unproven,
};
use waybill_core::auth::Secret;
use waybill_core::digest::Sha256;
use waybill_core::site::{EdgeSite, ServiceId};

/// How long a key push waits for an edge, in all.
const KEY_TIMEOUT: Duration = Duration::from_secs(10);

/// Edges over HTTP. Edges never redirect, so a redirect is refused rather
/// than followed to another host. There is no read timeout for all calls:
/// an edge's commit re-verifies every blob and may rightly stay silent for
/// minutes; short calls set their own total timeout.
#[derive(Clone, Debug)]
pub struct HttpEdgeTransport {
    client: reqwest::Client,
}

impl Default for HttpEdgeTransport {
    fn default() -> Self {
        HttpEdgeTransport {
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .tcp_keepalive(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
        }
    }
}

fn base(site: &EdgeSite) -> String {
    format!("{}/waybill/api/v1/edge", site.url.trim_end_matches('/'))
}

fn body(b: &SignedBundle) -> Value {
    json!({
        "name": b.name,
        "version": b.version,
        "payload": b.payload,
        "pgp_signature": b.pgp_signature,
        "auto_create_missing_repositories": b.auto_create_missing_repositories,
    })
}

/// A non-success answer as a delivery error, with the edge's message.
async fn refusal(r: reqwest::Response) -> DeliveryError {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or(text);
    if status.is_server_error() {
        DeliveryError::Transient(format!("edge answered {status}: {msg}"))
    } else if status == StatusCode::CONFLICT {
        DeliveryError::Corrupt(msg)
    } else {
        DeliveryError::Refused(msg)
    }
}

async fn call(req: reqwest::RequestBuilder) -> Result<reqwest::Response, DeliveryError> {
    match req.send().await {
        Err(e) => Err(DeliveryError::Transient(format!("edge unreachable: {e}"))),
        Ok(r) if r.status().is_success() => Ok(r),
        Ok(r) => Err(match refusal(r).await {
            // Only a blob can be corrupt; elsewhere a 409 is a refusal.
            DeliveryError::Corrupt(m) => DeliveryError::Refused(m),
            other => other,
        }),
    }
}

async fn json_of<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, DeliveryError> {
    r.json()
        .await
        .map_err(|e| DeliveryError::Transient(format!("unreadable answer: {e}")))
}

#[derive(Deserialize)]
struct Info {
    service_id: String,
}

#[derive(Deserialize)]
struct Prepared {
    #[serde(default)]
    missing: Vec<String>,
}

#[derive(Deserialize)]
struct CommitAnswer {
    #[serde(default)]
    manifest_sha256: String,
    #[serde(default)]
    receipt: String,
}

#[async_trait::async_trait]
impl EdgeTransport for HttpEdgeTransport {
    async fn identify(
        &self,
        url: &str,
        token: &Secret,
        timeout: Duration,
    ) -> Result<ServiceId, Unproven> {
        let res = self
            .client
            .get(format!(
                "{}/waybill/api/v1/edge/info",
                url.trim_end_matches('/')
            ))
            .bearer_auth(token.expose())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                Unproven::Unreachable(format!("the edge does not answer at {url}: {e}"))
            })?;
        match res.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(Unproven::Refused),
            other => {
                return Err(Unproven::Unreachable(format!(
                    "the edge at {url} answered {other}"
                )));
            }
        }
        let info: Info = res.json().await.map_err(|e| {
            Unproven::Unreachable(format!("the edge at {url} sent no edge info: {e}"))
        })?;
        ServiceId::parse(info.service_id)
            .map_err(|e| Unproven::Unreachable(format!("the edge at {url} sent a bad id: {e}")))
    }

    async fn install_key(&self, site: &EdgeSite, public_key: &str) -> Result<(), String> {
        let res = self
            .client
            .put(format!("{}/key", base(site)))
            .timeout(KEY_TIMEOUT)
            .bearer_auth(site.pairing_token.expose())
            .json(&json!({"public_key": public_key}))
            .send()
            .await
            .map_err(|e| format!("unreachable: {e}"))?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", res.status()))
        }
    }

    async fn prepare(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Vec<Sha256>, DeliveryError> {
        let res = call(
            self.client
                .post(format!("{}/prepare", base(site)))
                .bearer_auth(site.pairing_token.expose())
                .json(&body(bundle)),
        )
        .await?;
        let prepared: Prepared = json_of(res).await?;
        Ok(prepared
            .missing
            .iter()
            .filter_map(|d| Sha256::parse_hex(d).ok())
            .collect())
    }

    async fn send_blob(&self, site: &EdgeSite, blob: OutgoingBlob) -> Result<(), DeliveryError> {
        let mut req = self
            .client
            .put(format!("{}/blobs/{}", base(site), blob.digest))
            .bearer_auth(site.pairing_token.expose())
            .header("content-length", blob.size);
        if let Some((sha1, md5)) = &blob.sha1_md5 {
            req = req
                .header("x-checksum-sha1", sha1)
                .header("x-checksum-md5", md5);
        }
        let req = req.body(reqwest::Body::wrap_stream(blob.content));
        match req.send().await {
            Err(e) => Err(DeliveryError::Transient(format!("edge unreachable: {e}"))),
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(refusal(r).await),
        }
    }

    async fn commit(
        &self,
        site: &EdgeSite,
        bundle: &SignedBundle,
    ) -> Result<Committed, DeliveryError> {
        let res = call(
            self.client
                .post(format!("{}/commit", base(site)))
                .bearer_auth(site.pairing_token.expose())
                .json(&body(bundle)),
        )
        .await?;
        let answer: CommitAnswer = json_of(res).await?;
        Ok(Committed {
            manifest_sha256: answer.manifest_sha256,
            receipt: answer.receipt,
        })
    }

    async fn remove(
        &self,
        site: &EdgeSite,
        name: &str,
        version: &str,
    ) -> Result<(), DeliveryError> {
        call(
            self.client
                .post(format!("{}/delete", base(site)))
                .bearer_auth(site.pairing_token.expose())
                .json(&json!({"name": name, "version": version})),
        )
        .await?;
        Ok(())
    }
}
