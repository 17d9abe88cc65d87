//! Authentication on the wire: the credentials a request carries go to
//! [`Security::authenticate`], and the [`Principal`] it proves is what
//! handlers receive as their [`Caller`].

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use waybill_app::security::{Credentials, Security};

use crate::error::ApiError;
pub use waybill_app::Principal;

/// The authenticated caller, as a handler argument: [`require_auth`] put
/// the [`Principal`] into the request's extensions.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| ApiError::unauthorized("authentication required"))
    }
}

/// The client's address, when the server recorded it.
fn client_address(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Who sent `req`, from its credentials; 401 without valid ones.
pub(crate) fn authenticate_request(
    security: &Security,
    req: &Request,
) -> impl std::future::Future<Output = Result<Principal, ApiError>> + Send + 'static {
    // Owned before any await: a request body is not `Sync`.
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
    };
    let credentials = Credentials {
        authorization: header(AUTHORIZATION.as_str()),
        api_key: header("x-jfrog-art-api"),
    };
    let address: Option<IpAddr> = client_address(req);
    let security = security.clone();
    async move { Ok(security.authenticate(credentials, address).await?) }
}

/// Middleware for every route but the anonymous ones: no valid credential, no entry.
pub async fn require_auth(
    State(security): State<Security>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let principal = authenticate_request(&security, &req).await?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}
