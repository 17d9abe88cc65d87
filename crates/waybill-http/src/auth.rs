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

/// The credentials `req` carries, and the client's address: what
/// [`Security::authenticate`] judges. Owned, so no borrow of the request
/// (whose body is not `Sync`) is held across the await.
pub(crate) fn credentials_of(req: &Request) -> (Credentials, Option<IpAddr>) {
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
    (credentials, client_address(req))
}

/// Middleware for every route but the anonymous ones: no valid credential, no entry.
pub async fn require_auth(
    State(security): State<Security>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (credentials, address) = credentials_of(&req);
    let principal = security.authenticate(credentials, address).await?;
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}
