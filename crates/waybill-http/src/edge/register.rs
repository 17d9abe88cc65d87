//! The edge's client of its hub's Mission Control API: registering itself.

use serde_json::json;
use waybill_core::auth::Secret;
use waybill_edge::EdgeConfig;

/// Registers this edge with its hub (`waybill edge --register-with`),
/// retrying while the hub is not up yet. Registering again is harmless:
/// the hub answers 200 for an edge it already knows.
pub async fn register_with(
    hub: &str,
    user: &str,
    password: &Secret,
    public_url: &str,
    cfg: &EdgeConfig,
) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let body = json!({
        "name": cfg.site_name,
        "url": public_url,
        "token": cfg.pairing_token.expose(),
        "location": {"city_name": cfg.city, "country_code": cfg.country},
    });
    let url = format!("{}/mc/api/v1/jpds", hub.trim_end_matches('/'));
    let mut last = String::new();
    for attempt in 0..30u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        match client
            .post(&url)
            .basic_auth(user, Some(password.expose()))
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            // The hub refused: the same request will not do better.
            Ok(r) if r.status().is_client_error() => {
                return Err(format!(
                    "the hub refused the registration: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ));
            }
            Ok(r) => last = format!("the hub answered {}", r.status()),
            Err(e) => last = format!("the hub is unreachable: {e}"),
        }
    }
    Err(last)
}
